// bench_train: images/s of one full training step (forward, backward, SGD update) of CIFAR
// ResNets at batch 128 on CIFAR-shaped data, and the peak resident memory. The step is a method's
// own (the same forward_train/update train_cifar runs): baseline by default, dml for online KD
// with two peers. On --device cuda each timed step ends with a device synchronize; with
// --cuda-graph the step is captured once after the warm-up and each timed step is a replay
// (tensor/cuda/graph.h; the method must declare its step capturable). --precision bf16 runs the
// step under nn::functional::Autocast (bf16 products in conv/linear, float32 weights; cuDNN/cuBLAS
// bf16 on cuda, a rounding emulation on the CPU); the precision is printed in every result line.
// bench/run_train_bench.sh runs the same step in PyTorch (bench/train_peer.py) with the same
// thread count and prints ratios.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "apps/lib/device_flag.h"
#include "autograd/functions.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "optim/sgd.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/copy.h"
#include "tensor/random.h"
#include "tensor/runtime.h"

using namespace okd;

namespace {

// One line per cached cuDNN plan (bench_train --conv-plans).
void print_conv_plans() {
  const auto plans = cuda::conv_plans();
  std::printf("conv plans (%zu):\n", plans.size());
  for (const auto& p : plans) {
    std::printf(
        "  %-15s %s%s%s x %s w %s s %lldx%lld p %lldx%lld g %lld: algo %d %s, workspace "
        "%lld B, %s",
        p.direction.c_str(), dtype_name(p.dtype), p.bf16 ? " bf16" : "",
        p.channels_last ? " nhwc" : "", shape_str(p.input).c_str(), shape_str(p.weight).c_str(),
        static_cast<long long>(p.stride[0]), static_cast<long long>(p.stride[1]),
        static_cast<long long>(p.padding[0]), static_cast<long long>(p.padding[1]),
        static_cast<long long>(p.groups), p.algo, p.math.c_str(),
        static_cast<long long>(p.workspace_bytes), p.timed ? "timed" : "heuristics");
    if (p.timed) std::printf(" %.3f ms", p.time_ms);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{"bench_train: training-step throughput of CIFAR ResNets (one method's step)"};
  std::vector<std::string> archs{"resnet20", "resnet32", "resnet56"};
  std::string method_name = "baseline", device_name = "cpu", precision = "float32";
  int threads = 2, steps = 10, warmup = 2;
  bool cuda_graph = false;
  int64_t batch = 128;
  app.add_option("--arch", archs, "architectures")->capture_default_str();
  app.add_option("--method", method_name,
                 "the training step: baseline, dml, ... (train_cifar's), with options as "
                 "NAME:KEY=VALUE,... (ekd-fws:fa_dropout=0 is --ekd-fws.fa_dropout 0)")
      ->capture_default_str();
  app.add_option("--device", device_name, "cpu | cuda")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads")->capture_default_str();
  app.add_option("--batch-size", batch, "batch size")->capture_default_str();
  app.add_option("--steps", steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--precision", precision,
                 "float32 | bf16 (mixed precision: bf16 products in conv/linear, float32 weights; "
                 "bf16 tensor cores on cuda, an emulation on the CPU)")
      ->check(CLI::IsMember({"float32", "bf16"}))
      ->capture_default_str();
  bool channels_last = false;
  app.add_flag("--channels-last", channels_last,
               "cuda, bf16: hand cuDNN the bf16 convolution operands in NHWC order "
               "(cuda::set_channels_last)");
  bool autotune = false, print_plans = false, tf32 = false;
  app.add_flag("--allow-tf32", tf32,
               "cuda: let float32 convolutions and matmuls use TF32 tensor cores "
               "(cuda::set_allow_tf32; PyTorch's default for convolutions)");
  app.add_flag("--cudnn-benchmark", autotune,
               "cuda: choose each convolution's cuDNN algorithm by timing the candidates on its "
               "first call (cuda::set_conv_autotune; PyTorch's torch.backends.cudnn.benchmark)");
  app.add_flag("--conv-plans", print_plans,
               "cuda: after each architecture, list the cuDNN algorithm chosen for every "
               "convolution configuration, and how (heuristics or timing)");
  app.add_flag("--cuda-graph", cuda_graph,
               "cuda: capture the step as one CUDA graph after the warm-up and time its replays");
  CLI11_PARSE(app, argc, argv);
  try {
    set_num_threads(threads);
    const Device device = apps::device_from_flag(device_name);
    std::printf("%s\n", runtime_summary().c_str());
    OKD_CHECK(!cuda_graph || device.is_cuda(), "--cuda-graph needs --device cuda");
    OKD_CHECK(!channels_last || (device.is_cuda() && precision == "bf16"),
              "--channels-last needs --device cuda and --precision bf16");
    if (channels_last) cuda::set_channels_last(true);
    OKD_CHECK(!(autotune || print_plans || tf32) || device.is_cuda(),
              "--cudnn-benchmark, --conv-plans and --allow-tf32 need --device cuda");
    cuda::set_conv_autotune(autotune);
    cuda::set_allow_tf32(tf32);
    // Held for the whole run on this thread: warm-up, capture and timed steps.
    nn::functional::Autocast autocast(precision == "bf16" ? Precision::BFloat16
                                                          : Precision::Float32);
    if (device.is_cuda()) std::printf("device: %s\n", cuda::device_summary().c_str());
    Generator gen(0);
    const Tensor x_host = randn({batch, 3, 32, 32}, gen);
    const Tensor y_host = randint(0, 10, {batch}, gen);
    for (const auto& arch : archs) {
      auto method = distill::make_method_from_spec(method_name);
      distill::BuildContext ctx;
      ctx.arch = arch;
      ctx.dataset = "cifar10";
      ctx.lr = 0.01;
      ctx.device = device;
      ctx.train_labels = y_host;
      method->build(ctx);
      for (const auto& [name, net] : method->networks()) net->to(device);
      method->set_training(true);
      optim::SGDOptions so;
      so.lr = 0.01;
      so.momentum = 0.9;
      so.weight_decay = 5e-4;
      // the method's groups as train_cifar builds them (their own weight decay, lr scale)
      optim::SGD sgd(distill::optimizer_groups(*method, so.lr, so.weight_decay), so);
      distill::Batch b;
      for (int v = 0; v < method->num_views(); ++v) b.views.push_back(ops::to(x_host, device));
      b.labels = ops::to(y_host, device);
      b.indices = ops::to(arange(batch), device);
      distill::TrainClock clock;
      auto body = [&] {
        distill::StepResult r = method->forward_train(b, clock);
        method->update(r, sgd, clock);
        method->after_update(clock);
      };
      cuda::CapturedGraph graph;
      auto step = [&] {
        if (graph.ready())
          graph.replay();
        else
          body();
        if (device.is_cuda()) cuda::synchronize();
      };
      for (int i = 0; i < warmup; ++i) step();
      if (cuda_graph) {
        const std::string blocker = method->capture_blocker();
        OKD_CHECK(blocker.empty(), "--cuda-graph: ", method_name,
                  "'s step cannot be captured: ", blocker);
        graph.capture(body, "bench_train's step");
        cuda::synchronize();
        // What a replay launches: the kernels and device copies of one step (each costs the GPU
        // a microsecond or so even in a graph, so fewer is faster where the step is launch-bound).
        std::printf("graph: %s %s %s: %lld nodes (kernels and copies) per step\n", arch.c_str(),
                    method_name.c_str(), precision.c_str(), static_cast<long long>(graph.size()));
      }
      // Each step timed on its own; the median is robust to a step that lost its core to another
      // process on a shared machine, the mean is reported beside it.
      std::vector<double> times;
      for (int i = 0; i < steps; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        step();
        times.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      double total = 0;
      for (double t : times) total += t;
      std::sort(times.begin(), times.end());
      const double median = times[times.size() / 2];
      rusage ru{};
      getrusage(RUSAGE_SELF, &ru);
      std::printf(
          "okd %-10s %s %s%s%s%s %s%s batch %lld threads %d: %8.1f images/s median step (%.3f s), "
          "%8.1f mean, peak RSS %.0f MiB\n",
          arch.c_str(), method_name.c_str(), device.str().c_str(), cuda_graph ? " graph" : "",
          autotune ? " benchmark" : "", tf32 ? " tf32" : "", precision.c_str(),
          channels_last ? " nhwc" : "", static_cast<long long>(batch), threads, batch / median,
          median, batch * steps / total, ru.ru_maxrss / 1024.0);
      if (print_plans) print_conv_plans();
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
