#!/usr/bin/env bash
# CPU training-step throughput, okd beside PyTorch on the same machine in one run.
# Usage: bench/run_train_bench.sh [threads] [arch ...]   (build first; ROUNDS=n repeats the
# okd/PyTorch pair n times, alternating, so that a noisy neighbour hits both alike; odd rounds
# run okd first, even rounds PyTorch first (ABBA), so a machine whose speed drifts steadily
# favours neither)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
shift || true
archs=("${@:-resnet20 resnet32 resnet56}")
read -r -a archs <<< "${archs[*]}"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
for round in $(seq "${ROUNDS:-1}"); do
  for a in "${archs[@]}"; do
    okd() { ./${OKD_BUILD_DIR:-build}/apps/bench_train --threads "$threads" --arch "$a" | grep '^okd '; }
    torch() { /usr/bin/python3 bench/train_peer.py "$threads" "$a"; }
    if ((round % 2)); then okd; torch; else torch; okd; fi
  done
done
