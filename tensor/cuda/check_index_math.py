# Host simulation of the index arithmetic of the CUDA kernels, runnable without a GPU:
#   python3 tensor/cuda/check_index_math.py
# It re-implements, line for line, launch.cuh (make_indexer/Indexer::offsets, block_reduce with
# __shfl_down_sync semantics), the covering range of avg_pool_backward_kernel, the line walk of
# scatter_add_kernel, the chunking of row_totals and the batch-norm kernels' lanes, and checks them
# against brute force.
# It checks the arithmetic only: it says nothing about the kernels as compiled or run on a GPU.
import math
import random

random.seed(0)

# block_reduce: shuffle-down tree within warps, then warp 0 over warp partials with lane+o<warps
def block_reduce(vals, op):
    n = len(vals); warps = (n + 31)//32
    v = list(vals)
    for o in [16,8,4,2,1]:
        nv = list(v)
        for t in range(n):
            lane = t & 31; src = t + o
            # __shfl_down_sync: lanes whose lane+o >= 32 get their own value
            other = v[src] if lane + o < 32 else v[t]
            nv[t] = op(v[t], other)
        v = nv
    smem = [v[w*32] for w in range(warps)]
    w0 = [smem[l] if l < warps else 0.0 for l in range(32)]
    for o in [16,8,4,2,1]:
        nw = list(w0)
        for lane in range(32):
            other = w0[lane+o] if lane + o < 32 else w0[lane]
            if lane + o < warps: nw[lane] = op(w0[lane], other)
        w0 = nw
    return w0[0]

for n in (128, 256):
    for trial in range(200):
        vals = [random.uniform(-5,5) for _ in range(n)]
        s = block_reduce(vals, lambda a,b: a+b)
        assert abs(s - sum(vals)) < 1e-9, (n, s, sum(vals))
        m = block_reduce(vals, max); assert m == max(vals)
        mi = block_reduce(vals, min); assert mi == min(vals)
print("block_reduce ok")

# avg_pool backward covering range vs brute force
for trial in range(3000):
    k = random.randint(1,5); s = random.randint(1,4); p = random.randint(0, k//2)
    H = random.randint(k, 15)
    OH = (H + 2*p - k)//s + 1
    for h in range(H):
        brute = [oh for oh in range(OH) if oh*s - p <= h <= oh*s - p + k - 1]
        def cdiv_trunc(a, b): return int(a / b)  # C++ truncation
        lo = max(0, cdiv_trunc(h + p - k + s, s)); hi = min(OH - 1, cdiv_trunc(h + p, s))
        got = list(range(lo, hi + 1))
        assert got == brute, (k, s, p, H, h, got, brute)
print("avg_pool range ok")

# scatter_add lines: every flat index of the index tensor visited exactly once, in ascending
# order within each line, and lines write disjoint output elements
for trial in range(300):
    nd = random.randint(1,4); shape = [random.randint(1,4) for _ in range(nd)]; d = random.randrange(nd)
    total = math.prod(shape); lines = total // shape[d]
    seen = []
    for line in range(lines):
        rem = line; flat = 0; fs = 1; dfs = 1
        for k in range(nd-1, -1, -1):
            if k == d: dfs = fs
            else:
                c = rem % shape[k]; rem //= shape[k]; flat += c*fs
            fs *= shape[k]
        fl = [flat + j*dfs for j in range(shape[d])]
        assert fl == sorted(fl)
        seen += fl
    assert sorted(seen) == list(range(total))
print("scatter_add lines ok")

# make_indexer coalescing + offsets == direct strided offsets
def make_indexer(shape, strides_list):
    sizes = []; st = [[] for _ in strides_list]
    for d in range(len(shape)):
        if shape[d] == 1: continue
        merge = len(sizes) > 0
        for k in range(len(strides_list)):
            if merge: merge = st[k][-1] == strides_list[k][d]*shape[d]
        if merge:
            sizes[-1] *= shape[d]
            for k in range(len(strides_list)): st[k][-1] = strides_list[k][d]
        else:
            sizes.append(shape[d])
            for k in range(len(strides_list)): st[k].append(strides_list[k][d])
    if not sizes: return [1], [[0] for _ in strides_list]
    return sizes, st
def offsets(i, sizes, st):
    off = [0]*len(st)
    for d in range(len(sizes)-1, 0, -1):
        q, r = divmod(i, sizes[d]); i = q
        for k in range(len(st)): off[k] += r*st[k][d]
    for k in range(len(st)): off[k] += i*st[k][0]
    return off
for trial in range(500):
    nd = random.randint(0,5); shape = [random.randint(1,4) for _ in range(nd)]
    def rand_strides():
        # contiguous, permuted, or broadcast (0) strides
        cs = [0]*nd; s_ = 1
        for d in range(nd-1,-1,-1): cs[d] = s_; s_ *= shape[d]
        mode = random.randint(0,2)
        if mode == 1: cs = [c*random.choice([1,2]) for c in cs]
        if mode == 2: cs = [0 if random.random()<0.3 else c for c in cs]
        return cs
    sl = [rand_strides() for _ in range(3)]
    sizes, st = make_indexer(shape, sl)
    n = math.prod(shape)
    for i in range(n):
        # row-major coordinates
        rem = i; coords = [0]*nd
        for d in range(nd-1,-1,-1): coords[d] = rem % shape[d]; rem //= shape[d]
        direct = [sum(c*s_[d] for d,c in enumerate(coords)) for s_ in sl]
        assert offsets(i, sizes, st) == direct, (shape, sl, i)
print("indexer ok")

# reduce chunking: every element of a row covered exactly once
for trial in range(2000):
    O = random.randint(1, 3000); R = random.randint(1, 300000)
    want = max(1, (1024 + O - 1)//O)
    chunks = min(max((R + 4095)//4096, 1), want)
    chunk = (R + chunks - 1)//chunks
    cover = 0
    for c in range(chunks):
        b = c*chunk; e = min(R, b + chunk); cover += max(0, e - b)
    assert cover == R
print("chunks ok")

# batch norm (norm_cuda.cu): the lanes of a block laid over [rows, S] (lanes_for), and the eval
# kernel's grid over (channel, group of samples): every (n, s) of a channel visited exactly once,
# by one thread (and one block)
def lanes_for(S, threads):
    cols = 32
    while cols < threads and cols < S: cols *= 2
    return cols, threads // cols

for S in [1, 2, 7, 31, 32, 33, 42, 63, 64, 65, 256, 1000, 1024, 3000]:
    for N in [1, 2, 3, 8, 129]:
        for threads in (512, 256):
            cols, rows = lanes_for(S, threads)
            assert cols * rows == threads and cols & (cols - 1) == 0
            # training kernels: one block per channel, thread t: rows n = t/cols + k*rows,
            # columns s = t%cols + j*cols
            seen = {}
            for t in range(threads):
                row0, col0 = t // cols, t % cols
                for n in range(row0, N, rows):
                    for s in range(col0, S, cols):
                        assert (n, s) not in seen; seen[(n, s)] = t
            assert len(seen) == N * S, (S, N, threads)
            # eval kernel: grid.y = min(ceil(N / rows), 32) blocks, n = y*rows + row0 + k*grid.y*rows
            gy = min((N + rows - 1) // rows, 32)
            seen = set()
            for y in range(gy):
                for t in range(threads):
                    row0, col0 = t // cols, t % cols
                    for n in range(y * rows + row0, N, gy * rows):
                        for s in range(col0, S, cols):
                            assert (n, s) not in seen; seen.add((n, s))
            assert len(seen) == N * S, ("eval", S, N, threads)
print("batch-norm lanes ok")
