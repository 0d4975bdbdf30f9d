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
#   tests     the CUDA op tests, then test_device on the GPU, then the method-parity cases there
#   bench     issue 9's table: baseline/dml x ResNet-20/32/56 x batch 128/512 x float32/bf16,
#             okd eager and --cuda-graph against PyTorch eager and torch.compile, images/s, with
#             the ratios in $OUT/summary.txt. In order of priority (the budget skips the rest and
#             says so): ResNet-32 dml batch 128 (the target) float32 and bf16, all four programs
#             (and okd --channels-last bf16), then the float32 target with cuDNN's algorithms
#             timed (--cudnn-benchmark) and with TF32 (--allow-tf32) on both sides (train_peer.py
#             keeps TF32 off otherwise: PyTorch's default would run its float32 convolutions in
#             TF32); then each remaining (method, batch, precision):
#             okd eager, okd graph, PyTorch eager; torch.compile for those last (it compiles for
#             tens of seconds a configuration). Few steps (BENCH_WARMUP=3, BENCH_STEPS=10;
#             BENCH_BATCHES="128 512"): the whole table should take about 8 minutes (an
#             estimate: not yet run on a GPU), so in the second call below it leaves little for
#             tta and sanitizer, which then skip and say so.
#   tta       time to accuracy, okd then PyTorch (needs FMNIST_DIR, below)
#   sanitizer compute-sanitizer memcheck, racecheck, synccheck over the CUDA op tests
# Before the session, here: `bash scripts/gpu_deps.sh fetch` (the Debian packages of GoogleTest,
# CLI11, stb and zlib into gpu_deps/, which the device tool copies along: the GPU image may lack
# them and reaches no registry; the build part unpacks them only where a header is missing).
# Usage (on the device machine; a session has about 15 minutes of device time, machine start
# included, so one full call and a short second one):
#   OUT=$OUT PARTS="build tests bench" BUDGET=560 bash scripts/gpu_check.sh
#   OUT=$OUT PARTS="bench tta sanitizer" BUDGET=<what is left> bash scripts/gpu_check.sh
# (build and tests take a few minutes; the bench's rows run in priority order, so the first call
# times the target rows and the budget skips the rest, saying so. The second call starts with a
# fresh $OUT on the same warm machine, whose ignored build directory is kept between calls, so it
# is not built twice; the machine is given back after about 30 s idle, so make it at once).
# PARTS defaults to all of them, BUDGET to 540 s. A build directory made elsewhere can be reused:
# OKD_GPU_BUILD=build-gpu (carried along).
# Fashion-MNIST for the time-to-accuracy stage: before the run, copy the four .gz files into an
# untracked, not ignored folder of the work tree (e.g. mkdir gpu_data && cp
# /usr/share/datasets/fashion-mnist/*.gz gpu_data/), which the device tool copies along, and run
# with FMNIST_DIR=gpu_data (about 30 MB; never commit it).
# The bench part alone, with the most of one command: OUT=$OUT PARTS=bench BUDGET=540 bash ...
# CPU dry run of the shell logic (no GPU; a CPU build with bench_train, e.g. OKD_GPU_BUILD=build):
#   DRY_RUN=1 PARTS=bench BUDGET=120 OKD_GPU_BUILD=build PYTHON=/usr/bin/python3 \
#     bash scripts/gpu_check.sh
# runs bench_train on emulated cuda:0 (OKD_CUDA_EMULATE=1) and the PyTorch peer on the CPU, at
# batch 4 and 8 with 1 warm-up and 1 timed step, so that the budget skips most rows, saying so.
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
  # GoogleTest, CLI11, stb, zlib and cuDNN where the image lacks them (scripts/gpu_deps.sh).
  mapfile -t dep_args < <(bash scripts/gpu_deps.sh cmake-args 2> "$out/deps.log")
  cat "$out/deps.log" >> "$out/summary.txt"
  stage configure 60 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DOKD_WERROR=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 "${dep_args[@]}" || { tail -30 "$out/configure.log"; exit 1; }
  grep -E "okd: cuDNN" "$out/configure.log" | tee -a "$out/summary.txt"
  stage build 120 480 cmake --build "$build" -j"$(nproc)" --target test_tensor test_device \
    bench_train train_cifar || { grep -m20 -A5 error "$out/build.log"; exit 1; }
fi
# A cuDNN taken from PyTorch's wheel loads its sub-libraries from its own folder.
cudnn_root=$(sed -n 's/^OKD_CUDNN_ROOT:PATH=//p' "$build/CMakeCache.txt" 2> /dev/null)
[[ -n $cudnn_root ]] && export LD_LIBRARY_PATH=$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if want tests || want sanitizer; then
  [[ -x "$build/tests/test_tensor" ]] || { say "no build in $build (run the build part first)"; exit 1; }
