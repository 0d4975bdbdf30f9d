#!/usr/bin/env bash
# The prepared run for a session that is lent a GPU (docs/cuda.md): builds okd with CUDA, runs the
# CUDA op tests, the device-wiring tests on the GPU (train_cifar --device cuda against --device cpu
# for every method, and --cuda-graph), compute-sanitizer over the CUDA tests when the toolkit has
# it, the training-step benchmark (eager and with whole-step capture, --cuda-graph) okd vs PyTorch
# (eager and torch.compile, when PyTorch sees the GPU), and the Fashion-MNIST time to accuracy.
# Everything is logged under $OUT (default gpu_check/); $OUT/summary.txt collects the figures.
#
# The device tool allows 10 minutes a command and about 15 minutes of device time a session,
# machine start included, so the run is cut into parts, each fitting one command, with a time
# budget: a stage is skipped (and says so) when less than its minimum remains, and its own limit
# is cut to what remains. Parts, in order of priority:
#   build     configure + build test_tensor test_device bench_train train_cifar for sm_90
#   tests     the CUDA op tests, then test_device on the GPU
#   bench     okd baseline/dml x batch 128/512 x eager/--cuda-graph; PyTorch eager, then compile
#   tta       time to accuracy, okd then PyTorch (needs FMNIST_DIR, below)
#   sanitizer compute-sanitizer memcheck, racecheck, synccheck over the CUDA op tests
# Usage (on the device machine; two calls of about 9 minutes each fit one session):
#   OUT=$OUT PARTS="build tests" BUDGET=540 bash scripts/gpu_check.sh
#   OUT=$OUT PARTS="bench tta sanitizer" BUDGET=540 bash scripts/gpu_check.sh
# (the second call starts with a fresh $OUT on the same warm machine, whose ignored build
# directory is kept between calls, so it is not built twice; the machine is given back after
# about 30 s idle, so make the second call at once). PARTS defaults to all of them, BUDGET to
# 540 s. A build directory made elsewhere can be reused: OKD_GPU_BUILD=build-gpu (carried along).
# Fashion-MNIST for the time-to-accuracy stage: before the run, copy the four .gz files into an
# untracked, not ignored folder of the work tree (e.g. mkdir gpu_data && cp
# /usr/share/datasets/fashion-mnist/*.gz gpu_data/), which the device tool copies along, and run
# with FMNIST_DIR=gpu_data (about 30 MB; never commit it).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
build=${OKD_GPU_BUILD:-build-gpu}
mkdir -p "$out"
parts=" ${PARTS:-build tests sanitizer bench tta} "
deadline=$((SECONDS + ${BUDGET:-540}))
want() { [[ $parts == *" $1 "* ]]; }
say() { echo "$*" | tee -a "$out/summary.txt"; }
# stage NAME MIN LIMIT CMD...: runs CMD with min(LIMIT, time left) seconds, logs to $out/NAME.log;
# skipped when fewer than MIN seconds remain.
stage() {
  local name=$1 min=$2 limit=$3
  shift 3
  local left=$((deadline - SECONDS))
  if ((left < min)); then
    say "$name: skipped, ${left} s of the budget left (needs ${min})"
    : > "$out/$name.log"
    return 124
  fi
  ((limit > left)) && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  say "$name: rc $rc, $((SECONDS - t0)) s"
  return $rc
}
say "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
for tool in cmake nvcc g++ python3; do command -v $tool > /dev/null || say "missing: $tool"; done
if want build && [[ ! -x "$build/tests/test_tensor" ]]; then
  stage configure 60 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DOKD_WERROR=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 || { tail -30 "$out/configure.log"; exit 1; }
  stage build 120 480 cmake --build "$build" -j"$(nproc)" --target test_tensor test_device \
    bench_train train_cifar || { grep -m20 -A5 error "$out/build.log"; exit 1; }
fi
[[ -x "$build/tests/test_tensor" ]] || { say "no build in $build (run the build part first)"; exit 1; }
if want tests; then
  stage test_cuda_ops 30 240 "$build/tests/test_tensor" --gtest_filter='Cuda*'
  grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED \] [0-9]|FAILED  \]" "$out/test_cuda_ops.log" |
    tee -a "$out/summary.txt"
  stage test_device 60 300 "$build/tests/test_device"
  grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED \] [0-9]|FAILED  \]" "$out/test_device.log" |
    tee -a "$out/summary.txt"
fi
want bench && for method in baseline dml; do
  for batch in 128 512; do
    for graph in "" --cuda-graph; do
      stage "bench_okd_${method}_$batch$graph" 20 120 "$build/apps/bench_train" --device cuda \
        --method "$method" --batch-size "$batch" --steps 20 --warmup 5 $graph
      grep -E '^okd .*images/s|^bench_train:' "$out/bench_okd_${method}_$batch$graph.log" |
        tee -a "$out/summary.txt"
    done
  done
done
torch_gpu() { python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; }
if ! want bench; then
  :
elif torch_gpu; then
  for mode in "" --compile; do  # eager first for both methods: compile takes longest
    for method in baseline dml; do
      stage "bench_torch_${method}${mode}" 30 240 python3 bench/train_peer.py 8 resnet20 resnet32 \
        resnet56 --device cuda --method "$method" --batch-size 128 --steps 20 --warmup 5 $mode
      grep '^torch ' "$out/bench_torch_${method}${mode}.log" | tee -a "$out/summary.txt"
    done
  done
else
  say "PyTorch with CUDA: not available here (no peer figures)"
fi
# Time to accuracy (issue 9): ResNet-20 baseline on Fashion-MNIST, 15 epochs, okd (whole-step
# capture, data on the device) and the PyTorch peer on the same GPU. Needs the four .gz files in
# $FMNIST_DIR (the device machine has no internet: carry them, e.g. in an ignored data_cache/).
fmnist=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if ! want tta; then
  :
elif [[ -f "$fmnist/train-images-idx3-ubyte.gz" ]]; then
  stage tta_okd 60 300 "$build/apps/train_cifar" --device cuda --cuda-graph --data-on-device \
    --data-dir "$fmnist" --epochs 15 --workers 4 --out "$out/tta_okd"
  grep -E "^epoch [0-9]+/15 " "$out/tta_okd.log" | tail -3 | tee -a "$out/summary.txt"
  grep -E "cuda graph:|^net " "$out/tta_okd.log" | tee -a "$out/summary.txt"
  if torch_gpu; then
    FMNIST_DIR=$fmnist stage tta_torch 60 300 python3 bench/fmnist_peer.py 15 60000 8 cuda
    tail -3 "$out/tta_torch.log" | tee -a "$out/summary.txt"
  fi
else
  say "time to accuracy: no Fashion-MNIST in $fmnist (set FMNIST_DIR)"
fi
if want sanitizer; then
  if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck synccheck; do
      stage "sanitizer_$tool" 60 240 compute-sanitizer --tool "$tool" --error-exitcode 3 \
        "$build/tests/test_tensor" --gtest_filter='Cuda*'
      grep -E "ERROR SUMMARY" "$out/sanitizer_$tool.log" | tee -a "$out/summary.txt"
    done
  else
    say "compute-sanitizer: not installed on this machine"
  fi
fi
