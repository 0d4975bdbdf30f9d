// In-memory image classification datasets: images as uint8 [N, C, H, W] plus int64 labels, read
// from CIFAR-10/100 binaries and MNIST/Fashion-MNIST IDX files (gzip or plain); ImageFolder
// directories are in data/image_folder.h. Bad files are errors naming the file and the fault.
#pragma once
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace okd::data {

struct ImageDataset {
  Tensor images;  // uint8 [N, C, H, W]
  Tensor labels;  // int64 [N]
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::string name;  // "cifar10/train" ...
  int64_t size() const { return labels.defined() ? labels.numel() : 0; }
  // The first n samples (n <= 0 or >= size: everything), sharing no storage with this one.
  ImageDataset first(int64_t n) const;
  // n samples drawn without replacement by a permutation seeded with seed (n <= 0 or >= size:
  // everything), kept in their original order; the same (n, seed) always picks the same ones.
  ImageDataset random_subset(int64_t n, uint64_t seed) const;
  // The samples at indices, in that order (a fresh copy).
  ImageDataset subset(const std::vector<int64_t>& indices) const;
};

// CIFAR-10 (data_batch_1..5.bin / test_batch.bin: label byte + 3072 bytes) from dir, which may be
// cifar-10-batches-bin itself or its parent.
ImageDataset load_cifar10(const std::string& dir, bool train);
// CIFAR-100 (train.bin / test.bin: coarse byte, fine byte, 3072 bytes); fine labels unless coarse.
ImageDataset load_cifar100(const std::string& dir, bool train, bool coarse = false);
// MNIST-format IDX files (train-images-idx3-ubyte[.gz] ...). pad_to (e.g. 32) zero-pads each image
// centred; channels 3 replicates the grey channel so CIFAR networks run unchanged.
ImageDataset load_idx(const std::string& dir, bool train, int64_t pad_to = 0, int64_t channels = 1,
                      const std::string& name = "fashion-mnist");
// Reads a whole file, transparently gunzipping when it starts with the gzip magic.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace okd::data
