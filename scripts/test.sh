#!/usr/bin/env bash
# The README's test command: set up, build okd (CUDA code compiled when nvcc is present, warnings
# as errors), run the whole test suite, then rebuild the CPU code with address and
# undefined-behaviour sanitizers and run the CPU suite again; in between, build the CUDA kernels
# for the SIMT simulator (tensor/cuda/sim/README.md) and run the GPU tests on it, so that the
# kernels themselves run even where there is no GPU; and install okd and build and run a program
# that embeds it (scripts/check_install.sh). Exits non-zero on any failure.
# OKD_TEST_SANITIZE=0 skips the sanitizer pass, OKD_TEST_SIM=0 the simulator pass (both are on
# by default, and in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${OKD_JOBS:-$(nproc)}

bash scripts/setup.sh

echo "== build (Release, -Werror) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOKD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600
echo "== embedding: cmake --install, then a separate project built against it (examples/embed) =="
bash scripts/check_install.sh build

if [[ "${OKD_TEST_SIM:-1}" == 1 ]]; then
  # With the kernels' a * b + c contracted into fused multiply-adds, as nvcc does, where the CPU
  # has them (OKD_SIM_FMA: results round as a GPU's do, not as the CPU ops'; sim/README.md).
  sim_fma=OFF
  if grep -qw fma /proc/cpuinfo 2>/dev/null; then sim_fma=ON; fi
  echo "== build (CUDA kernels for the SIMT simulator, FMA contraction $sim_fma) =="
  cmake -S . -B build-sim -DCMAKE_BUILD_TYPE=Release -DOKD_CUDA_SIM=ON -DOKD_SIM_FMA="$sim_fma" \
        -DOKD_WERROR=ON >/dev/null
  cmake --build build-sim -j"$jobs" --target test_sim test_tensor test_device
  echo "== GPU tests on the simulator =="
  # The simulator's own tests and every CUDA op test of test_tensor (kernels, cuBLAS and cuDNN
  # calls, run against the CPU ops), and one method-parity case of each of the 20 methods run on
  # the simulated GPU against the independent PyTorch figures (about 50 s on one core; all 92
  # cases take 4-5 minutes). The rest of test_device takes several minutes on the simulator:
  # `ctest --test-dir build-sim` runs everything.
  parity='baseline|kd|at|eed|phuong|byot|mate|ekd_fws_fa_dropout|ffl|one|dml|kdcl|cl_ilr|okddip'
  parity+='|pcl|afd|mcl|dkel_late|amln|ffsd'
  # And seven cases captured and replayed as --cuda-graph trains, through the simulator's stream
  # capture and graph launch: the EMA counters, the device dropout draws, Phuong's annealing,
  # MCL's negatives and KDCL's per-epoch weights (about 40 s on one core).
  captured='dkel_4steps|pcl_4steps|ekd_fws_resnet20_fa_dropout0_5|mcl_steps3_beta05'
  captured+='|kdcl_general_m3|phuong_anneal_early|one_4steps'
  # (ctest's names end with "  # GetParam() = ...", hence "( |$)")
  ops_re='^(Simt|SimtRuntime|SimtDeathTest|SimCublas|SimCudnn|Cuda)'
  eager_re="^Cases/MethodParityOnDevice\.StepsMatchTheIndependentImplementation/($parity)( |\$)"
  graph_re="^Cases/MethodParityCaptured\.ReplayedStepsMatchTheIndependentImplementation/($captured)( |\$)"
  # And two in bf16 (Autocast), replayed against eager steps: the staging copies under capture.
  bf16_re='^Cases/MethodBf16Captured\.ReplayedStepsMatchEagerSteps/(dml_4steps|ekd_fws_resnet20_fa_dropout0_5)( |$)'
  ctest --test-dir build-sim --output-on-failure -j"$jobs" --timeout 600 \
        -R "$ops_re|$eager_re|$graph_re|$bf16_re"
  # and the backend's start-up on a machine whose runtime finds no GPU
  OKD_SIM_DEVICES=0 ctest --test-dir build-sim --output-on-failure \
        -R '^CudaBackend.AskingForCudaWithoutAGpuIsAClearError$'
fi

if [[ "${OKD_TEST_SANITIZE:-1}" == 1 ]]; then
  echo "== build (ASan + UBSan, CPU only) =="
  # -O1 with line tables only: what the sanitizers recommend, and much quicker to compile than
  # -O2 -g. Only the test executables are built (the apps are exercised through their libraries).
  cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
        -DOKD_SANITIZE=ON -DOKD_CUDA=OFF -DOKD_WERROR=ON >/dev/null
  cmake --build build-sanitize -j"$jobs" --target test_tensor test_autograd test_nn test_optim \
        test_data test_distill test_apps test_device
  echo "== tests under sanitizers =="
  # The training-loop tests (several networks for a dozen steps each, and whole train_cifar runs)
  # already ran in the Release pass; under the sanitizers they would take most of the CI budget
  # while exercising the same kernels as the op and method unit tests that do run here. The
  # method-parity cases run here on the CPU; their emulated-device twins (eager, captured, bf16)
  # would run the same CPU kernels again (3 minutes of CPU each under the sanitizers).
  slow='EveryMethod|TrainCifarMethod|EmulatedTraining|BackboneZoo|PredictReference'
  slow+='|MethodParityOnDevice|MethodParityCaptured|MethodBf16Captured'
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize --output-on-failure -j"$jobs" --timeout 900 -E "$slow"
fi
echo "== all tests passed =="
