#!/usr/bin/env bash
# CPU training-step throughput of every KD method, okd (apps/bench_train) beside PyTorch
# (bench/method_peer.py: the method-parity reference implementations in float32) on the same
# machine in one run, then a table of images/s and their ratio.
# Usage: bench/run_method_bench.sh [threads] [arch] [spec ...]   (build first)
#   defaults: 2 threads, resnet20, every method with a reference (kd, at and mcl have none here)
# Environment: STEPS (timed steps, default 6), WARMUP (2), ROUNDS (1: each round runs every
# method's pair, okd first in odd rounds and PyTorch first in even ones), OKD_BUILD_DIR (build).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
arch=${2:-resnet20}
shift 2 || shift $#
specs=("$@")
if [[ ${#specs[@]} -eq 0 ]]; then
  specs=(baseline dml one okddip cl-ilr kdcl pcl byot eed phuong afd amln
         "ekd-fws:fa_dropout=0,kl_weight=15" ffl ffsd mate dkel)
fi
steps=${STEPS:-6}
warmup=${WARMUP:-2}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $arch, batch 128, $threads threads"
for round in $(seq "${ROUNDS:-1}"); do
  for s in "${specs[@]}"; do
    okd() {
      "./${OKD_BUILD_DIR:-build}/apps/bench_train" --threads "$threads" --arch "$arch" \
        --method "$s" --steps "$steps" --warmup "$warmup" | grep '^okd ' | tee -a "$log"
    }
    torch() {
      /usr/bin/python3 bench/method_peer.py "$threads" "$arch" --method "$s" --steps "$steps" \
        --warmup "$warmup" | tee -a "$log"
    }
    if ((round % 2)); then okd; torch; else torch; okd; fi
  done
done
/usr/bin/python3 - "$log" "${specs[@]}" <<'PY'
import re, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(okd|torch)\s+\S+\s+(\S+) .*?:\s+([\d.]+) images/s median.*peak RSS (\d+) MiB", line)
    if m:
        rows.setdefault(m.group(2), {}).setdefault(m.group(1), []).append(
            (float(m.group(3)), int(m.group(4))))
print("\n| method | okd images/s | PyTorch images/s | okd/PyTorch | okd peak RSS MiB | PyTorch peak RSS MiB |")
print("|---|---|---|---|---|---|")
for spec in sys.argv[2:]:
    r = rows.get(spec, {})
    if "okd" not in r or "torch" not in r:
        print(f"| {spec} | (missing) | | | | |")
        continue
    o = statistics.median(v for v, _ in r["okd"])
    t = statistics.median(v for v, _ in r["torch"])
    print(f"| `{spec}` | {o:.1f} | {t:.1f} | {o / t:.2f} | {max(m for _, m in r['okd'])} | "
          f"{max(m for _, m in r['torch'])} |")
PY
