#!/usr/bin/env python3
"""Reference values for mixed precision (tests/tensor/test_bf16.cpp): PyTorch's float32 -> bfloat16
rounding, and conv2d / linear with bfloat16 products (operands rounded to bfloat16, the products
summed exactly in float64, the result rounded to bfloat16), forward and both gradients.
Writes tests/data/bf16/<case>_<key>.npy. Run with Debian's python3-torch:
/usr/bin/python3 tests/reference/make_bf16_refs.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "bf16")
g = torch.Generator().manual_seed(2026)


def rnd(*shape, lo=-2.0, hi=2.0):
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).float()


def save(name, tensors):
    os.makedirs(OUT, exist_ok=True)
    for key, t in tensors.items():
        np.save(os.path.join(OUT, f"{name}_{key}.npy"), t.detach().contiguous().numpy())


def bf(t):
    """float32 -> the nearest bfloat16 (PyTorch rounds to nearest even) -> float32."""
    return t.float().to(torch.bfloat16).float()


def exact(t):
    """A float32 tensor's values in float64 (no rounding)."""
    return t.double()


def rounding():
    one = 1.0
    ulp = 2.0 ** -7  # bfloat16 spacing at 1
    special = torch.tensor([
        0.0, -0.0, one, -one, one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + 2 ** -20,
        one + ulp / 2 - 2 ** -20, 3.0e38, 3.3895e38, 3.4e38, -3.4e38, 1e-40, -1e-40, 1.17549435e-38,
        float("inf"), float("-inf"), 65504.0, 0.1, -0.3, 123456.789, 2 ** -133], dtype=torch.float32)
    x = torch.cat([special, rnd(200, lo=-100, hi=100), rnd(56, lo=-1e-3, hi=1e-3)])
    save("round", {"x": x, "out": bf(x)})


def conv():
    for name, (xs, ws, kw) in {
        "conv_3x3": ((2, 5, 7, 7), (6, 5, 3, 3), dict(padding=1)),
        "conv_s2_g2": ((2, 4, 8, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    }.items():
        x, w, b = rnd(*xs), rnd(*ws), rnd(ws[0])
        xb, wb = exact(bf(x)), exact(bf(w))
        y = F.conv2d(xb, wb, None, **kw)
        gy = rnd(*y.shape)
        gyb = exact(bf(gy))
        gx = torch.nn.grad.conv2d_input(xs, wb, gyb, **kw)
        gw = torch.nn.grad.conv2d_weight(xb, ws, gyb, **kw)
        # The bias is added in float32 after the rounded product (conv.h).
        save(name, {"x": x, "w": w, "b": b, "gy": gy, "out": bf(y.float()),
                    "out_bias": bf(y.float()) + b.view(1, -1, 1, 1),
                    "gx": bf(gx.float()), "gw": bf(gw.float()), "out_f32": F.conv2d(x, w, None, **kw)})


def linear():
    x, w, b = rnd(6, 9), rnd(4, 9), rnd(4)
    y = exact(bf(x)) @ exact(bf(w)).t()
    gy = rnd(6, 4)
    gyb = exact(bf(gy))
    gx = gyb @ exact(bf(w))
    gw = gyb.t() @ exact(bf(x))
    save("linear", {"x": x, "w": w, "b": b, "gy": gy, "out": bf(y.float()) + b,
                    "gx": bf(gx.float()), "gw": bf(gw.float())})


if __name__ == "__main__":
    rounding()
    conv()
    linear()
    print("written to", os.path.abspath(OUT))
