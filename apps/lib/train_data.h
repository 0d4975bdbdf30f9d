// The datasets and loaders of a train_cifar run, chosen from the config: the training split with
// the augmentation (and V views per image when the method asks), the test split without.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "apps/lib/train_config.h"
#include "distill/method.h"

namespace okd::apps {

struct TrainData {
  class Split {
   public:
    virtual ~Split() = default;
    virtual int64_t size() const = 0;  // images in the split (after --limit-*)
    virtual int64_t batches_per_epoch() const = 0;
    // Starts an epoch at batch `first_batch` (resume); the order depends on (seed, epoch) only.
    virtual void start_epoch(int64_t epoch, int64_t first_batch = 0) = 0;
    // The next batch of the epoch, or nothing at its end.
    virtual std::optional<distill::Batch> next() = 0;
    // Every label of the split, int64 [size()], in dataset order (memory-bank methods).
    virtual Tensor labels() const = 0;
  };
  std::unique_ptr<Split> train, test;
  int64_t num_classes = 10, channels = 3, image_size = 32;
  std::string description;  // "Fashion-MNIST (/usr/share/...): 60000 train, 10000 test, 10 classes"
};

std::unique_ptr<TrainData> make_train_data(const TrainConfig& cfg, int views);

}  // namespace okd::apps
