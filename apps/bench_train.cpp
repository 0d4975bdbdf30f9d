// bench_train: images/s of one full CPU training step (forward, backward, SGD update) of CIFAR
// ResNets at batch 128 on CIFAR-shaped data, and the peak resident memory. bench/run_train_bench.sh
// runs the same step in PyTorch (bench/train_peer.py) with the same thread count and prints ratios.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/models/backbone.h"
#include "optim/sgd.h"
#include "tensor/random.h"
#include "tensor/runtime.h"

using namespace okd;

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{"bench_train: CPU training-step throughput of CIFAR ResNets"};
  std::vector<std::string> archs{"resnet20", "resnet32", "resnet56"};
  int threads = 2, steps = 10, warmup = 2;
  int64_t batch = 128;
  app.add_option("--arch", archs, "architectures")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads")->capture_default_str();
  app.add_option("--batch-size", batch, "batch size")->capture_default_str();
  app.add_option("--steps", steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  std::printf("%s\n", runtime_summary().c_str());
  Generator gen(0);
  Tensor x = randn({batch, 3, 32, 32}, gen);
  Tensor y = randint(0, 10, {batch}, gen);
  for (const auto& arch : archs) {
    nn::BackboneOptions o;
    o.arch = arch;
    auto net = nn::make_backbone(o);
    net->train();
    optim::SGDOptions so;
    so.lr = 0.01;
    so.momentum = 0.9;
    so.weight_decay = 5e-4;
    optim::SGD sgd(net->parameters(), so);
    auto step = [&] {
      sgd.zero_grad();
      Tensor loss = nn::functional::cross_entropy(net->forward(x), y);
      backward(loss);
      sgd.step();
    };
    for (int i = 0; i < warmup; ++i) step();
    // Each step timed on its own; the median is robust to a step that lost its core to another
    // process on a shared machine, the mean is reported beside it.
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      step();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    double total = 0;
    for (double t : times) total += t;
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "okd %-10s batch %lld threads %d: %8.1f images/s median step (%.3f s), %8.1f mean, "
        "peak RSS %.0f MiB\n",
        arch.c_str(), static_cast<long long>(batch), threads, batch / median, median,
        batch * steps / total, ru.ru_maxrss / 1024.0);
    std::fflush(stdout);
  }
  return 0;
}