fi
if want tests; then
  stage test_cuda_ops 30 240 "$build/tests/test_tensor" --gtest_filter='Cuda*'
  grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED \] [0-9]|FAILED  \]" "$out/test_cuda_ops.log" |
    tee -a "$out/summary.txt"
  stage test_device 60 300 "$build/tests/test_device" --gtest_filter='-Cases/*'
  grep -E "^\[  (PASSED|FAILED) |^\[  SKIPPED \] [0-9]|FAILED  \]" "$out/test_device.log" |
    tee -a "$out/summary.txt"
  # Every method-parity case on the GPU in float64, eager and captured as --cuda-graph trains
  # (docs/method-parity.md), in its own stage so that it cannot crowd out the rest: what does not
  # fit in the limit is cut off, and the log says how far it came.
  stage method_parity 20 150 "$build/tests/test_device" --gtest_filter='Cases/*'
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$out/method_parity.log" | tee -a "$out/summary.txt"
  grep -c "^\[       OK \]" "$out/method_parity.log" | sed 's/^/method parity cases passed: /' |
    tee -a "$out/summary.txt"
fi
# --- bench: okd (bench_train) against PyTorch (bench/train_peer.py), rows by priority ----------
bench_dev=cuda torch_dev=cuda steps=${BENCH_STEPS:-10} warmup=${BENCH_WARMUP:-3}
py=${PYTHON:-python3}  # the Python with PyTorch (PYTHON=/usr/bin/python3 for a dry run here)
read -r -a batches <<< "${BENCH_BATCHES:-128 512}"
if [[ -n ${DRY_RUN:-} ]]; then
  export OKD_CUDA_EMULATE=1
  torch_dev=cpu steps=${BENCH_STEPS:-1} warmup=${BENCH_WARMUP:-1}
  read -r -a batches <<< "${BENCH_BATCHES:-4 8}"
