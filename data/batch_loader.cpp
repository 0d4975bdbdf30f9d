// Batch assembly, per-sample augmentation and the prefetching worker threads.
#include "data/batch_loader.h"

#include <algorithm>
#include <cstring>

#include "tensor/random.h"

namespace okd::data {

void augment_image(const uint8_t* img, int64_t C, int64_t H, int64_t W, const Augment& aug,
                   uint64_t seed, uint64_t epoch, uint64_t index, uint64_t view, float* out) {
  // One Philox block per (epoch, index, view): words 0-1 pick the crop offset, word 2 the flip.
  auto r = philox4x32(index, (epoch << 8) | (view & 0xff), seed ^ 0x5eedda7aULL);
  const int64_t P = aug.crop_padding;
  const int64_t dy = P > 0 ? static_cast<int64_t>(r[0] % static_cast<uint32_t>(2 * P + 1)) - P : 0;
  const int64_t dx = P > 0 ? static_cast<int64_t>(r[1] % static_cast<uint32_t>(2 * P + 1)) - P : 0;
  const bool flip = aug.hflip && (r[2] & 1u);
  const bool norm = !aug.mean.empty();
  for (int64_t c = 0; c < C; ++c) {
    const float scale = norm ? 1.0f / (255.0f * aug.std[c]) : 1.0f / 255.0f;
    const float shift = norm ? -aug.mean[c] / aug.std[c] : 0.0f;
    const uint8_t* plane = img + c * H * W;
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
        const float v = out_of ? 0.0f : static_cast<float>(plane[sy * W + sx]);
        o[y * W + ox] = v * scale + shift;
      }
    }
  }
}

BatchLoader::BatchLoader(ImageDataset dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), opt_(std::move(options)) {
  OKD_CHECK(opt_.batch_size >= 1, "BatchLoader: batch_size must be positive");
  OKD_CHECK(opt_.views >= 1, "BatchLoader: views must be at least 1");
  OKD_CHECK(dataset_.size() > 0, "BatchLoader: dataset ", dataset_.name, " is empty");
  const int64_t C = dataset_.images.size(1);
  if (!opt_.augment.mean.empty())
    OKD_CHECK(static_cast<int64_t>(opt_.augment.mean.size()) == C &&
                  static_cast<int64_t>(opt_.augment.std.size()) == C,
              "BatchLoader: normalisation has ", opt_.augment.mean.size(), " means and ",
              opt_.augment.std.size(), " stds for ", C, " channels");
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
  const uint8_t* imgs = dataset_.images.data<uint8_t>();
  const int64_t* labels = dataset_.labels.data<int64_t>();
  for (int v = 0; v < opt_.views; ++v) out.views.push_back(empty({B, C, H, W}, DType::Float32));
  for (int64_t i = 0; i < B; ++i) {
    const int64_t idx = order_[start + i];
    out.labels.data<int64_t>()[i] = labels[idx];
    for (int v = 0; v < opt_.views; ++v)
      augment_image(imgs + idx * C * H * W, C, H, W, opt_.augment, opt_.seed,
                    static_cast<uint64_t>(epoch_), static_cast<uint64_t>(idx),
                    static_cast<uint64_t>(v), out.views[v].data<float>() + i * C * H * W);
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
