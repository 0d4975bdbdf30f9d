// bench_loader: images/s that data::BatchLoader delivers with a training augmentation, as a
// training step would consume them (each batch taken as soon as it is ready, nothing else done).
//
// Data: 50,000 random 32x32x3 uint8 images made in memory (CIFAR-10's training-set shape), or the
// real CIFAR-10 training set with --data-dir. Augmentation (--augment):
//   cifar  random crop 32 after zero padding 4, horizontal flip, normalisation (the default);
//   rrc    horizontal flip, RandomResizedCrop(32, scale (0.5, 1), ratio (3/4, 4/3)), normalisation
//          (EKD-FWSNet's CIFAR recipe);
//   none   normalisation only.
// Each of --epochs timed epochs is a full pass over the data; the best and the mean rate are
// printed. The target is 20,000 images/s with 2 workers (issue 4).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "data/batch_loader.h"
#include "data/datasets.h"
#include "tensor/random.h"

using namespace okd;

namespace {
data::ImageDataset random_cifar(int64_t n, uint64_t seed) {
  data::ImageDataset d;
  d.name = "random-cifar";
  d.num_classes = 10;
  d.images = empty({n, 3, 32, 32}, DType::UInt8);
  d.labels = empty({n}, DType::Int64);
  Generator gen(seed);
  uint8_t* p = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n * 3072; i += 4) {
    const uint32_t r = gen.next_u32();
    for (int k = 0; k < 4; ++k) p[i + k] = static_cast<uint8_t>(r >> (8 * k));
  }
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = static_cast<int64_t>(i % 10);
  return d;
}

data::Augment make_augment(const std::string& name) {
  data::Augment a;
  a.mean = {0.4914f, 0.4822f, 0.4465f};
  a.std = {0.2470f, 0.2435f, 0.2616f};
  if (name == "cifar") {
    a.crop_padding = 4;
    a.hflip = true;
  } else if (name == "rrc") {
    a.hflip = true;
    a.random_resized_crop = 32;
    a.rrc_scale = {0.5, 1.0};
  }
  return a;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_loader: images/s of the batch loader with a training augmentation"};
  std::string data_dir, augment = "cifar";
  int64_t images = 50000, batch = 128;
  int workers = 2, epochs = 3, views = 1;
  app.add_option("--data-dir", data_dir,
                 "read the CIFAR-10 training set from here (default: "
                 "random images in memory)");
  app.add_option("--images", images, "random images to make (without --data-dir)")
      ->capture_default_str();
  app.add_option("--augment", augment, "cifar | rrc | none")
      ->check(CLI::IsMember({"cifar", "rrc", "none"}))
      ->capture_default_str();
  app.add_option("--batch-size", batch, "images per batch")->capture_default_str();
  app.add_option("--workers", workers, "worker threads (0: on the calling thread)")
      ->capture_default_str();
  app.add_option("--views", views, "augmented views of each image")->capture_default_str();
  app.add_option("--epochs", epochs, "timed epochs")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  data::ImageDataset ds =
      data_dir.empty() ? random_cifar(images, 1) : data::load_cifar10(data_dir, true);
  data::LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.views = views;
  o.seed = 0;
  o.augment = make_augment(augment);
  data::BatchLoader loader(ds, o);
  std::printf(
      "bench_loader: %s, %lld images 3x32x32, augment %s, batch %lld, %d workers, "
      "%d view(s), %u hardware threads\n",
      ds.name.c_str(), static_cast<long long>(ds.size()), augment.c_str(),
      static_cast<long long>(batch), workers, views, std::thread::hardware_concurrency());

  double best = 0, total = 0;
  for (int e = 0; e < epochs; ++e) {
    const auto t0 = std::chrono::steady_clock::now();
    loader.start_epoch(e);
    int64_t n = 0;
    while (auto b = loader.next()) n += b->labels.numel() * views;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = static_cast<double>(n) / s;
    best = std::max(best, rate);
    total += rate;
    std::printf("epoch %d: %lld images in %.3f s = %.0f images/s\n", e, static_cast<long long>(n),
                s, rate);
  }
  std::printf("best %.0f images/s, mean %.0f images/s (target 20000 with 2 workers)\n", best,
              total / epochs);
  return 0;
}
