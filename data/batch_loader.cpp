// Batch assembly, per-sample augmentation and the prefetching worker threads.
#include "data/batch_loader.h"

#include <algorithm>
#include <cstring>

#include "data/transforms.h"
#include "tensor/random.h"

namespace okd::data {

namespace {
using Block = std::array<uint32_t, 4>;

// The random numbers of one use (purpose) for sample (epoch, index, view). Purpose 0 is the
// pad-crop offsets (words 0, 1) and the flip (word 2); 1 is cutout's centre; 2 + k is attempt k
// of the random resized crop.
Block draw(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t view, uint64_t purpose) {
  return philox4x32(index, (epoch << 8) | (view & 0xff),
                    seed ^ (0x5eedda7aULL + purpose * 0x9E3779B97F4A7C15ULL));
}
double unit(uint32_t u) { return u * (1.0 / 4294967296.0); }  // [0, 1)

// Steps 2-4 of the pipeline on a region of H x W pixels (row stride, plane stride) of src,
// which holds raw pixel values 0..255 (uint8, or float after a resample).
CropFlip crop_flip_of(const Augment& aug, const Block& r) {
  const int64_t P = aug.crop_padding;
  CropFlip cf;
  cf.dy = P > 0 ? static_cast<int64_t>(r[0] % static_cast<uint32_t>(2 * P + 1)) - P : 0;
  cf.dx = P > 0 ? static_cast<int64_t>(r[1] % static_cast<uint32_t>(2 * P + 1)) - P : 0;
  cf.flip = aug.hflip && (r[2] & 1u);
  return cf;
}

template <class T>
void crop_flip_normalize(const T* src, int64_t row_stride, int64_t plane_stride, int64_t C,
                         int64_t H, int64_t W, const Augment& aug, const Block& r, float* out) {
  const auto [dy, dx, flip] = crop_flip_of(aug, r);
  const bool norm = !aug.mean.empty();
  for (int64_t c = 0; c < C; ++c) {
    const float scale = norm ? 1.0f / (255.0f * aug.std[c]) : 1.0f / 255.0f;
    const float shift = norm ? -aug.mean[c] / aug.std[c] : 0.0f;
    const T* plane = src + c * plane_stride;
    float* o = out + c * H * W;
    for (int64_t y = 0; y < H; ++y) {
      int64_t sy = y + dy;
      bool row_out = sy < 0 || sy >= H;
      if (row_out && aug.reflect_padding) {
        sy = sy < 0 ? -sy : 2 * (H - 1) - sy;
        row_out = false;
      }
      for (int64_t x = 0; x < W; ++x) {
        const int64_t ox = flip ? W - 1 - x : x;
        int64_t sx = x + dx;
        bool out_of = row_out || sx < 0 || sx >= W;
        if (!row_out && (sx < 0 || sx >= W) && aug.reflect_padding) {
          sx = sx < 0 ? -sx : 2 * (W - 1) - sx;
          out_of = false;
        }
        // Zero padding pads raw pixels with 0 (before normalisation), as torchvision does.
        const float v = out_of ? 0.0f : static_cast<float>(plane[sy * row_stride + sx]);
        o[y * W + ox] = v * scale + shift;
      }
    }
  }
}

}  // namespace

Box sample_resized_crop_box(const Augment& aug, int64_t H, int64_t W, uint64_t seed, uint64_t epoch,
                            uint64_t index, uint64_t view) {
  std::array<std::array<double, 4>, 10> u;
  for (uint64_t k = 0; k < u.size(); ++k) {
    const Block b = draw(seed, epoch, index, view, 2 + k);
    for (int j = 0; j < 4; ++j) u[k][j] = unit(b[j]);
  }
  return random_resized_crop_box(H, W, aug.rrc_scale, aug.rrc_ratio, u);
}

std::array<int64_t, 2> check_augment(const Augment& aug, int64_t C, int64_t H, int64_t W) {
  if (!aug.mean.empty())
    OKD_CHECK(
        static_cast<int64_t>(aug.mean.size()) == C && static_cast<int64_t>(aug.std.size()) == C,
        "augment: normalisation has ", aug.mean.size(), " means and ", aug.std.size(), " stds for ",
        C, " channels");
  OKD_CHECK(aug.random_resized_crop == 0 || (aug.resize == 0 && aug.center_crop == 0),
            "augment: random_resized_crop replaces resize and center_crop; set only one");
  OKD_CHECK(aug.random_resized_crop >= 0 && aug.resize >= 0 && aug.center_crop >= 0 &&
                aug.crop_padding >= 0 && aug.cutout >= 0,
            "augment: sizes must be >= 0");
  if (aug.random_resized_crop > 0) {
    OKD_CHECK(aug.rrc_scale[0] > 0 && aug.rrc_scale[0] <= aug.rrc_scale[1],
              "augment: random resized crop scale range (", aug.rrc_scale[0], ", ",
              aug.rrc_scale[1], ") must satisfy 0 < min <= max");
    OKD_CHECK(aug.rrc_ratio[0] > 0 && aug.rrc_ratio[0] <= aug.rrc_ratio[1],
              "augment: random resized crop ratio range (", aug.rrc_ratio[0], ", ",
              aug.rrc_ratio[1], ") must satisfy 0 < min <= max");
    H = W = aug.random_resized_crop;
  }
  if (aug.resize > 0) H = W = aug.resize;
  if (aug.center_crop > 0) {
    OKD_CHECK(aug.center_crop <= H && aug.center_crop <= W, "augment: center crop ",
              aug.center_crop, " is larger than the ", H, "x", W, " image");
    H = W = aug.center_crop;
  }
  if (aug.reflect_padding)
    OKD_CHECK(aug.crop_padding < H && aug.crop_padding < W, "augment: reflect padding ",
              aug.crop_padding, " must be smaller than the ", H, "x", W, " image");
  return {H, W};
}

CropFlip sample_crop_flip(const Augment& aug, uint64_t seed, uint64_t epoch, uint64_t index,
                          uint64_t view) {
  return crop_flip_of(aug, draw(seed, epoch, index, view, 0));
}

void augment_image(const uint8_t* img, int64_t C, int64_t H, int64_t W, const Augment& aug,
                   uint64_t seed, uint64_t epoch, uint64_t index, uint64_t view, float* out) {
  const Block r = draw(seed, epoch, index, view, 0);
  int64_t OH = H, OW = W;
  if (aug.random_resized_crop > 0 || aug.resize > 0) {
    // Resample (the crop box of) the image into raw float pixels, then the rest of the pipeline.
    thread_local std::vector<float> geo;
    Box box{0, 0, H, W};
    if (aug.random_resized_crop > 0) {
      box = sample_resized_crop_box(aug, H, W, seed, epoch, index, view);
      OH = OW = aug.random_resized_crop;
    } else {
      OH = OW = aug.resize;
    }
    geo.resize(static_cast<size_t>(C * OH * OW));
    resample_box(img, C, H, W, box, geo.data(), OH, OW, /*antialias=*/true);
    Box crop{0, 0, OH, OW};
    if (aug.center_crop > 0) crop = center_crop_box(OH, OW, aug.center_crop, aug.center_crop);
    crop_flip_normalize(geo.data() + crop.top * OW + crop.left, OW, OH * OW, C, crop.height,
                        crop.width, aug, r, out);
    OH = crop.height;
    OW = crop.width;
  } else if (aug.center_crop > 0) {
    const Box crop = center_crop_box(H, W, aug.center_crop, aug.center_crop);
    crop_flip_normalize(img + crop.top * W + crop.left, W, H * W, C, crop.height, crop.width, aug,
                        r, out);
    OH = crop.height;
    OW = crop.width;
  } else {
    crop_flip_normalize(img, W, H * W, C, H, W, aug, r, out);
  }
  if (aug.cutout > 0) {
    const Block u = draw(seed, epoch, index, view, 1);
    fill_box(out, C, OH, OW, cutout_box(OH, OW, aug.cutout, unit(u[0]), unit(u[1])), 0.0f);
  }
}

BatchLoader::BatchLoader(ImageDataset dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), opt_(std::move(options)) {
  OKD_CHECK(opt_.batch_size >= 1, "BatchLoader: batch_size must be positive");
  OKD_CHECK(opt_.views >= 1, "BatchLoader: views must be at least 1");
  OKD_CHECK(dataset_.size() > 0, "BatchLoader: dataset ", dataset_.name, " is empty");
  out_size_ = check_augment(opt_.augment, dataset_.images.size(1), dataset_.images.size(2),
                            dataset_.images.size(3));
}

BatchLoader::~BatchLoader() { stop_workers(); }

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  if (!opt_.shuffle) {
    std::vector<int64_t> v(size());
    for (int64_t i = 0; i < size(); ++i) v[i] = i;
    return v;
  }
  Generator gen(opt_.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  return to_vector<int64_t>(randperm(size(), gen));
}

LoadedBatch BatchLoader::build(int64_t batch) const {
  const int64_t start = batch * opt_.batch_size;
  const int64_t B = std::min(opt_.batch_size, size() - start);
  const int64_t C = dataset_.images.size(1), H = dataset_.images.size(2),
                W = dataset_.images.size(3);
  LoadedBatch out;
  out.labels = empty({B}, DType::Int64);
  out.indices = empty({B}, DType::Int64);
  const uint8_t* imgs = dataset_.images.data<uint8_t>();
  const int64_t* labels = dataset_.labels.data<int64_t>();
  const int64_t OH = out_size_[0], OW = out_size_[1];
  for (int v = 0; v < opt_.views; ++v) out.views.push_back(empty({B, C, OH, OW}, DType::Float32));
  for (int64_t i = 0; i < B; ++i) {
    const int64_t idx = order_[start + i];
    out.labels.data<int64_t>()[i] = labels[idx];
    out.indices.data<int64_t>()[i] = idx;
    for (int v = 0; v < opt_.views; ++v)
      augment_image(imgs + idx * C * H * W, C, H, W, opt_.augment, opt_.seed,
                    static_cast<uint64_t>(epoch_), static_cast<uint64_t>(idx),
                    static_cast<uint64_t>(v), out.views[v].data<float>() + i * C * OH * OW);
  }
  return out;
}

void BatchLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  ready_.clear();
  error_ = nullptr;
  stopping_ = false;
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  next_batch_ = first_batch;
  produce_next_ = first_batch;
  ++generation_;
  for (int w = 0; w < opt_.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
}

void BatchLoader::worker_loop() {
  const int64_t depth = 2 * std::max(opt_.workers, 1);
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || produce_next_ < next_batch_ + depth; });
      if (stopping_ || produce_next_ >= batches_per_epoch()) return;
      b = produce_next_++;
    }
    try {
      LoadedBatch lb = build(b);
      std::lock_guard<std::mutex> lock(mu_);
      ready_[b] = std::move(lb);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

std::optional<LoadedBatch> BatchLoader::next() {
  if (next_batch_ >= batches_per_epoch()) return std::nullopt;
  if (opt_.workers == 0) return build(next_batch_++);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || ready_.count(next_batch_) != 0; });
  if (error_) std::rethrow_exception(error_);
  LoadedBatch lb = std::move(ready_[next_batch_]);
  ready_.erase(next_batch_);
  ++next_batch_;
  lock.unlock();
  cv_.notify_all();
  return lb;
}

}  // namespace okd::data
