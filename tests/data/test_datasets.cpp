// Dataset readers and the batch loader, on small files the test writes itself (plus the real
// Fashion-MNIST files when Debian's dataset-fashion-mnist is installed).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/batch_loader.h"
#include "data/datasets.h"

namespace fs = std::filesystem;
using namespace okd;
using namespace okd::data;

namespace {
fs::path tmp_dir(const std::string& name) {
  fs::path p = fs::path(OKD_BINARY_DIR) / "test_tmp" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}
void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void write_file(const fs::path& p, const std::string& bytes, bool gzip) {
  if (!gzip) {
    std::ofstream(p, std::ios::binary) << bytes;
    return;
  }
  gzFile f = gzopen(p.string().c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
// n images of 28x28 where pixel (r, c) of image i is (i + r + c) % 256, label i % 10.
void write_idx(const fs::path& dir, const std::string& prefix, int n, bool gzip) {
  std::string img, lab;
  put_be32(img, 0x803);
  put_be32(img, n);
  put_be32(img, 28);
  put_be32(img, 28);
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) img.push_back(static_cast<char>((i + r + c) % 256));
  put_be32(lab, 0x801);
  put_be32(lab, n);
  for (int i = 0; i < n; ++i) lab.push_back(static_cast<char>(i % 10));
  std::string ext = gzip ? ".gz" : "";
  write_file(dir / (prefix + "-images-idx3-ubyte" + ext), img, gzip);
  write_file(dir / (prefix + "-labels-idx1-ubyte" + ext), lab, gzip);
}
}  // namespace

TEST(Idx, PlainAndGzipPaddedToThreeChannels) {
  for (bool gz : {false, true}) {
    fs::path d = tmp_dir(gz ? "idx_gz" : "idx_plain");
    write_idx(d, "train", 12, gz);
    ImageDataset ds = load_idx(d.string(), true, 32, 3);
    ASSERT_EQ(ds.size(), 12);
    EXPECT_EQ(ds.images.shape(), (Shape{12, 3, 32, 32}));
    EXPECT_EQ(ds.labels.at({11}), 1);
    // pixel (r, c) of the 28x28 image sits at (r + 2, c + 2); the border is zero
    EXPECT_EQ(ds.images.at({5, 0, 2 + 3, 2 + 4}), (5 + 3 + 4) % 256);
    EXPECT_EQ(ds.images.at({5, 2, 2 + 3, 2 + 4}), (5 + 3 + 4) % 256);
    EXPECT_EQ(ds.images.at({5, 1, 0, 0}), 0);
    EXPECT_EQ(ds.images.at({5, 1, 31, 31}), 0);
  }
}

TEST(Idx, TruncatedAndMissingFilesAreNamedErrors) {
  fs::path d = tmp_dir("idx_bad");
  write_idx(d, "train", 4, false);
  fs::resize_file(d / "train-images-idx3-ubyte", 16 + 3 * 784);
  try {
    load_idx(d.string(), true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-images-idx3-ubyte"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_idx(d.string(), false), Error);  // no t10k files
  EXPECT_THROW(load_idx((d / "nope").string(), true), Error);
}

TEST(Cifar, Cifar10And100RecordsAndErrors) {
  fs::path d = tmp_dir("cifar_rec") / "cifar-10-batches-bin";
  fs::create_directories(d);
  for (int b = 1; b <= 5; ++b) {
    std::string bytes;
    for (int r = 0; r < 2; ++r) {
      bytes.push_back(static_cast<char>((b + r) % 10));
      for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<char>((i + b) % 251));
    }
    write_file(d / ("data_batch_" + std::to_string(b) + ".bin"), bytes, false);
  }
  ImageDataset train = load_cifar10(d.parent_path().string(), true);  // the parent works too
  ASSERT_EQ(train.size(), 10);
  EXPECT_EQ(train.labels.at({2}), 2);                              // batch 2, record 0
  EXPECT_EQ(train.images.at({2, 1, 0, 5}), (1024 + 5 + 2) % 251);  // channel-major pixels
  EXPECT_THROW(load_cifar10(d.string(), false), Error);            // no test_batch.bin

  // A size that is not a multiple of the record length names the file.
  write_file(d / "test_batch.bin", std::string(3073 + 10, '\0'), false);
  try {
    load_cifar10(d.string(), false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin"), std::string::npos) << e.what();
  }

  fs::path c100 = tmp_dir("cifar100_rec");
  std::string bytes;
  for (int r = 0; r < 3; ++r) {
    bytes.push_back(static_cast<char>(r + 1));   // coarse
    bytes.push_back(static_cast<char>(50 + r));  // fine
    bytes += std::string(3072, static_cast<char>(r));
  }
  write_file(c100 / "train.bin", bytes, false);
  ImageDataset fine = load_cifar100(c100.string(), true);
  ImageDataset coarse = load_cifar100(c100.string(), true, true);
  EXPECT_EQ(fine.num_classes, 100);
  EXPECT_EQ(fine.labels.at({2}), 52);
  EXPECT_EQ(coarse.num_classes, 20);
  EXPECT_EQ(coarse.labels.at({2}), 3);
}

TEST(Loader, SameBatchesForAnyNumberOfWorkers) {
  fs::path d = tmp_dir("idx_loader");
  write_idx(d, "train", 50, false);
  ImageDataset ds = load_idx(d.string(), true, 32, 3);
  std::vector<std::vector<float>> reference;
  for (int workers : {0, 1, 2}) {
    LoaderOptions o;
    o.batch_size = 16;
    o.workers = workers;
    o.seed = 3;
    o.views = 2;
    o.augment.crop_padding = 4;
    o.augment.hflip = true;
    o.augment.mean = {0.5f, 0.5f, 0.5f};
    o.augment.std = {0.25f, 0.25f, 0.25f};
    BatchLoader loader(ds, o);
    EXPECT_EQ(loader.batches_per_epoch(), 4);
    loader.start_epoch(1);
    std::vector<std::vector<float>> got;
    int64_t seen = 0;
    const std::vector<int64_t> order = loader.epoch_order(1);
    while (auto b = loader.next()) {
      ASSERT_EQ(b->views.size(), 2u);
      // Each image's dataset index comes with it, and its label is that image's label.
      auto idx = to_vector<int64_t>(b->indices);
      auto lab = to_vector<int64_t>(b->labels);
      for (size_t i = 0; i < idx.size(); ++i) {
        EXPECT_EQ(idx[i], order[seen + i]);
        EXPECT_EQ(lab[i], ds.labels.at({idx[i]}));
      }
      got.push_back(to_vector<float>(b->views[0]));
      got.push_back(to_vector<float>(b->views[1]));
      seen += b->labels.numel();
    }
    EXPECT_EQ(seen, 50);
    if (reference.empty())
      reference = got;
    else
      EXPECT_EQ(got, reference) << workers << " workers";
  }
  // The two views of a batch differ (independent augmentations).
  EXPECT_NE(reference[0], reference[1]);
}

TEST(Augment, FlipCropAndNormalize) {
  // A 1-channel 3x3 image with values 0..8.
  std::vector<uint8_t> img{0, 1, 2, 3, 4, 5, 6, 7, 8};
  float out[9];
  Augment none;
  augment_image(img.data(), 1, 3, 3, none, 0, 0, 0, 0, out);
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(out[i], img[i] / 255.0f, 1e-6f);
  Augment norm;
  norm.mean = {0.5f};
  norm.std = {0.5f};
  augment_image(img.data(), 1, 3, 3, norm, 0, 0, 0, 0, out);
  EXPECT_NEAR(out[8], (8 / 255.0f - 0.5f) / 0.5f, 1e-6f);
  // With flipping on, some sample index flips: its rows come out reversed.
  Augment flip;
  flip.hflip = true;
  bool flipped = false, kept = false;
  for (uint64_t idx = 0; idx < 16; ++idx) {
    augment_image(img.data(), 1, 3, 3, flip, 0, 0, idx, 0, out);
    if (std::fabs(out[0] - 2 / 255.0f) < 1e-6f && out[2] == 0.0f) flipped = true;
    if (out[0] == 0.0f && std::fabs(out[2] - 2 / 255.0f) < 1e-6f) kept = true;
  }
  EXPECT_TRUE(flipped && kept);
  // With padding 1 every crop is a shift by -1, 0 or 1 with zeros coming in.
  Augment crop;
  crop.crop_padding = 1;
  for (uint64_t idx = 0; idx < 16; ++idx) {
    augment_image(img.data(), 1, 3, 3, crop, 0, 0, idx, 0, out);
    bool matched = false;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        bool ok = true;
        for (int y = 0; y < 3; ++y)
          for (int x = 0; x < 3; ++x) {
            int sy = y + dy, sx = x + dx;
            float want = (sy < 0 || sy > 2 || sx < 0 || sx > 2) ? 0.f : img[sy * 3 + sx] / 255.0f;
            ok = ok && std::fabs(out[y * 3 + x] - want) < 1e-6f;
          }
        matched = matched || ok;
      }
    EXPECT_TRUE(matched) << "sample " << idx;
  }
}

TEST(FashionMnist, RealFilesWhenInstalled) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << dir
                 << " (apt-get install dataset-fashion-mnist)";
  ImageDataset train = load_idx(dir, true, 32, 3), test = load_idx(dir, false, 32, 3);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(train.labels.at({0}), 9);  // the first training image is an ankle boot
  EXPECT_EQ(test.labels.at({0}), 9);
  std::vector<int64_t> counts(10, 0);
  for (int64_t y : to_vector<int64_t>(train.labels)) counts.at(y) += 1;
  for (int64_t c : counts) EXPECT_EQ(c, 6000);
}
