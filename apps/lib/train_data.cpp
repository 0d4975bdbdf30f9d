// Dataset choice for train_cifar: what --dataset and --data-dir name, with the training pipeline
// of --augment (standard: random crop with zero padding 4 + horizontal flip; flip-rrc: flip +
// random resized crop), optional cutout, and per-dataset normalisation.
#include "apps/lib/train_data.h"

#include <filesystem>

#include "data/batch_loader.h"
#include "data/image_folder.h"
#include "tensor/ops/augment.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"

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
    return distill::Batch{std::move(b->views), std::move(b->labels), std::move(b->indices)};
  }
  Tensor labels() const override { return loader_.dataset().labels; }

 private:
  data::BatchLoader loader_;
};

// The training split kept on the device (--data-on-device, issue 9): the images (uint8) and
// labels are uploaded once; each batch uploads only its sample indices and each view's crop and
// flip draws (the host loader's own: data::sample_crop_flip over the loader's epoch order) and is
// augmented there by ops::crop_flip_normalize, so its batches equal the host loader's bit for bit.
// The standard pipeline only (pad-crop, flip, normalisation); the others stay on the host.
class DeviceSplit : public TrainData::Split {
 public:
  DeviceSplit(data::ImageDataset ds, data::LoaderOptions o, Device device)
      : order_(std::move(ds), without_workers(o)), opt_(std::move(o)), device_(device) {
    const data::Augment& a = opt_.augment;
    OKD_CHECK(a.random_resized_crop == 0 && a.resize == 0 && a.center_crop == 0 && a.cutout == 0,
              "--data-on-device: the device augments with the standard pipeline only (random "
              "crop with padding, flip, normalisation); --augment flip-rrc and --cutout run on "
              "the host (drop --data-on-device)");
    const data::ImageDataset& d = order_.dataset();
    images_ = ops::to(d.images, device_);
    labels_ = ops::to(d.labels, device_);
    const int64_t C = d.images.size(1);
    std::vector<float> scale(C), shift(C);
    for (int64_t c = 0; c < C; ++c) {  // as data/batch_loader.cpp's crop_flip_normalize
      const bool norm = !a.mean.empty();
      scale[c] = norm ? 1.0f / (255.0f * a.std[c]) : 1.0f / 255.0f;
      shift[c] = norm ? -a.mean[c] / a.std[c] : 0.0f;
    }
    scale_ = ops::to(from_vector<float>(scale), device_);
    shift_ = ops::to(from_vector<float>(shift), device_);
  }
  int64_t size() const override { return order_.size(); }
  int64_t batches_per_epoch() const override { return order_.batches_per_epoch(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override {
    epoch_ = epoch;
    next_batch_ = first_batch;
    order_of_epoch_ = order_.epoch_order(epoch);
  }
  std::optional<distill::Batch> next() override {
    if (next_batch_ >= batches_per_epoch()) return std::nullopt;
    const int64_t start = next_batch_++ * opt_.batch_size;
    const int64_t B = std::min(opt_.batch_size, size() - start);
    const std::vector<int64_t> idx(order_of_epoch_.begin() + start,
                                   order_of_epoch_.begin() + start + B);
    distill::Batch b;
    b.indices = ops::to(from_vector<int64_t>(idx), device_);
    b.labels = ops::index_select(labels_, 0, b.indices);
    for (int v = 0; v < opt_.views; ++v) {
      std::vector<int64_t> params(3 * B);
      for (int64_t i = 0; i < B; ++i) {
        const data::CropFlip cf =
            data::sample_crop_flip(opt_.augment, opt_.seed, static_cast<uint64_t>(epoch_),
                                   static_cast<uint64_t>(idx[i]), static_cast<uint64_t>(v));
        params[3 * i] = cf.dy;
        params[3 * i + 1] = cf.dx;
        params[3 * i + 2] = cf.flip ? 1 : 0;
      }
      b.views.push_back(ops::crop_flip_normalize(
          images_, b.indices, ops::to(from_vector<int64_t>(params, {B, 3}), device_), scale_,
          shift_, opt_.augment.reflect_padding));
    }
    return b;
  }
  Tensor labels() const override { return order_.dataset().labels; }

 private:
  static data::LoaderOptions without_workers(data::LoaderOptions o) {
    o.workers = 0;  // the loader only gives the epoch order here
    return o;
  }
  data::BatchLoader order_;
  data::LoaderOptions opt_;
  Device device_;
  Tensor images_, labels_, scale_, shift_;
  int64_t epoch_ = 0, next_batch_ = 0;
  std::vector<int64_t> order_of_epoch_;
};

// DIR/train, and DIR/val or else DIR/test, as ImageFolders (the evaluation split takes the
// training split's classes; TinyImageNet's val/ with val_annotations.txt is read as distributed);
// or CUB-200-2011 as distributed (DIR/images/, images.txt, train_test_split.txt).
void load_image_folders(const TrainConfig& cfg, data::ImageDataset& train,
                        data::ImageDataset& test) {
  namespace fs = std::filesystem;
  const fs::path dir(cfg.data_dir), train_dir = dir / "train";
  data::ImageFolderOptions o;
  o.image_size = cfg.image_size;
  o.threads = cfg.threads;
  if (!fs::is_directory(train_dir) && fs::exists(dir / "images.txt") &&
      fs::exists(dir / "train_test_split.txt")) {
    train = data::load_cub200(dir.string(), true, o);
    test = data::load_cub200(dir.string(), false, o);
  } else {
    OKD_CHECK(fs::is_directory(train_dir), "--dataset imagefolder: no training folder ",
              train_dir.string(),
              " (expected DIR/train/<class>/<image> and DIR/val or DIR/test, or CUB-200-2011's "
              "DIR/images/, DIR/images.txt and DIR/train_test_split.txt)");
    fs::path test_dir;
    for (const char* name : {"val", "test"})
      if (test_dir.empty() && fs::is_directory(dir / name)) test_dir = dir / name;
    OKD_CHECK(!test_dir.empty(), "--dataset imagefolder: no evaluation folder: looked for ",
              (dir / "val").string(), " and ", (dir / "test").string(),
              " (each laid out as DIR/train: one folder per class)");
    o.name = "imagefolder/train";
    train = data::load_image_folder(train_dir.string(), o);
    o.classes = train.class_names;
    o.name = "imagefolder/" + test_dir.filename().string();
    test = fs::exists(test_dir / "val_annotations.txt")
               ? data::load_tinyimagenet_val(test_dir.string(), o)
               : data::load_image_folder(test_dir.string(), o);
  }
  OKD_CHECK(
      test.images.size(2) == train.images.size(2) && test.images.size(3) == train.images.size(3),
      "--dataset imagefolder: the evaluation images are ", test.images.size(3), "x",
      test.images.size(2), " but the training images are ", train.images.size(3), "x",
      train.images.size(2), "; pass --image-size");
  OKD_CHECK(train.images.size(2) == train.images.size(3), "--dataset imagefolder: the images are ",
            train.images.size(3), "x", train.images.size(2),
            "; the networks take square images: pass --image-size");
}

data::ImageDataset limit(const data::ImageDataset& d, int64_t n, const TrainConfig& cfg) {
  return cfg.limit_random ? d.random_subset(n, cfg.seed) : d.first(n);
}

std::string augment_description(const TrainConfig& cfg, int64_t size) {
  const std::string s = std::to_string(size);
  std::string d =
      cfg.augment == "standard"
          ? "crop " + s + " pad 4" + (cfg.padding == "reflect" ? " (reflect)" : "") + " + flip"
      : cfg.augment == "flip-rrc" ? "flip + random resized crop " + s + " scale (" +
                                        str(cfg.rrc_min_scale) + ", 1) ratio (3/4, 4/3)"
                                  : "";
  if (cfg.cutout > 0) d += (d.empty() ? "" : " + ") + ("cutout " + std::to_string(cfg.cutout));
  if (cfg.normalize == "imagenet") d += (d.empty() ? "" : ", ") + std::string("ImageNet mean/std");
  return d.empty() ? ", no augmentation" : ", augmentation: " + d;
}

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
  } else if (cfg.dataset == "imagefolder") {
    load_image_folders(cfg, train, test);
    // ImageNet's statistics, the usual choice for photographs.
    mean = {0.485f, 0.456f, 0.406f};
    std = {0.229f, 0.224f, 0.225f};
    name = "ImageFolder";
  } else {
    OKD_FAIL("--dataset ", cfg.dataset,
             ": not supported by train_cifar (use cifar10, cifar100, fashion-mnist, mnist or "
             "imagefolder)");
  }
  if (cfg.normalize == "imagenet") {
    mean = {0.485f, 0.456f, 0.406f};
    std = {0.229f, 0.224f, 0.225f};
  }
  train = limit(train, cfg.limit_train, cfg);
  test = limit(test, cfg.limit_test, cfg);

