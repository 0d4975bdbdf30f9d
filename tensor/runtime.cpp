// Thread count and build/runtime description.
#include "tensor/runtime.h"

#include <atomic>
#include <cctype>
#include <thread>

#include "okd/build_config.h"
#include "tensor/error.h"
#if OKD_HAVE_OPENMP
#include <omp.h>
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

// OpenBLAS 0.3.21 does not know Sapphire Rapids and falls back to its generic "Prescott" kernels:
// 4x slower GEMM, 2.3x slower ResNet-20 training on such a Xeon (docs/benchmarks.md). The kernel
// is chosen when the library loads, so okd can only say so; OPENBLAS_CORETYPE picks another.
std::string blas_kernel_hint() {
#if OKD_HAVE_BLAS && (defined(__x86_64__) || defined(__i386__))
  const char* core = openblas_get_corename();
  if (core == nullptr) return "";
  std::string c = core;
  for (auto& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const bool generic = c == "prescott" || c == "core2" || c == "katmai" || c == "northwood";
  if (!generic || !__builtin_cpu_supports("avx2")) return "";
  const char* better = __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
  return std::string("OpenBLAS chose its generic ") + core + " kernels on a CPU with AVX2" +
         (__builtin_cpu_supports("avx512f") ? "/AVX-512" : "") +
         ": export OPENBLAS_CORETYPE=" + better + " for a several times faster GEMM";
#else
  return "";
#endif
}

std::string runtime_summary() {
  std::string s = std::string("okd ") + OKD_VERSION + " | BLAS: " + blas_name();
#if OKD_HAVE_BLAS
  if (const char* core = openblas_get_corename()) s += std::string(" (") + core + " kernels)";
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
