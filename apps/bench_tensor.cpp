// bench_tensor: throughput of the tensor core's two hot paths, beside what the BLAS and the
// memory system deliver on the same machine and thread count.
//
//   matmul  float32 [n,n] @ [n,n] at n = 256, 512, 1024, in GFLOP/s = 2 n^3 / seconds, through
//           okd::ops::matmul (allocates its result), through cblas_sgemm called directly
//           (OpenBLAS with its own thread pool set to --threads), and through the built-in blocked
//           kernel (ops::gemm_builtin).
//   add     float32 elementwise add of 2^k elements (--add-log2, default 24), in GB/s where the
//           bytes moved are read a + read b + write out = 3 * 4 * 2^k: ops::add (allocates its
//           result, as torch.add does) and ops::add_ (in place, no allocation). The ceiling beside
//           them is a memcpy of one 4 * 2^k-byte array (read + write = 2 * 4 * 2^k bytes), one
//           contiguous share per thread.
//
// Each figure is the best of --repeat timed runs after at least 0.2 s of warm-up runs; the
// variants of one row are timed interleaved (see best_seconds). --csv prints
// "metric,value" lines instead of the tables (bench/run_tensor_bench.sh joins them with the
// NumPy and PyTorch figures of bench/tensor_peer.py).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "apps/lib/best_seconds.h"
#include "okd/build_config.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#if OKD_HAVE_BLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

using namespace okd;
using okd::apps::best_seconds;

namespace {

struct Metric {
  std::string name;
  double value;
};

}  // namespace

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{
      "bench_tensor: float32 matmul GFLOP/s and elementwise-add GB/s, okd vs BLAS vs memcpy"};
  int threads = 0, repeat = 5, add_log2 = 24;
  bool csv = false;
  std::vector<int64_t> sizes = {256, 512, 1024};
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--repeat", repeat, "timed runs per figure (the best is reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--sizes", sizes, "matmul sizes n ([n,n] @ [n,n])")->capture_default_str();
  app.add_option("--add-log2", add_log2, "elementwise add of 2^k floats")
      ->check(CLI::Range(10, 30))
      ->capture_default_str();
  app.add_flag("--csv", csv, "print metric,value lines instead of tables");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_num_threads(threads);
  threads = num_threads();

  Generator gen(1);
  std::vector<Metric> metrics;
  struct MatmulRow {
    int64_t n;
    double okd, builtin, blas = std::nan("");
  };
  std::vector<MatmulRow> rows;
  for (int64_t n : sizes) {
    Tensor a = randn({n, n}, gen), b = randn({n, n}, gen), c = empty({n, n});
    const double gflop = 2.0 * double(n) * double(n) * double(n) / 1e9;
    std::vector<std::function<void()>> fs = {[&] { ops::matmul(a, b); },
                                             [&] {
                                               ops::gemm_builtin(
                                                   false, false, n, n, n, 1.f, a.data<float>(), n,
                                                   b.data<float>(), n, 0.f, c.data<float>(), n);
                                             }};
    const std::vector<double> t = best_seconds(repeat, fs);
    rows.push_back({n, gflop / t[0], gflop / t[1]});
  }

  const int64_t numel = int64_t{1} << add_log2;
  Tensor x = randn({numel}, gen), y = randn({numel}, gen);
  Tensor dst = randn({numel}, gen), copy_dst = empty({numel});
  const double gb_add = 3.0 * 4.0 * double(numel) / 1e9, gb_copy = 2.0 * 4.0 * double(numel) / 1e9;
  const std::vector<double> t_elem = best_seconds(
      repeat,
      {[&] { ops::add(x, y); }, [&] { ops::add_(dst, y); },
       // One memcpy per thread over its contiguous share: large copies take glibc's streaming
       // path (small chunks would use rep movsb, which is slow on some AMD cores).
       [&] {
         const char* src = static_cast<const char*>(x.raw_data());
         char* out = static_cast<char*>(copy_dst.raw_data());
         const int64_t total = numel * 4, share = (total + threads - 1) / threads;
         parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
           for (int64_t t = t0; t < t1; ++t) {
             const int64_t begin = t * share, end = std::min(total, begin + share);
             if (begin < end)
               std::memcpy(out + begin, src + begin, static_cast<size_t>(end - begin));
           }
         });
       }});
  const double add_gbs = gb_add / t_elem[0], add_inplace_gbs = gb_add / t_elem[1];
  const double copy_gbs = gb_copy / t_elem[2];

#if OKD_HAVE_BLAS
  // The BLAS on its own, with its own thread pool at the same thread count, timed last: after
  // each call that pool's threads keep spinning for a while and would steal the cores from
  // whatever ran next. okd runs the BLAS single-threaded and splits products itself
  // (runtime.cpp), so that setting is restored after.
  openblas_set_num_threads(threads);
  for (MatmulRow& row : rows) {
    const int64_t n = row.n;
    Tensor a = randn({n, n}, gen), b = randn({n, n}, gen), c = empty({n, n});
    row.blas = 2.0 * double(n) * double(n) * double(n) / 1e9 /
               best_seconds(repeat, {[&] {
                              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n),
                                          int(n), 1.f, a.data<float>(), int(n), b.data<float>(),
                                          int(n), 0.f, c.data<float>(), int(n));
                            }})[0];
  }
  openblas_set_num_threads(1);
#endif

  if (!csv) {
    std::printf("%s\n", runtime_summary().c_str());
    std::printf(
        "threads %d, best of %d interleaved runs after 0.2 s of warm-up; built-in GEMM inner loop: "
        "%s\n\n",
        threads, repeat, ops::gemm_builtin_isa());
    std::printf("float32 matmul [n,n] @ [n,n], GFLOP/s\n");
    std::printf("%6s %10s %12s %10s %10s %14s\n", "n", "okd", "BLAS direct", "built-in", "okd/BLAS",
                "built-in/BLAS");
  }
  for (const MatmulRow& row : rows) {
    const std::string s = std::to_string(row.n);
    metrics.push_back({"matmul_okd_" + s, row.okd});
    metrics.push_back({"matmul_blas_" + s, row.blas});
    metrics.push_back({"matmul_builtin_" + s, row.builtin});
    if (!csv)
      std::printf("%6lld %10.1f %12.1f %10.1f %9.0f%% %13.0f%%\n", static_cast<long long>(row.n),
                  row.okd, row.blas, row.builtin, 100.0 * row.okd / row.blas,
                  100.0 * row.builtin / row.blas);
  }
  metrics.push_back({"add_gbs", add_gbs});
  metrics.push_back({"add_inplace_gbs", add_inplace_gbs});
  metrics.push_back({"copy_gbs", copy_gbs});
  if (csv) {
    std::printf("threads,%d\n", threads);
    for (const Metric& m : metrics) std::printf("%s,%.3f\n", m.name.c_str(), m.value);
    return 0;
  }
  std::printf(
      "\nfloat32 add of 2^%d elements, GB/s (add counts 3 x 4 bytes per element, memcpy 2 x 4)\n",
      add_log2);
  std::printf("%-26s %10s %10s %10s\n", "", "GB/s", "memcpy", "of memcpy");
  std::printf("%-26s %10.2f %10.2f %9.0f%%\n", "ops::add(x, y)", add_gbs, copy_gbs,
              100.0 * add_gbs / copy_gbs);
  std::printf("%-26s %10.2f %10.2f %9.0f%%\n", "ops::add_(x, y) in place", add_inplace_gbs,
              copy_gbs, 100.0 * add_inplace_gbs / copy_gbs);
  return 0;
}