fi
# A log name's tail from words: resnet20 resnet56 --cuda-graph -> 20_56_graph.
tag() {
  local IFS=_ words=("${@//resnet/}")
  words=("${words[@]//--cuda-graph/graph}")
  words=("${words[@]//--channels-last/nhwc}")
  words=("${words[@]//--cudnn-benchmark/bench}")
  words=("${words[@]//--allow-tf32/tf32}")
  words=("${words[@]//--conv-plans/plans}")
  echo "${words[*]}"
}
# okd_row METHOD BATCH PRECISION [FLAGS...] -- ARCH...: one bench_train process over the archs.
okd_row() {
  local method=$1 batch=$2 prec=$3 flags=() name
  shift 3
  while [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  shift
  name="bench_okd_${method}_${batch}_${prec}_$(tag "$@" "${flags[@]}")"
  stage "$name" 15 120 "$build/apps/bench_train" --device "$bench_dev" --method "$method" \
    --batch-size "$batch" --precision "$prec" --steps "$steps" --warmup "$warmup" \
    --arch "$@" "${flags[@]}"
  grep -E '^okd .*images/s|^graph:|^bench_train:' "$out/$name.log" | tee -a "$out/summary.txt"
}
torch_ok=
if want bench; then
  if [[ $torch_dev == cpu ]]; then
    "$py" -c 'import torch' 2> /dev/null && torch_ok=1
  else
    "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null &&
      torch_ok=1
  fi
  [[ -n $torch_ok ]] || say "PyTorch with $torch_dev: not available here (no peer figures)"
fi
# torch_row METHOD BATCH PRECISION eager|compile [FLAGS...] ARCH...: one train_peer.py process
# (FLAGS: train_peer.py's --cudnn-benchmark, --allow-tf32).
torch_row() {
  local method=$1 batch=$2 prec=$3 mode=$4 flags=() name min=25 limit=120
  shift 4
  while [[ ${1:-} == --* ]]; do
    flags+=("$1")
    shift
  done
  [[ -n $torch_ok ]] || return 0
  [[ $prec == bf16 ]] && flags+=(--bf16)
  if [[ $mode == compile ]]; then
    flags+=(--compile)
    min=60 limit=240
  fi
  name="bench_torch_${method}_${batch}_${prec}_${mode}_$(tag "$@" "${flags[@]}")"
  stage "$name" "$min" "$limit" "$py" bench/train_peer.py 8 "$@" --device "$torch_dev" \
    --method "$method" --batch-size "$batch" --steps "$steps" --warmup "$warmup" "${flags[@]}"
  grep -E '^torch |^train_peer.py:|Error' "$out/$name.log" | tail -4 | tee -a "$out/summary.txt"
}
# The table of every okd/torch result line so far: images/s per program, and the ratios.
bench_table() {
  python3 - "$out" << 'PY' | tee -a "$out/summary.txt"
import glob, os, re, sys

line = re.compile(r"^(okd|torch) +(\S+) +(\S+) +\S+((?: \S+)*?) batch (\d+) threads \d+: +([\d.]+) images/s")
rows, progs = {}, ["okd", "okd graph", "okd graph nhwc", "torch", "torch compiled"]
for log in sorted(glob.glob(os.path.join(sys.argv[1], "bench_*.log"))):
    for text in open(log, errors="replace"):
        m = line.match(text)
        if not m:
            continue
        who, arch, method, rest, batch, ips = m.groups()
        words = rest.split()
        # TF32 products are another precision: a row of their own, never a float32 "best"
        prec = "bf16" if "bf16" in words else "tf32" if "tf32" in words else "float32"
        prog = " ".join([who] + [w for w in words if w not in ("bf16", "float32", "tf32")])
        if prog not in progs:
            progs.append(prog)
        rows.setdefault((method, arch, int(batch), prec), {})[prog] = float(ips)
if not rows:
    sys.exit("bench table: no results")
progs = [p for p in progs if any(p in r for r in rows.values())]


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


print("bench table, images/s; okd/PyTorch ratios: eager/eager, graph/compiled, best/best")
print(f"{'method':8} {'arch':9} {'batch':>5} {'precision':9}"
      + "".join(f" {p:>14}" for p in progs) + f" {'eager':>6} {'graph':>6} {'best':>6}")
for key in sorted(rows, key=lambda k: (k[0] != "dml", k[2], k[1], k[3] != "float32")):
    r = rows[key]
    okd = max([v for p, v in r.items() if p.startswith("okd")], default=0)
    torch = max([v for p, v in r.items() if p.startswith("torch")], default=0)
    print(f"{key[0]:8} {key[1]:9} {key[2]:>5} {key[3]:9}"
          + "".join(f" {r[p]:>14.1f}" if p in r else f" {'-':>14}" for p in progs)
          + f" {ratio(r.get('okd'), r.get('torch')):>6}"
          + f" {ratio(r.get('okd graph'), r.get('torch compiled')):>6} {ratio(okd, torch):>6}")
PY
}
if want bench; then
  b0=${batches[0]}
  # 1. The target: ResNet-32 dml at the first batch size, float32 and bf16, all four programs.
  for prec in float32 bf16; do
    okd_row dml "$b0" "$prec" -- resnet32
    okd_row dml "$b0" "$prec" --cuda-graph --conv-plans -- resnet32
    torch_row dml "$b0" "$prec" eager resnet32
  done
  if "$build/apps/bench_train" --help 2> /dev/null | grep -q -- --channels-last; then
    okd_row dml "$b0" bf16 --cuda-graph --channels-last -- resnet32
  fi
  for prec in float32 bf16; do torch_row dml "$b0" "$prec" compile resnet32; done
  # 1b. The target with cuDNN algorithms chosen by timing on both sides (cudnn.benchmark), then
  # with TF32 convolutions on both sides (PyTorch's default for float32 convolutions).
  if "$build/apps/bench_train" --help 2> /dev/null | grep -q -- --cudnn-benchmark; then
    # (its log lists the algorithm cuDNN's timing picked for every convolution: --conv-plans)
    okd_row dml "$b0" float32 --cuda-graph --cudnn-benchmark --conv-plans -- resnet32
    torch_row dml "$b0" float32 eager --cudnn-benchmark resnet32
    okd_row dml "$b0" float32 --cuda-graph --allow-tf32 -- resnet32
    torch_row dml "$b0" float32 eager --allow-tf32 resnet32
  fi
  # 2. Every other (method, batch, precision): okd eager and graph, then PyTorch eager.
  rest_archs() {
    archs=(resnet20 resnet32 resnet56)
    [[ $1 == dml && $2 == "$b0" ]] && archs=(resnet20 resnet56)
    return 0
  }
  for method in dml baseline; do
    for batch in "${batches[@]}"; do
      rest_archs "$method" "$batch"
      for prec in float32 bf16; do
        okd_row "$method" "$batch" "$prec" -- "${archs[@]}"
        okd_row "$method" "$batch" "$prec" --cuda-graph -- "${archs[@]}"
        torch_row "$method" "$batch" "$prec" eager "${archs[@]}"
      done
    done
  done
  # 3. torch.compile for the rest (tens of seconds of compilation each).
  for method in dml baseline; do
    for batch in "${batches[@]}"; do
      rest_archs "$method" "$batch"
      for prec in float32 bf16; do torch_row "$method" "$batch" "$prec" compile "${archs[@]}"; done
    done
  done
  bench_table
fi
torch_gpu() { "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; }
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
    FMNIST_DIR=$fmnist stage tta_torch 60 300 "$py" bench/fmnist_peer.py 15 60000 8 cuda
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
