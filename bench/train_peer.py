#!/usr/bin/env python3
"""Peer of apps/bench_train: one training step (forward, backward, SGD) of the same CIFAR ResNets
(option-B shortcuts, the KD code bases' definition) in PyTorch, same batch and thread count.
Usage: train_peer.py THREADS [ARCH ...]"""
import os
import resource
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
archs = sys.argv[2:] or ["resnet20", "resnet32", "resnet56"]
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from make_resnet_golden import ResNet  # noqa: E402

x = torch.randn(128, 3, 32, 32)
y = torch.randint(0, 10, (128,))
for arch in archs:
    n = (int(arch.replace("resnet", "")) - 2) // 6
    net = ResNet(n=n)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    steps = 10
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {arch:10s} batch 128 threads {threads}: {128 / median:8.1f} images/s median step "
          f"({median:.3f} s), {128 * steps / sum(times):8.1f} mean, peak RSS {rss:.0f} MiB",
          flush=True)
