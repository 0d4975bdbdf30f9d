#!/usr/bin/env python3
"""Peer of apps/bench_train: one training step (forward, backward, SGD) of the same CIFAR ResNets
(option-B shortcuts, the KD code bases' definition) in PyTorch, same batch and thread count.
--method dml trains two peers with DML's loss as okd's dml does by default (each network:
cross-entropy plus KL(peer's detached softmax || its own), one summed backward, one SGD step).
--device cuda times on the GPU (a synchronize ends each step); --compile wraps the networks in
torch.compile; --bf16 runs forward and loss under torch.autocast(dtype=torch.bfloat16) (bf16
products in conv/linear, float32 weights and optimizer: okd's --precision bf16); the backward and
the SGD step run outside it, as PyTorch's AMP recipe has them. --cudnn-benchmark sets
torch.backends.cudnn.benchmark (cuDNN algorithms chosen by timing: okd's --cudnn-benchmark).
float32 means float32 FMA products, as okd's default: PyTorch's own default lets cuDNN run
float32 convolutions in TF32 (torch.backends.cudnn.allow_tf32 = True), so this turns TF32 off
for convolutions and matmuls unless --allow-tf32 (okd's --allow-tf32) is given.
Usage: train_peer.py THREADS [ARCH ...] [--method baseline|dml] [--device cpu|cuda]
                     [--batch-size N] [--compile] [--bf16] [--cudnn-benchmark] [--allow-tf32]"""
import argparse
import contextlib
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("threads", type=int, nargs="?", default=2)
ap.add_argument("archs", nargs="*", default=["resnet20", "resnet32", "resnet56"])
ap.add_argument("--method", default="baseline", choices=["baseline", "dml"])
ap.add_argument("--device", default="cpu")
ap.add_argument("--batch-size", type=int, default=128)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--compile", action="store_true")
ap.add_argument("--bf16", action="store_true", help="forward under torch.autocast(bfloat16)")
ap.add_argument("--cudnn-benchmark", action="store_true",
                help="torch.backends.cudnn.benchmark = True (algorithms chosen by timing)")
ap.add_argument("--allow-tf32", action="store_true",
                help="let float32 convolutions and matmuls use TF32 (PyTorch's default for "
                     "convolutions; off here unless given, as in okd)")
args = ap.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.backends.cudnn.allow_tf32 = args.allow_tf32
torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
torch.backends.cudnn.benchmark = args.cudnn_benchmark
if args.compile and not hasattr(torch, "compile"):
    sys.exit(f"train_peer.py: --compile needs PyTorch 2.0 or later (this is {torch.__version__})")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from make_resnet_golden import ResNet  # noqa: E402
from peer_timing import throughput, time_steps  # noqa: E402

dev = torch.device(args.device)
B = args.batch_size
x = torch.randn(B, 3, 32, 32, device=dev)
y = torch.randint(0, 10, (B,), device=dev)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


for arch in args.archs:
    n = (int(arch.replace("resnet", "")) - 2) // 6
    peers = 2 if args.method == "dml" else 1
    nets = [ResNet(n=n).to(dev) for _ in range(peers)]
    fwd = [torch.compile(net) if args.compile else net for net in nets]
    params = [p for net in nets for p in net.parameters()]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def autocast():
        if not args.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)

    def step():
        opt.zero_grad()
        with autocast():  # autocast keeps softmax, log_softmax and the losses in float32
            z = [f(x) for f in fwd]
            loss = 0
            for k in range(peers):
                loss = loss + F.cross_entropy(z[k], y)
                for j in range(peers):
                    if j != k:  # KL(p_j || p_k) with p_j detached, batchmean, over K - 1 peers
                        loss = loss + F.kl_div(F.log_softmax(z[k], 1), F.softmax(z[j].detach(), 1),
                                               reduction="batchmean") / (peers - 1)
        loss.backward()
        opt.step()
        sync()

    times = time_steps(step, args.warmup, args.steps)
    mode = ((" compiled" if args.compile else "") + (" benchmark" if args.cudnn_benchmark else "")
            + (" tf32" if args.allow_tf32 else ""))
    precision = "bf16" if args.bf16 else "float32"
    print(f"torch {arch:10s} {args.method} {args.device}{mode} {precision} batch {B} "
          f"threads {args.threads}: {throughput(B, times)}", flush=True)
