# Host simulation of the index arithmetic of the CUDA kernels, runnable without a GPU:
#   python3 tensor/cuda/check_index_math.py
# It re-implements, line for line, launch.cuh (make_indexer/Indexer::offsets, block_reduce with
# __shfl_down_sync semantics), the covering range of avg_pool_backward_kernel, the line walk of
# scatter_add_kernel, the chunking of row_totals, the batch-norm kernels' lanes and the split
# batch norm's shares, walk, partial layout and variance combine, and checks them against brute
# force (the variance against exact rational arithmetic).
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

# batch norm, split form (norm_cuda.cu: batch_norm_parts, Share, ShareWalk, load_parts and the
# combine on thread 0): B blocks per channel, block (c, p) = blockIdx.x // B, blockIdx.x % B owns
# flat values [M p / B, M (p + 1) / B) of channel c, walked by ShareWalk with no division.
K_SPLIT_THREADS, K_SPLIT_SHARE, K_MAX_PARTS, K_AUTO_SPLIT_CHANNELS = 256, 2048, 32, 256

def batch_norm_parts(N, C, S, mode):
    parts = min(max((N * S) // K_SPLIT_SHARE, 1), K_MAX_PARTS)
    if mode == 0 or parts == 1 or C > (1 << 31) // K_MAX_PARTS - 1: return 1
    if mode == 2 and C >= K_AUTO_SPLIT_CHANNELS: return 1
    return parts

def share_walk(lo, hi, C, c, S, t, threads):
    # ShareWalk, member for member: yields (m, off) for thread t
    m = lo + t
    n, dn = m // S, threads // S
    s = m - n * S
    off = (n * C + c) * S + s
    ds = threads - dn * S
    doff = dn * C * S + ds
    wrap = C * S - S
    while m < hi:
        yield m, off
        m += threads; s += ds; off += doff
        if s >= S:
            s -= S; off += wrap
        assert 0 <= s < S

def check_split_channel(N, C, S, B, c, threads=K_SPLIT_THREADS):
    M = N * S
    covered = []
    for p in range(B):
        bx = c * B + p
        assert (bx // B, bx % B) == (c, p)
        lo, hi = M * p // B, M * (p + 1) // B
        assert hi - lo >= K_SPLIT_SHARE or B == 1
        seen = set()
        for t in range(threads):
            for m, off in share_walk(lo, hi, C, c, S, t, threads):
                n, s = divmod(m, S)
                assert off == (n * C + c) * S + s, (N, C, S, B, c, p, t, m, off)
                assert m not in seen; seen.add(m)
        assert seen == set(range(lo, hi)), (N, C, S, B, c, p)
        covered.append((lo, hi))
    # the shares partition [0, M) in part order; n_q as the combine recomputes it
    assert covered[0][0] == 0 and covered[-1][1] == M
    assert all(covered[q][1] == covered[q + 1][0] for q in range(B - 1))
    assert all(hi - lo == M * (q + 1) // B - M * q // B for q, (lo, hi) in enumerate(covered))
    # load_parts: threads t < 2 B read part[2 c B + t]: exactly the pairs that blocks c B + q wrote
    # at 2 blockIdx.x and 2 blockIdx.x + 1, in part order q = 0..B-1
    assert 2 * B <= threads and B <= K_MAX_PARTS
    assert [2 * c * B + t for t in range(2 * B)] == \
        [2 * (c * B + q) + j for q in range(B) for j in (0, 1)]

split_shapes = [(128, 16, 1024), (128, 32, 256), (128, 64, 64), (1, 1, 1), (1, 3, 100003),
                (67, 3, 143), (131, 3, 99), (20000, 3, 1), (3, 5, 49), (2, 64, 1), (128, 1, 1024),
                (128, 512, 64), (128, 512, 16), (7, 2, 4097), (129, 2, 255)]
expect = {(128, 16, 1024): 32, (128, 32, 256): 16, (128, 64, 64): 4}
for N, C, S in split_shapes:
    for mode in (0, 1, 2):
        B = batch_norm_parts(N, C, S, mode)
        if mode == 0: assert B == 1
        if (N, C, S) in expect and mode > 0: assert B == expect[(N, C, S)], (N, C, S, mode, B)
        if B == 1: continue  # the one-block kernels: "batch-norm lanes" above
        for c in sorted({0, C // 2, C - 1}):
            check_split_channel(N, C, S, B, c)
    # auto mode leaves wide layers to the one-block kernels
    if C >= K_AUTO_SPLIT_CHANNELS: assert batch_norm_parts(N, C, S, 2) == 1
print("batch-norm split shares ok")

# The split forward's variance: per block two-pass in double, combined as M2 = sum_p [M2_p +
# n_p (mean_p - mean)^2], against the exact variance of float32 data (fractions), and against one
# round of sum and sum of squares in double (not used: shown for its error).
import struct
from fractions import Fraction
def f32(v): return struct.unpack('f', struct.pack('f', v))[0]
def split_moments(vals, B, threads=K_SPLIT_THREADS):
    M = len(vals); parts = []
    for p in range(B):
        lo, hi = M * p // B, M * (p + 1) // B
        acc = [0.0] * threads
        for t in range(threads):
            for m in range(lo + t, hi, threads): acc[t] += vals[m]
        s = block_reduce(acc, lambda a, b: a + b)
        mean = s / (hi - lo)
        acc = [0.0] * threads
        for t in range(threads):
            for m in range(lo + t, hi, threads):
                d = vals[m] - mean; acc[t] += d * d
        parts.append((s, block_reduce(acc, lambda a, b: a + b)))
    total = 0.0
    for s, _ in parts: total += s
    mean = total / M; m2 = 0.0
    for q, (s, q2) in enumerate(parts):
        nq = M * (q + 1) // B - M * q // B
        dm = s / nq - mean; m2 += q2 + nq * dm * dm
    return mean, m2 / M
worst_split, worst_naive = 0.0, 0.0
for centre in (0.0, 10.0, 1000.0):
    M, B = 8192, 4
    vals = [f32(centre + random.gauss(0, 1)) for _ in range(M)]
    exact_mean = sum(Fraction(v) for v in vals) / M
    exact_var = sum((Fraction(v) - exact_mean) ** 2 for v in vals) / M
    mean, var = split_moments(vals, B)
    err = abs(Fraction(var) - exact_var) / exact_var
    worst_split = max(worst_split, float(err))
    assert err < 1e-13, (centre, float(err))
    s = sum(vals); q = sum(v * v for v in vals)
    worst_naive = max(worst_naive, float(abs(Fraction(q / M - (s / M) ** 2) - exact_var) / exact_var))
print("batch-norm split variance ok: relative error %.1e (one round of sum and sum of squares: "
      "%.1e)" % (worst_split, worst_naive))
