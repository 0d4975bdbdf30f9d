#!/usr/bin/env python3
"""Peer of `apps/bench_train --method SPEC`: one training step of a KD method in PyTorch, on the
same CPU and thread count, batch and image size. The PyTorch code is the method's reference
implementation of the method-parity tests (tests/reference/method_parity/, written from the
specification and checked equal to okd's step in float64), run here in float32 with PyTorch's
default initialisation: straightforward PyTorch, not tuned for speed. The step is
bench_train's: random 32x32 images (the same tensor for every view), random labels, the clock
of epoch 0 of 1, SGD lr 0.01 momentum 0.9 weight decay 5e-4 over the method's parameter groups,
then forward_train, update and after_update. SPEC must be the --method string of one of the
parity cases (`--list` prints them); methods whose reference refuses these shapes (mcl) or needs
a teacher file (kd, at) are not offered.
Usage: method_peer.py THREADS ARCH --method SPEC [--batch-size N] [--steps N] [--warmup N]"""
import argparse
import importlib
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("threads", type=int, nargs="?", default=2)
ap.add_argument("arch", nargs="?", default="resnet20")
ap.add_argument("--method", default="baseline")
ap.add_argument("--batch-size", type=int, default=128)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--list", action="store_true", help="print the SPECs offered and exit")
args = ap.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
import torch  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference",
                    "method_parity")
sys.path.insert(0, HERE)
from common import Clock, make_sgd  # noqa: E402
from peer_timing import throughput, time_steps  # noqa: E402

factories = {}
for f in sorted(os.listdir(HERE)):
    if f.endswith(".py") and f not in ("common.py", "offline.py", "mcl.py"):
        for name, spec, factory, clocks, kw in importlib.import_module(f[:-3]).CASES:
            factories.setdefault(spec, factory)
if args.list:
    print("\n".join(factories))
    sys.exit(0)
if args.method not in factories:
    sys.exit(f"method_peer: no reference for --method {args.method} (--list shows the specs)")

torch.set_num_threads(args.threads)
torch.manual_seed(0)
method = factories[args.method]()
method.build(arch=args.arch, num_classes=10, image_size=32, epochs=1, iters_per_epoch=1, lr=0.01)
opt = make_sgd(method.param_groups(), 0.01, 0.9, 5e-4, False)
x = torch.randn(args.batch_size, 3, 32, 32)
y = torch.randint(0, 10, (args.batch_size,))
views = [x] * method.num_views()
clock = Clock(0, 1, 0, 1)
method.set_training(True)


def step():
    loss, terms = method.forward_train(views, y, clock)
    method.update(loss, list(terms), opt, clock)
    method.after_update(clock)


times = time_steps(step, args.warmup, args.steps)
print(f"torch {args.arch:<10} {args.method} cpu float32 batch {args.batch_size} threads "
      f"{args.threads}: {throughput(args.batch_size, times)}")
