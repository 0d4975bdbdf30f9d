#!/usr/bin/env bash
# Runs okd's tensor benchmark (apps/bench_tensor) and its NumPy/PyTorch peer (bench/tensor_peer.py)
# one after the other on this machine with the same thread count, and prints one table of both
# with the ratios okd/peer. Build first:
#   cmake --build build --target bench_tensor
#   bench/run_tensor_bench.sh [--threads N] [--repeat N] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 repeat=5 build=build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--repeat N] [--build-dir DIR]" >&2; exit 2 ;;
  esac
done
bin="$build/apps/bench_tensor"
[[ -x "$bin" ]] || { echo "$bin not found: build the bench_tensor target first" >&2; exit 1; }

okd_csv=$(mktemp) peer_csv=$(mktemp)
trap 'rm -f "$okd_csv" "$peer_csv"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores online; threads $threads; best of $repeat runs; $(date -u '+%Y-%m-%d %H:%M UTC')"
"$bin" --threads "$threads" --repeat "$repeat" --csv > "$okd_csv"
/usr/bin/python3 bench/tensor_peer.py --threads "$threads" --repeat "$repeat" --csv > "$peer_csv"

/usr/bin/python3 - "$okd_csv" "$peer_csv" <<'PY'
import sys

m = {}
for path in sys.argv[1:]:
    for line in open(path):
        k, v = line.strip().split(",")
        m[k] = float(v)
sizes = sorted({int(k.rsplit("_", 1)[1]) for k in m if k.startswith("matmul_okd_")})
print("\nfloat32 matmul [n,n] @ [n,n], GFLOP/s (BLAS = cblas_sgemm called directly)")
print(f"{'n':>6} {'okd':>8} {'BLAS':>8} {'built-in':>9} {'numpy':>8} {'torch':>8} "
      f"{'okd/BLAS':>9} {'okd/numpy':>10} {'okd/torch':>10} {'built-in/BLAS':>14}")
for n in sizes:
    o, b, bi = m[f"matmul_okd_{n}"], m[f"matmul_blas_{n}"], m[f"matmul_builtin_{n}"]
    nu, to = m[f"matmul_numpy_{n}"], m[f"matmul_torch_{n}"]
    print(f"{n:>6} {o:>8.1f} {b:>8.1f} {bi:>9.1f} {nu:>8.1f} {to:>8.1f} "
          f"{o / b:>9.2f} {o / nu:>10.2f} {o / to:>10.2f} {bi / b:>14.2f}")
print("\nfloat32 add of 2^24 elements, GB/s (add: 3 x 4 bytes per element; copy: 2 x 4)")
print(f"{'':>22} {'okd':>8} {'numpy':>8} {'torch':>8} {'okd/numpy':>10} {'okd/torch':>10} {'of okd copy':>12}")
rows = [("add (new result)", "add_gbs", "add_numpy_gbs", "add_torch_gbs"),
        ("add in place", "add_inplace_gbs", "add_inplace_numpy_gbs", "add_inplace_torch_gbs"),
        ("copy (memcpy/copy_)", "copy_gbs", "copy_numpy_gbs", "copy_torch_gbs")]
for label, ko, kn, kt in rows:
    o, nu, to = m[ko], m[kn], m[kt]
    print(f"{label:>22} {o:>8.2f} {nu:>8.2f} {to:>8.2f} {o / nu:>10.2f} {o / to:>10.2f} "
          f"{o / m['copy_gbs']:>12.2f}")
PY
