// Thread count and build/runtime description.
#include "tensor/runtime.h"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "okd/build_config.h"
#include "tensor/error.h"
#if OKD_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(__linux__)
#include <unistd.h>
#endif

namespace okd {

namespace {
std::atomic<int> g_threads{0};
int default_threads() {
#if OKD_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
#if OKD_HAVE_BLAS
// okd parallelises its kernels itself (over the batch, over rows) and calls the BLAS from inside
// those parallel regions; OpenBLAS's own thread pool would then oversubscribe the cores, so the
// BLAS runs single-threaded and a large lone matmul is split by okd (see matmul_cpu.cpp).
extern "C" void openblas_set_num_threads(int);
const bool g_blas_single_threaded = [] {
  openblas_set_num_threads(1);
  return true;
}();
#endif
}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) {
  OKD_CHECK(n >= 0, "set_num_threads: expected n >= 0, got ", n);
  g_threads = n;
#if OKD_HAVE_OPENMP
  if (n > 0) omp_set_num_threads(n);
#endif
}

bool cuda_built() { return OKD_HAVE_CUDA; }

#if OKD_HAVE_CUDA
int cuda_device_count_impl();  // tensor/cuda/runtime_cuda.cpp
int cuda_device_count() { return cuda_device_count_impl(); }
#else
int cuda_device_count() { return 0; }
#endif

std::string blas_name() { return OKD_BLAS_NAME; }

#if OKD_HAVE_BLAS
extern "C" char* openblas_get_corename(void);
#endif

// OpenBLAS 0.3.21 does not know Sapphire/Emerald Rapids and falls back to its generic "Prescott"
// kernels: 4x slower GEMM, 2.3x slower ResNet-20 training on such a Xeon (docs/benchmarks.md).
// The kernel is chosen when the library loads, before main, so the only remedies are the
// OPENBLAS_CORETYPE variable and a restart: select_fast_blas_kernel() does both for the apps.
namespace {
#if OKD_HAVE_BLAS && (defined(__x86_64__) || defined(__i386__))
bool blas_core_is_generic() {
  const char* core = openblas_get_corename();
  if (core == nullptr) return false;
  std::string c = core;
  for (auto& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return c == "prescott" || c == "core2" || c == "katmai" || c == "northwood" ||
         c == "coppermine" || c == "banias";
}
// The OpenBLAS core whose kernels this CPU can run; nullptr below AVX2+FMA. SkylakeX's kernels
// use AVX-512 F, BW, DQ and VL, so all four are required (Knights Landing has only F).
const char* best_supported_core() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}
#endif
constexpr const char* kReexecMarker = "OKD_BLAS_REEXEC_FROM";
}  // namespace

std::string blas_kernel_hint() {
#if OKD_HAVE_BLAS && (defined(__x86_64__) || defined(__i386__))
  if (!blas_core_is_generic()) return "";
  const char* better = best_supported_core();
  if (better == nullptr) return "";
  return std::string("OpenBLAS chose its generic ") + openblas_get_corename() +
         " kernels on a CPU with AVX2" + (std::string(better) == "SkylakeX" ? "/AVX-512" : "") +
         ": export OPENBLAS_CORETYPE=" + better + " for a several times faster GEMM";
#else
  return "";
#endif
}

void select_fast_blas_kernel(char** argv) {
#if OKD_HAVE_BLAS && (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
  if (argv == nullptr || argv[0] == nullptr) return;
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's choice, or done already
  const char* opt = std::getenv("OKD_BLAS_REEXEC");
  if (opt != nullptr && std::string(opt) == "0") return;
  if (!blas_core_is_generic()) return;
  const char* better = best_supported_core();
  if (better == nullptr) return;
  // Same program, same arguments, same environment plus the two variables.
  ::setenv(kReexecMarker, openblas_get_corename(), 1);
  ::setenv("OPENBLAS_CORETYPE", better, 1);
  std::fflush(nullptr);
  ::execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with the generic kernels; runtime_summary() warns.
  ::unsetenv("OPENBLAS_CORETYPE");
  ::unsetenv(kReexecMarker);
#else
  (void)argv;
#endif
}

std::string runtime_summary() {
  std::string s = std::string("okd ") + OKD_VERSION + " | BLAS: " + blas_name();
#if OKD_HAVE_BLAS
  if (const char* core = openblas_get_corename()) {
    s += std::string(" (") + core + " kernels";
    if (const char* from = std::getenv(kReexecMarker))
      s += std::string(", chosen by okd: OpenBLAS detected ") + from +
           "; OKD_BLAS_REEXEC=0 keeps its choice";
    s += ")";
  }
#endif
#if OKD_HAVE_OPENMP
  s += " | OpenMP: " + std::to_string(num_threads()) + " threads";
#else
  s += " | OpenMP: off (1 thread)";
#endif
  if (cuda_built())
    s += " | CUDA: built, " + std::to_string(cuda_device_count()) + " device(s)";
  else
    s += " | CUDA: not built";
  const std::string hint = blas_kernel_hint();
  if (!hint.empty()) s += "\nwarning: " + hint;
  return s;
}

}  // namespace okd
