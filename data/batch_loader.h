// BatchLoader: turns an in-memory ImageDataset into contiguous float32 NCHW batches with int64
// labels. Shuffling draws from (seed, epoch); each image's augmentation draws from
// (seed, epoch, image index, view), so batches are identical for any number of worker threads.
// Workers build batches ahead (prefetch) and batches come out in order; an exception in a worker
// is rethrown to the consumer.
#pragma once
#include <array>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/datasets.h"
#include "data/transforms.h"

namespace okd::data {

// The augmentation of one image, in this fixed order (each step off unless set):
//   1. geometry: a random resized crop to random_resized_crop x random_resized_crop, or else a
//      resize to resize x resize followed by a centre crop to center_crop x center_crop
//      (bilinear, antialiased when shrinking: see data/transforms.h);
//   2. random crop back to the current size after padding by crop_padding (zeros or reflection);
//   3. horizontal flip with p = 0.5;
//   4. scaling to [0, 1] and per-channel normalisation (x - mean) / std;
//   5. cutout: a cutout x cutout square set to 0 (after normalisation, as DeVries & Taylor do).
// Flipping after the crops gives the same distribution as flipping first (EKD-FWSNet applies
// the flip before RandomResizedCrop): the crop boxes are distributed symmetrically.
struct Augment {
  int64_t random_resized_crop = 0;                        // output side; 0: off
  std::array<double, 2> rrc_scale{0.08, 1.0};             // area fraction of the crop
  std::array<double, 2> rrc_ratio{3.0 / 4.0, 4.0 / 3.0};  // width / height of the crop
  int64_t resize = 0;        // output side of a resize of the whole image; 0: off
  int64_t center_crop = 0;   // output side; 0: off
  int64_t crop_padding = 0;  // random crop back to the image size after padding by this much
  bool reflect_padding = false;
  bool hflip = false;            // horizontal flip with p = 0.5
  std::vector<float> mean, std;  // per channel, on [0, 1] pixel values; empty: no normalisation
  int64_t cutout = 0;            // side of the erased square; 0: off
};

// Throws when aug cannot apply to [C, H, W] images (normalisation size, crops that do not fit,
// empty ranges). Returns the [height, width] an image comes out with.
std::array<int64_t, 2> check_augment(const Augment& aug, int64_t C, int64_t H, int64_t W);

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
  Tensor indices;             // int64 [B]: each image's index in the dataset (memory banks)
};

// Applies aug to one image (uint8 [C, H, W]) into out (float32 [C, OH, OW], the size that
// check_augment returns). Its random numbers depend only on (seed, epoch, index, view): Philox
// blocks with the sample index as counter, (epoch, view) as the counter's high word and
// seed ^ (a constant for each use) as key. Exposed for tests.
void augment_image(const uint8_t* image, int64_t C, int64_t H, int64_t W, const Augment& aug,
                   uint64_t seed, uint64_t epoch, uint64_t index, uint64_t view, float* out);

// The random pad-crop offsets and flip of aug for this sample (0, 0, false when aug has neither),
// the draws augment_image makes: what ops::crop_flip_normalize takes as its params.
struct CropFlip {
  int64_t dy = 0, dx = 0;
  bool flip = false;
};
CropFlip sample_crop_flip(const Augment& aug, uint64_t seed, uint64_t epoch, uint64_t index,
                          uint64_t view);

// The box of image (H x W) that the random resized crop of aug takes for this sample.
Box sample_resized_crop_box(const Augment& aug, int64_t H, int64_t W, uint64_t seed, uint64_t epoch,
                            uint64_t index, uint64_t view);

class BatchLoader {
 public:
  BatchLoader(ImageDataset dataset, LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t size() const { return dataset_.size(); }
  int64_t batches_per_epoch() const;
  const ImageDataset& dataset() const { return dataset_; }
  // The [height, width] of the images in a batch (after the augmentation's geometry).
  std::array<int64_t, 2> image_size() const { return out_size_; }
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
  std::array<int64_t, 2> out_size_{0, 0};
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
