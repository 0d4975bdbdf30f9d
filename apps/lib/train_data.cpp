// Dataset choice for train_cifar: what --dataset and --data-dir name, with the standard CIFAR
// pipeline (random crop 32 with zero padding 4, horizontal flip, per-dataset normalisation).
#include "apps/lib/train_data.h"

#include "data/batch_loader.h"

namespace okd::apps {

namespace {

class LoaderSplit : public TrainData::Split {
 public:
  LoaderSplit(data::ImageDataset ds, data::LoaderOptions o)
      : loader_(std::move(ds), std::move(o)) {}
  int64_t size() const override { return loader_.size(); }
  int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override {
    loader_.start_epoch(epoch, first_batch);
  }
  std::optional<distill::Batch> next() override {
    auto b = loader_.next();
    if (!b) return std::nullopt;
    return distill::Batch{std::move(b->views), std::move(b->labels)};
  }

 private:
  data::BatchLoader loader_;
};

}  // namespace

std::unique_ptr<TrainData> make_train_data(const TrainConfig& cfg, int views) {
  data::ImageDataset train, test;
  std::vector<float> mean, std;
  std::string name;
  if (cfg.dataset == "fashion-mnist" || cfg.dataset == "mnist") {
    train = data::load_idx(cfg.data_dir, true, 32, 3, cfg.dataset);
    test = data::load_idx(cfg.data_dir, false, 32, 3, cfg.dataset);
    // Per-pixel statistics of the 28x28 training images, replicated over the three channels.
    const float m = cfg.dataset == "mnist" ? 0.1307f : 0.2860f,
                s = cfg.dataset == "mnist" ? 0.3081f : 0.3530f;
    mean = {m, m, m};
    std = {s, s, s};
    name = cfg.dataset == "mnist" ? "MNIST" : "Fashion-MNIST";
  } else if (cfg.dataset == "cifar10") {
    train = data::load_cifar10(cfg.data_dir, true);
    test = data::load_cifar10(cfg.data_dir, false);
    mean = {0.4914f, 0.4822f, 0.4465f};
    std = {0.2470f, 0.2435f, 0.2616f};
    name = "CIFAR-10";
  } else if (cfg.dataset == "cifar100") {
    train = data::load_cifar100(cfg.data_dir, true);
    test = data::load_cifar100(cfg.data_dir, false);
    mean = {0.5071f, 0.4865f, 0.4409f};
    std = {0.2673f, 0.2564f, 0.2762f};
    name = "CIFAR-100";
  } else {
    OKD_FAIL("--dataset ", cfg.dataset,
             ": not supported by train_cifar yet (use cifar10, cifar100, "
             "fashion-mnist or mnist)");
  }
  train = train.first(cfg.limit_train);
  test = test.first(cfg.limit_test);

  auto out = std::make_unique<TrainData>();
  out->num_classes = train.num_classes;
  out->channels = train.images.size(1);
  out->image_size = train.images.size(2);
  out->description =
      name + " (" + cfg.data_dir + "): " + std::to_string(train.size()) + " train, " +
      std::to_string(test.size()) + " test, " + std::to_string(train.num_classes) + " classes, " +
      std::to_string(out->channels) + "x" + std::to_string(out->image_size) + "x" +
      std::to_string(out->image_size) +
      (cfg.augment == "standard" ? ", augmentation: crop 32 pad 4 + flip" : ", no augmentation");

  data::LoaderOptions tr;
  tr.batch_size = cfg.batch_size;
  tr.shuffle = true;
  tr.drop_last = false;
  tr.seed = cfg.seed;
  tr.workers = cfg.workers;
  tr.views = views;
  tr.augment.mean = mean;
  tr.augment.std = std;
  if (cfg.augment == "standard") {
    tr.augment.crop_padding = 4;
    tr.augment.hflip = true;
  }
  data::LoaderOptions te = tr;
  te.shuffle = false;
  te.views = 1;
  te.batch_size = std::max<int64_t>(cfg.batch_size, 256);
  te.augment.crop_padding = 0;
  te.augment.hflip = false;
  out->train = std::make_unique<LoaderSplit>(std::move(train), tr);
  out->test = std::make_unique<LoaderSplit>(std::move(test), te);
  return out;
}

}  // namespace okd::apps
