#!/usr/bin/env python3
"""PyTorch peer of a short train_cifar baseline run on Fashion-MNIST: the same network (ResNet-20,
option B), data (the first N training images, zero-padded to 32x32, 3 channels, normalised with
mean 0.2860 / std 0.3530), augmentation (random crop 32 with zero padding 4, horizontal flip),
SGD (lr 0.1, momentum 0.9, weight decay 5e-4), multistep milestones at 50%/75% of the epochs.
Usage: fmnist_peer.py EPOCHS LIMIT_TRAIN [THREADS [DEVICE]]   (DEVICE: cpu or cuda; the data
directory is $FMNIST_DIR, default /usr/share/datasets/fashion-mnist). On cuda the whole dataset
is kept on the GPU and augmented there, as okd's --data-on-device does (time to accuracy,
issue 9)."""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from make_resnet_golden import ResNet  # noqa: E402

epochs, limit = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
# float32 products in float32, as okd's default (PyTorch's own lets cuDNN use TF32)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.manual_seed(0)
D = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")


def load(prefix):
    with gzip.open(f"{D}/{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{D}/{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    x = (torch.from_numpy(x).float() / 255 - 0.2860) / 0.3530
    return x[:, None].repeat(1, 3, 1, 1), torch.from_numpy(y.astype(np.int64))


xtr, ytr = load("train")
xte, yte = load("t10k")
xtr, ytr = xtr[:limit], ytr[:limit]
xtr, ytr, xte, yte = xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev)
net = ResNet(n=3).to(dev)
for m in net.modules():
    if isinstance(m, torch.nn.Conv2d):
        torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
miles = sorted({m for m in (epochs // 2, epochs * 3 // 4) if m > 0})
sched = torch.optim.lr_scheduler.MultiStepLR(opt, miles, 0.1)
pad_value = (0 - 0.2860) / 0.3530  # zero padding of raw pixels, after normalisation
t0 = time.time()
for epoch in range(epochs):
    net.train()
    perm = torch.randperm(len(xtr), device=dev)
    for b in range(0, len(xtr), 128):
        idx = perm[b:b + 128]
        x = F.pad(xtr[idx], (4, 4, 4, 4), value=pad_value)
        i, j = np.random.randint(0, 9, 2)
        x = x[:, :, i:i + 32, j:j + 32]
        flip = torch.rand(len(idx), device=dev) < 0.5
        x[flip] = x[flip].flip(3)
        loss = F.cross_entropy(net(x), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    sched.step()
    net.eval()
    with torch.no_grad():
        correct = sum((net(xte[k:k + 500]).argmax(1) == yte[k:k + 500]).sum().item() for k in range(0, 10000, 500))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    print(f"epoch {epoch + 1}: test top-1 {correct / 100:.2f}%  ({time.time() - t0:.0f} s)", flush=True)