  auto out = std::make_unique<TrainData>();
  out->num_classes = train.num_classes;
  out->channels = train.images.size(1);
  out->image_size = train.images.size(2);
  out->description = name + " (" + cfg.data_dir + "): " + std::to_string(train.size()) +
                     " train, " + std::to_string(test.size()) + " test, " +
                     std::to_string(train.num_classes) + " classes, " +
                     std::to_string(out->channels) + "x" + std::to_string(out->image_size) + "x" +
                     std::to_string(out->image_size) + augment_description(cfg, out->image_size);

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
    tr.augment.reflect_padding = cfg.padding == "reflect";
    tr.augment.hflip = true;
  } else if (cfg.augment == "flip-rrc") {
    tr.augment.hflip = true;
    tr.augment.random_resized_crop = out->image_size;
    tr.augment.rrc_scale = {cfg.rrc_min_scale, 1.0};
    tr.augment.rrc_ratio = {3.0 / 4.0, 4.0 / 3.0};
  }
  tr.augment.cutout = cfg.cutout;
  data::LoaderOptions te = tr;
  te.shuffle = false;
  te.views = 1;
  te.batch_size = std::max<int64_t>(cfg.batch_size, 256);
  te.augment = data::Augment{};
  te.augment.mean = mean;
  te.augment.std = std;
  if (cfg.data_on_device) {
    const Device device = Device::parse(cfg.device);
    OKD_CHECK(device.is_cuda(), "--data-on-device needs --device cuda (got --device ", cfg.device,
              ")");
    out->train = std::make_unique<DeviceSplit>(std::move(train), tr, device);
    out->description += " (training images augmented on " + device.str() + ")";
  } else {
    out->train = std::make_unique<LoaderSplit>(std::move(train), tr);
  }
  out->test = std::make_unique<LoaderSplit>(std::move(test), te);
  return out;
}

}  // namespace okd::apps
