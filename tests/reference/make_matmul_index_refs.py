#!/usr/bin/env python3
"""Reference inputs and outputs for tests/tensor/test_matmul.cpp and test_index.cpp (torch 1.13).

Every case saves its inputs and PyTorch's outputs as small .npy files under
tests/data/matmul_index/, named <case>_<role>.npy; the C++ tests load the inputs, run the okd op
and compare with the outputs. Inputs are random normals rounded to 1/8 (so float32 and float64
see the same numbers) and, where ties would make PyTorch's choice of index unspecified (topk,
kthvalue), distinct values.

matmul cases (float64 unless the name says float32): <case>_a, <case>_b, <case>_out.
index cases: see the INDEX section below; each names its inputs and outputs.

Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_matmul_index_refs.py
"""
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "matmul_index")
os.makedirs(OUT, exist_ok=True)
g = torch.Generator().manual_seed(20261122)


def save(name, t):
    a = t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    # np.array, not np.ascontiguousarray, which turns a 0-d result into shape (1,)
    np.save(os.path.join(OUT, name + ".npy"), np.array(a, order="C"))


def rnd(*shape, dtype=torch.float64):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * 8).round().div(8).to(dtype)


def distinct(*shape):
    """A random permutation of 0..n-1, scaled, so that no two values tie."""
    n = int(np.prod(shape))
    return (torch.randperm(n, generator=g).to(torch.float64) * 0.25 - n * 0.1).reshape(shape)


# ---- MATMUL ----------------------------------------------------------------------------------
# name -> (shape a, shape b, dtype)
MATMUL = {
    "mm_2d": ((5, 7), (7, 3), torch.float64),
    "mm_2d_f32": ((9, 17), (17, 20), torch.float32),
    "mv": ((4, 6), (6,), torch.float64),
    "vm": ((6,), (6, 5), torch.float64),
    "dot": ((8,), (8,), torch.float64),
    "batched": ((3, 4, 5), (3, 5, 2), torch.float64),
    "bcast_left": ((2, 3, 4, 5), (5, 6), torch.float64),       # 2-D right operand reused
    "bcast_both": ((2, 1, 4, 5), (1, 3, 5, 2), torch.float64),  # batch [2,1] x [1,3] -> [2,3]
    "bcast_vec_batch": ((5,), (2, 3, 5, 4), torch.float64),     # 1-D left, batched right
    "batch_mv": ((2, 3, 4), (4,), torch.float64),
}
for name, (sa, sb, dt) in MATMUL.items():
    a, b = rnd(*sa, dtype=dt), rnd(*sb, dtype=dt)
    save(name + "_a", a)
    save(name + "_b", b)
    save(name + "_out", torch.matmul(a, b))

# ---- INDEX -----------------------------------------------------------------------------------
x = rnd(3, 4, 5)
save("x", x)  # [3, 4, 5] float64, shared input of the cases below
y = rnd(3, 2, 5)
save("y", y)
save("cat_dim1", torch.cat([x, y], 1))
save("cat_dim_neg1", torch.cat([x, rnd(3, 4, 2)], -1))
save("cat_dim_neg1_in1", torch.cat([x[..., :0], x], -1))  # an empty piece
save("stack_dim1", torch.stack([x, x * 2, x * 3], 1))

idx_sel = torch.tensor([3, 0, 0, 2, 1], dtype=torch.int64)  # repeats allowed
save("index_select_idx", idx_sel)
save("index_select_dim1", torch.index_select(x, 1, idx_sel))

gidx = torch.randint(0, 4, (3, 6, 5), generator=g)  # dim 1 of size 6 > 4: gather may grow it
save("gather_idx", gidx)
save("gather_dim1", torch.gather(x, 1, gidx))
gidx2 = torch.randint(0, 5, (2, 4, 3), generator=g)  # smaller than x in dims 0 and 2
save("gather_small_idx", gidx2)
save("gather_small_dim2", torch.gather(x, 2, gidx2))

sidx = torch.randint(0, 3, (5, 4, 5), generator=g)  # many collisions on dim 0 of size 3
src = rnd(5, 4, 5)
save("scatter_idx", sidx)
save("scatter_src", src)
save("scatter_add_dim0", torch.scatter_add(x, 0, sidx, src))

labels = torch.tensor([2, 0, 4, 4, 1], dtype=torch.int64)
save("one_hot_labels", labels)
save("one_hot_5", torch.nn.functional.one_hot(labels, 5).to(torch.float32))

d = distinct(4, 7, 3)
save("distinct", d)
v, i = torch.topk(d, 3, dim=1, largest=True, sorted=True)
save("topk3_dim1_largest_values", v)
save("topk3_dim1_largest_indices", i)
v, i = torch.topk(d, 2, dim=-1, largest=False, sorted=True)
save("topk2_last_smallest_values", v)
save("topk2_last_smallest_indices", i)
v, i = torch.kthvalue(d, 3, dim=1)
save("kth3_dim1_values", v)
save("kth3_dim1_indices", i)
v, i = torch.kthvalue(d, 2, dim=0, keepdim=True)
save("kth2_dim0_keep_values", v)
save("kth2_dim0_keep_indices", i)
