#!/usr/bin/env python3
"""Peer of apps/bench_tensor.cpp: the same float32 matmuls and elementwise add in NumPy and
PyTorch, at the same thread count, timed the same way (best of --repeat runs after 0.2 s of warm-up runs).

  matmul  [n,n] @ [n,n], GFLOP/s = 2 n^3 / seconds: numpy (a @ b, its BLAS with
          OPENBLAS_NUM_THREADS/OMP_NUM_THREADS = threads) and torch (torch.matmul, set_num_threads)
  add     2^k float32 elements, GB/s with 3 * 4 * 2^k bytes moved: x + y (allocates, as ops::add)
          and in place (np.add(x, y, out=x), x.add_(y)); NumPy's add is single-threaded
  copy    the same memcpy ceiling as bench_tensor: np.copyto / torch copy_, 2 * 4 * 2^k bytes

Prints "metric,value" lines with --csv (bench/run_tensor_bench.sh joins them with okd's),
otherwise a table. Run with Debian's python3-numpy and python3-torch:
  /usr/bin/python3 bench/tensor_peer.py --threads 2
"""
import argparse
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
parser.add_argument("--add-log2", type=int, default=24)
parser.add_argument("--csv", action="store_true")
args = parser.parse_args()

# The BLAS behind NumPy reads its thread count when it loads, so set it before the import.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)


def best_seconds(f):
    warm_start = time.perf_counter()  # warm-up runs for at least 0.2 s, as bench_tensor does
    f()
    while time.perf_counter() - warm_start < 0.2:
        f()
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


metrics = {"threads": args.threads}
rng = np.random.default_rng(1)
for n in args.sizes:
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flop = 2.0 * n ** 3
    metrics[f"matmul_numpy_{n}"] = flop / best_seconds(lambda: a @ b) / 1e9
    metrics[f"matmul_torch_{n}"] = flop / best_seconds(lambda: torch.matmul(ta, tb)) / 1e9

numel = 1 << args.add_log2
x = rng.standard_normal(numel, dtype=np.float32)
y = rng.standard_normal(numel, dtype=np.float32)
z = rng.standard_normal(numel, dtype=np.float32)
tx, ty, tz = torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), torch.from_numpy(z.copy())
bytes_add, bytes_copy = 3 * 4 * numel, 2 * 4 * numel
metrics["add_numpy_gbs"] = bytes_add / best_seconds(lambda: np.add(x, y)) / 1e9
metrics["add_inplace_numpy_gbs"] = bytes_add / best_seconds(lambda: np.add(z, y, out=z)) / 1e9
metrics["copy_numpy_gbs"] = bytes_copy / best_seconds(lambda: np.copyto(z, x)) / 1e9
metrics["add_torch_gbs"] = bytes_add / best_seconds(lambda: torch.add(tx, ty)) / 1e9
metrics["add_inplace_torch_gbs"] = bytes_add / best_seconds(lambda: tz.add_(ty)) / 1e9
metrics["copy_torch_gbs"] = bytes_copy / best_seconds(lambda: tz.copy_(tx)) / 1e9

if args.csv:
    for k, v in metrics.items():
        print(f"{k},{v:.3f}" if isinstance(v, float) else f"{k},{v}")
    sys.exit(0)
print(f"numpy {np.__version__}, torch {torch.__version__}, threads {args.threads}, "
      f"best of {args.repeat} runs after 0.2 s of warm-up")
print("\nfloat32 matmul [n,n] @ [n,n], GFLOP/s")
print(f"{'n':>6} {'numpy':>10} {'torch':>10}")
for n in args.sizes:
    print(f"{n:>6} {metrics[f'matmul_numpy_{n}']:>10.1f} {metrics[f'matmul_torch_{n}']:>10.1f}")
print(f"\nfloat32 add of 2^{args.add_log2} elements, GB/s")
print(f"{'':>12} {'add':>10} {'in place':>10} {'copy':>10}")
for lib in ("numpy", "torch"):
    print(f"{lib:>12} {metrics[f'add_{lib}_gbs']:>10.2f} {metrics[f'add_inplace_{lib}_gbs']:>10.2f} "
          f"{metrics[f'copy_{lib}_gbs']:>10.2f}")
