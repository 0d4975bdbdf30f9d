#!/usr/bin/env python3
"""Reference values for the image transforms of data/ (tests/data/test_transforms.cpp).

One source image, uint8 [3, 11, 13] of random pixels (src.npy), and what PyTorch / torchvision
make of it, in float32 on the 0..255 scale:
  resize_<oh>x<ow>_<aa>.npy       torch.nn.functional.interpolate(mode="bilinear",
                                  align_corners=False, antialias=<aa>) to oh x ow
  rcrop_<t>_<l>_<h>_<w>_<oh>x<ow>_<aa>.npy
                                  torchvision.transforms.functional.resized_crop(top t, left l,
                                  h x w box, size (oh, ow), bilinear, antialias=<aa>)
  ccrop_<h>x<w>.npy               torchvision.transforms.functional.center_crop to h x w (uint8)
  resize_short<s>_crop.npy        torchvision Resize(s, antialias=True) then CenterCrop(s): what
                                  ImageFolder stores with image_size s (before rounding to uint8)
  rrc_fallback.npy                int64 [k, 6]: H, W, then RandomResizedCrop.get_params' box
                                  (top, left, h, w) for an impossible scale range (2, 3), so that
                                  every attempt fails and the deterministic fallback is taken

Run with Debian's python3-torch and python3-torchvision (torch 1.13, torchvision 0.14):
  /usr/bin/python3 tests/reference/make_data_refs.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "transforms")

RESIZES = [(22, 26), (5, 6), (7, 20), (11, 13), (1, 4), (6, 6)]
RESIZED_CROPS = [((2, 3, 6, 8), (16, 16)), ((1, 0, 10, 13), (4, 5)), ((0, 5, 11, 3), (9, 2))]
CENTER_CROPS = [(7, 8), (4, 5), (11, 13), (1, 1), (6, 13)]
SHORT_SIDES = [8, 4]
FALLBACK_SIZES = [(10, 30), (30, 10), (12, 13)]


def save(name, array):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(array))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2024)
    src = rng.integers(0, 256, size=(3, 11, 13), dtype=np.uint8)
    save("src", src)
    x = torch.from_numpy(src.astype(np.float64))[None]  # [1, 3, 11, 13]

    for oh, ow in RESIZES:
        for aa in (False, True):
            y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=aa)
            save(f"resize_{oh}x{ow}_{int(aa)}", y[0].float().numpy())

    for (t, l, h, w), (oh, ow) in RESIZED_CROPS:
        for aa in (False, True):
            y = TF.resized_crop(x[0], t, l, h, w, [oh, ow],
                                interpolation=T.InterpolationMode.BILINEAR, antialias=aa)
            save(f"rcrop_{t}_{l}_{h}_{w}_{oh}x{ow}_{int(aa)}", y.float().numpy())

    for h, w in CENTER_CROPS:
        save(f"ccrop_{h}x{w}", TF.center_crop(torch.from_numpy(src), [h, w]).numpy())

    for s in SHORT_SIDES:
        y = TF.resize(x[0], s, interpolation=T.InterpolationMode.BILINEAR, antialias=True)
        save(f"resize_short{s}_crop", TF.center_crop(y, [s, s]).float().numpy())

    rows = []
    for h, w in FALLBACK_SIZES:
        img = torch.zeros(3, h, w)
        box = T.RandomResizedCrop.get_params(img, scale=(2.0, 3.0), ratio=(3 / 4, 4 / 3))
        rows.append([h, w, *box])
    save("rrc_fallback", np.array(rows, dtype=np.int64))


if __name__ == "__main__":
    main()
