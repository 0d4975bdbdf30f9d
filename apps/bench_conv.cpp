// bench_conv: GFLOP/s of the CPU 3x3 convolution kernels at the CIFAR ResNet shapes (forward,
// input gradient, weight gradient), the direct AVX-512 kernels beside im2col + GEMM.
//
// The shapes are the stride-1 3x3 convolutions of the three stages of a CIFAR ResNet at batch N:
// C 16 at 32x32, C 32 at 16x16, C 64 at 8x8 (C in = C out). A convolution costs
// 2 N O C 9 H W floating-point operations, forward and each backward pass alike. Each figure is
// the best of --repeat runs, the variants of one row timed interleaved after 0.2 s of warm-up.
// OKD_CONV_DIRECT=0 in the environment or a CPU without AVX-512 makes both columns im2col.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <vector>

#include "apps/lib/best_seconds.h"
#include "tensor/ops/conv.h"
#include "tensor/random.h"
#include "tensor/runtime.h"

using namespace okd;
using okd::apps::best_seconds;

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{"bench_conv: GFLOP/s of the CPU 3x3 convolution kernels, direct vs im2col + GEMM"};
  int threads = 1, repeat = 5;
  int64_t batch = 128;
  app.add_option("--threads", threads, "CPU threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch", batch, "batch size N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--repeat", repeat, "timed runs per figure (the best is reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  const bool direct = ops::conv_direct_enabled();

  std::printf("%s\nthreads %d, batch %lld, best of %d; GFLOP/s (direct: %s)\n\n",
              runtime_summary().c_str(), threads, static_cast<long long>(batch), repeat,
              direct ? "on" : "off (OKD_CONV_DIRECT=0)");
  std::printf("%-16s %10s %10s %10s %10s %10s %10s\n", "shape", "fwd", "fwd i2c", "dgrad",
              "dgrad i2c", "wgrad", "wgrad i2c");
  Generator gen(3);
  const struct { int64_t C, HW; } shapes[] = {{16, 32}, {32, 16}, {64, 8}};
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  for (const auto& s : shapes) {
    const Shape xs{batch, s.C, s.HW, s.HW}, ws{s.C, s.C, 3, 3};
    Tensor x = randn(xs, gen), w = randn(ws, gen), dy = randn(xs, gen);
    const double gflop = 2.0 * double(batch * s.C * s.C * 9 * s.HW * s.HW) / 1e9;
    // each pair: the direct kernel (when it applies), then im2col + GEMM
    auto both = [&](const std::function<void()>& f) {
      return std::vector<std::function<void()>>{[f, direct] {
                                                  ops::set_conv_direct_enabled(direct);
                                                  f();
                                                },
                                                [f, direct] {
                                                  ops::set_conv_direct_enabled(false);
                                                  f();
                                                  ops::set_conv_direct_enabled(direct);
                                                }};
    };
    std::vector<double> t;
    for (const auto& f :
         {std::function<void()>([&] { ops::conv2d_forward(x, w, Tensor(), p); }),
          std::function<void()>([&] { ops::conv2d_backward_input(dy, w, xs, p); }),
          std::function<void()>([&] { ops::conv2d_backward_weight(dy, x, ws, p); })}) {
      const std::vector<double> pair = best_seconds(repeat, both(f));
      t.insert(t.end(), pair.begin(), pair.end());
    }
    char name[32];
    std::snprintf(name, sizeof name, "C %lld, %lldx%lld", static_cast<long long>(s.C),
                  static_cast<long long>(s.HW), static_cast<long long>(s.HW));
    std::printf("%-16s", name);
    for (double v : t) std::printf(" %10.1f", gflop / v);
    std::printf("\n");
  }
  return 0;
}
