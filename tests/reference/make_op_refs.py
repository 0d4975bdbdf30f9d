#!/usr/bin/env python3
"""Reference values for the forward checks of tensor and nn ops (tests/tensor/test_ops_reference.cpp
and tests/nn/test_nn_ops_reference.cpp). Writes small .npy files: inputs as <case>_in<i>.npy and
PyTorch's outputs as <case>_out.npy (and <case>_grad<i>.npy where a gradient is checked).
Run with Debian's python3-torch: /usr/bin/python3 tests/reference/make_op_refs.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(__file__)
TENSOR = os.path.join(HERE, "..", "data", "tensor_ops")
NN = os.path.join(HERE, "..", "data", "nn_ops")
g = torch.Generator().manual_seed(1234)


def rnd(*shape, dtype=torch.float32, lo=-2.0, hi=2.0):
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


def save(folder, name, tensors):
    os.makedirs(folder, exist_ok=True)
    for key, t in tensors.items():
        np.save(os.path.join(folder, f"{name}_{key}.npy"), t.detach().contiguous().numpy())


def tensor_refs():
    for dt, tag in [(torch.float32, "f32"), (torch.float64, "f64")]:
        a, b = rnd(4, 1, 3, dtype=dt), rnd(5, 1, dtype=dt)
        save(TENSOR, f"add_bcast_{tag}", {"in0": a, "in1": b, "out": a + b})
        save(TENSOR, f"mul_bcast_{tag}", {"in0": a, "in1": b, "out": a * b})
        p = rnd(3, 4, dtype=dt, lo=0.1, hi=3.0)
        q = rnd(3, 4, dtype=dt, lo=0.1, hi=3.0)
        save(TENSOR, f"div_{tag}", {"in0": p, "in1": q, "out": p / q})
        save(TENSOR, f"pow_{tag}", {"in0": p, "in1": q, "out": torch.pow(p, q)})
        x = rnd(2, 3, 5, dtype=dt, lo=-30, hi=30)
        save(TENSOR, f"unary_{tag}", {"in0": x, "exp": torch.exp(x / 10), "sigmoid": torch.sigmoid(x),
                                      "tanh": torch.tanh(x), "relu": torch.relu(x), "abs": torch.abs(x),
                                      "clamp": torch.clamp(x, -5, 7)})
        xp = rnd(2, 3, 5, dtype=dt, lo=0.01, hi=9)
        save(TENSOR, f"unary_pos_{tag}", {"in0": xp, "log": torch.log(xp), "sqrt": torch.sqrt(xp),
                                          "rsqrt": torch.rsqrt(xp), "pow3": torch.pow(xp, 3.0)})
        r = rnd(3, 4, 5, dtype=dt)
        save(TENSOR, f"reduce_{tag}", {
            "in0": r, "sum_1": r.sum(1), "sum_02_keep": r.sum((0, 2), keepdim=True), "mean_all": r.mean(),
            "var_2": r.var(2), "var_1_biased": r.var(1, unbiased=False), "std_0": r.std(0),
            "amax_12": r.amax((1, 2)), "amin_0": r.amin(0), "lse_2": torch.logsumexp(r, 2),
            "norm_all": torch.linalg.vector_norm(r), "norm1_1": torch.linalg.vector_norm(r, 1, dim=1),
            "max_1_val": r.max(1).values, "max_1_idx": r.max(1).indices, "argmin_2": r.argmin(2)})
        m1, m2 = rnd(2, 1, 3, 4, dtype=dt), rnd(5, 4, 2, dtype=dt)
        save(TENSOR, f"matmul_bcast_{tag}", {"in0": m1, "in1": m2, "out": torch.matmul(m1, m2)})
        t1, t2 = rnd(6, 7, dtype=dt), rnd(5, 6, dtype=dt)
        save(TENSOR, f"matmul_t_{tag}", {"in0": t1, "in1": t2, "out": t1.t() @ t2.t()})
    s = rnd(3, 6)
    idx = torch.tensor([[2, 0, 5, 1, 1, 3], [0, 0, 4, 2, 5, 1], [5, 4, 3, 2, 1, 0]])
    src = rnd(3, 6)
    save(TENSOR, "index", {"in0": s, "idx": idx, "src": src, "gather_1": torch.gather(s, 1, idx),
                           "scatter_add_1": torch.zeros(3, 6).scatter_add(1, idx, src),
                           "index_select_1": torch.index_select(s, 1, torch.tensor([4, 0, 4])),
                           "topk3_vals": torch.topk(s, 3, 1).values, "topk3_idx": torch.topk(s, 3, 1).indices,
                           "kth2_vals": torch.kthvalue(s, 2, 1).values,
                           "cat_0": torch.cat([s, src], 0), "stack_1": torch.stack([s, src], 1)})


def nn_refs():
    for name, (xs, ws, kw) in {
        "conv_s2_p1": ((2, 3, 9, 9), (4, 3, 3, 3), dict(stride=2, padding=1)),
        "conv_d2_g2": ((2, 4, 8, 7), (6, 2, 3, 3), dict(dilation=2, groups=2, padding=2)),
        "conv_dw": ((2, 5, 6, 6), (5, 1, 3, 3), dict(groups=5, padding=1)),
        "conv_1x1": ((3, 4, 5, 5), (2, 4, 1, 1), dict()),
    }.items():
        x = rnd(*xs).requires_grad_()
        w = rnd(*ws).requires_grad_()
        b = rnd(ws[0]).requires_grad_()
        y = F.conv2d(x, w, b, **kw)
        gy = rnd(*y.shape)
        y.backward(gy)
        save(NN, name, {"x": x, "w": w, "b": b, "out": y, "gy": gy, "gx": x.grad, "gw": w.grad, "gb": b.grad})
    x = rnd(2, 3, 4, 4).requires_grad_()
    w = rnd(3, 2, 3, 3).requires_grad_()
    b = rnd(2).requires_grad_()
    y = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    gy = rnd(*y.shape)
    y.backward(gy)
    save(NN, "convt_ffsd", {"x": x, "w": w, "b": b, "out": y, "gy": gy, "gx": x.grad, "gw": w.grad, "gb": b.grad})
    x = rnd(4, 3, 5, 5) * 3 + 1
    rm, rv = torch.zeros(3), torch.ones(3)
    wt, bs = rnd(3, lo=0.5, hi=1.5), rnd(3)
    y1 = F.batch_norm(x, rm, rv, wt, bs, training=True, momentum=0.1)
    y2 = F.batch_norm(x * 0.5, rm, rv, wt, bs, training=True, momentum=0.1)
    ye = F.batch_norm(x, rm, rv, wt, bs, training=False)
    save(NN, "bn", {"x": x, "w": wt, "b": bs, "y1": y1, "y2": y2, "rm": rm, "rv": rv, "eval": ye})
    x = rnd(2, 3, 7, 7)
    save(NN, "pool", {"x": x, "max_k3s2p1": F.max_pool2d(x, 3, 2, 1), "avg_k3s2p1": F.avg_pool2d(x, 3, 2, 1),
                      "adaptive_3x2": F.adaptive_avg_pool2d(x, (3, 2))})
    z = rnd(4, 5, lo=-1000, hi=1000)
    y = torch.tensor([1, 0, 4, 2])
    wts = rnd(5, lo=0.5, hi=2)
    save(NN, "softmax", {"z": z, "y": y, "w": wts, "lsm_T4": F.log_softmax(z / 4, 1), "sm_T4": F.softmax(z / 4, 1),
                         "ce": F.cross_entropy(z / 100, y),
                         "ce_ls_w": F.cross_entropy(z / 100, y, weight=wts, label_smoothing=0.1)})
    # output_padding >= stride (allowed while it is below the dilation): the rows past the uncropped
    # output get only the bias; with padding they hold the taps the padding would otherwise crop.
    # Appended last so that the generator's earlier draws, and the files above, stay as they were.
    for name, (xs, ws, kw) in {
        "convt_op_d2": ((1, 2, 4, 4), (2, 3, 3, 3), dict(dilation=2, output_padding=1)),
        "convt_op_d2_p1": ((2, 2, 4, 4), (2, 3, 3, 3), dict(dilation=2, padding=1, output_padding=1)),
        "convt_op_mixed_g2": ((1, 4, 3, 4), (4, 1, 2, 3),
                              dict(stride=2, dilation=(3, 1), padding=1, output_padding=(2, 1), groups=2)),
    }.items():
        x = rnd(*xs).requires_grad_()
        w = rnd(*ws).requires_grad_()
        b = rnd(ws[1] * kw.get("groups", 1)).requires_grad_()
        y = F.conv_transpose2d(x, w, b, **kw)
        gy = rnd(*y.shape)
        y.backward(gy)
        save(NN, name, {"x": x, "w": w, "b": b, "out": y, "gy": gy, "gx": x.grad, "gw": w.grad, "gb": b.grad})


if __name__ == "__main__":
    tensor_refs()
    nn_refs()
    print("written to", os.path.abspath(TENSOR), "and", os.path.abspath(NN))
