// BatchLoader: turns an in-memory ImageDataset into contiguous float32 NCHW batches with int64
// labels. Shuffling draws from (seed, epoch); each image's augmentation draws from
// (seed, epoch, image index, view), so batches are identical for any number of worker threads.
// Workers build batches ahead (prefetch) and batches come out in order; an exception in a worker
// is rethrown to the consumer.
#pragma once
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/datasets.h"

namespace okd::data {

struct Augment {
  int64_t crop_padding = 0;  // random crop back to the image size after padding by this much
  bool reflect_padding = false;
  bool hflip = false;            // horizontal flip with p = 0.5
  std::vector<float> mean, std;  // per channel, on [0, 1] pixel values; empty: no normalisation
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int workers = 2;  // 0: build batches on the calling thread
  int views = 1;    // independent augmentations of each image
  Augment augment;
};

struct LoadedBatch {
  std::vector<Tensor> views;  // float32 [B, C, H, W] each
  Tensor labels;              // int64 [B]
};

// Applies aug to image i of ds (uint8 [C, H, W]) into out (float32 [C, H, W]) with its own
// random stream; exposed for tests.
void augment_image(const uint8_t* image, int64_t C, int64_t H, int64_t W, const Augment& aug,
                   uint64_t seed, uint64_t epoch, uint64_t index, uint64_t view, float* out);

class BatchLoader {
 public:
  BatchLoader(ImageDataset dataset, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t size() const { return dataset_.size(); }
  int64_t batches_per_epoch() const;
  const ImageDataset& dataset() const { return dataset_; }
  // Starts (or restarts) an epoch at batch first_batch.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  std::optional<LoadedBatch> next();
  // The sample order of an epoch (a permutation when shuffling).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  LoadedBatch build(int64_t batch) const;
  void stop_workers();
  void worker_loop();

  ImageDataset dataset_;
  LoaderOptions opt_;
  int64_t epoch_ = 0, next_batch_ = 0, produce_next_ = 0;
  std::vector<int64_t> order_;
  // prefetching
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, LoadedBatch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
  int64_t generation_ = 0;
};

}  // namespace okd::data
