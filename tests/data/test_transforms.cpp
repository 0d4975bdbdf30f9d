// The image transforms against torch / torchvision (tests/data/transforms/, made by
// tests/reference/make_data_refs.py) and the augmentation pipeline's randomness: random resized
// crop boxes, cutout, reproducibility for any worker count, and the unchanged default path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "data/batch_loader.h"
#include "data/transforms.h"
#include "tensor/ops/augment.h"
#include "tensor/random.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::data;

namespace {
// The reference source image, uint8 [3, 11, 13].
const std::vector<uint8_t>& src() {
  static const std::vector<uint8_t> v = to_vector<uint8_t>(test::load_ref("transforms/src"));
  return v;
}
Tensor resample(Box box, int64_t oh, int64_t ow, bool aa) {
  Tensor out = empty({3, oh, ow}, DType::Float32);
  resample_box(src().data(), 3, 11, 13, box, out.data<float>(), oh, ow, aa);
  return out;
}
ImageDataset random_dataset(int64_t n, int64_t H, int64_t W, uint64_t seed) {
  Generator gen(seed);
  ImageDataset d;
  d.name = "random";
  d.num_classes = 10;
  d.images = empty({n, 3, H, W}, DType::UInt8);
  d.labels = empty({n}, DType::Int64);
  for (int64_t i = 0; i < n * 3 * H * W; ++i) d.images.data<uint8_t>()[i] = gen.next_u32() & 0xff;
  for (int64_t i = 0; i < n; ++i) d.labels.data<int64_t>()[i] = i % 10;
  return d;
}
std::vector<std::vector<float>> one_epoch(const ImageDataset& ds, LoaderOptions o, int64_t epoch) {
  BatchLoader loader(ds, o);
  loader.start_epoch(epoch);
  std::vector<std::vector<float>> got;
  while (auto b = loader.next())
    for (const Tensor& v : b->views) got.push_back(to_vector<float>(v));
  return got;
}
}  // namespace

TEST(Resize, BilinearMatchesTorchInterpolate) {
  const std::vector<std::pair<int64_t, int64_t>> sizes{{22, 26}, {5, 6}, {7, 20},
                                                       {11, 13}, {1, 4}, {6, 6}};
  for (auto [oh, ow] : sizes)
    for (int aa : {0, 1}) {
      const std::string name = "transforms/resize_" + std::to_string(oh) + "x" +
                               std::to_string(ow) + "_" + std::to_string(aa);
      SCOPED_TRACE(name);
      EXPECT_ALLCLOSE(resample(Box{0, 0, 11, 13}, oh, ow, aa != 0), test::load_ref(name), 1e-5,
                      1e-3);
    }
}

TEST(Resize, SameSizeIsTheIdentity) {
  Tensor out = resample(Box{0, 0, 11, 13}, 11, 13, true);
  for (size_t i = 0; i < src().size(); ++i) ASSERT_EQ(out.data<float>()[i], float(src()[i]));
}

TEST(Resize, ResizedCropMatchesTorchvision) {
  const std::vector<std::pair<Box, std::pair<int64_t, int64_t>>> cases{
      {Box{2, 3, 6, 8}, {16, 16}}, {Box{1, 0, 10, 13}, {4, 5}}, {Box{0, 5, 11, 3}, {9, 2}}};
  for (const auto& [b, size] : cases)
    for (int aa : {0, 1}) {
      const std::string name = "transforms/rcrop_" + std::to_string(b.top) + "_" +
                               std::to_string(b.left) + "_" + std::to_string(b.height) + "_" +
                               std::to_string(b.width) + "_" + std::to_string(size.first) + "x" +
                               std::to_string(size.second) + "_" + std::to_string(aa);
      SCOPED_TRACE(name);
      EXPECT_ALLCLOSE(resample(b, size.first, size.second, aa != 0), test::load_ref(name), 1e-5,
                      1e-3);
    }
}

TEST(Resize, ResizeImageRoundsToUint8) {
  std::vector<uint8_t> out(3 * 5 * 6);
  resize_image(src().data(), 3, 11, 13, out.data(), 5, 6, true);
  const std::vector<float> ref = to_vector<float>(test::load_ref("transforms/resize_5x6_1"));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_LE(std::fabs(out[i] - ref[i]), 0.5f + 1e-3f);
}

TEST(Resize, BoxOutsideTheImageIsAnError) {
  std::vector<float> out(16);
  EXPECT_THROW(resample_box(src().data(), 3, 11, 13, Box{8, 0, 4, 4}, out.data(), 4, 4, true),
               Error);
}

TEST(CenterCrop, MatchesTorchvisionRounding) {
  for (auto [h, w] :
       std::vector<std::pair<int64_t, int64_t>>{{7, 8}, {4, 5}, {11, 13}, {1, 1}, {6, 13}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const Box b = center_crop_box(11, 13, h, w);
    std::vector<uint8_t> got;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          got.push_back(src()[(c * 11 + b.top + y) * 13 + b.left + x]);
    EXPECT_EQ(got, to_vector<uint8_t>(test::load_ref("transforms/ccrop_" + std::to_string(h) + "x" +
                                                     std::to_string(w))));
  }
  EXPECT_THROW(center_crop_box(11, 13, 12, 4), Error);
}

TEST(RandomResizedCrop, FallbackMatchesTorchvision) {
  // Scale (2, 3) never fits, so every attempt fails and torchvision's fallback box is returned.
  const Tensor ref = test::load_ref("transforms/rrc_fallback");
  std::array<std::array<double, 4>, 10> u;
  for (auto& a : u) a = {0.3, 0.6, 0.2, 0.9};
  for (int64_t r = 0; r < ref.size(0); ++r) {
    const auto H = static_cast<int64_t>(ref.at({r, 0})), W = static_cast<int64_t>(ref.at({r, 1}));
    const Box b = random_resized_crop_box(H, W, {2.0, 3.0}, {3.0 / 4.0, 4.0 / 3.0}, u);
    EXPECT_EQ(b, (Box{static_cast<int64_t>(ref.at({r, 2})), static_cast<int64_t>(ref.at({r, 3})),
                      static_cast<int64_t>(ref.at({r, 4})), static_cast<int64_t>(ref.at({r, 5}))}))
        << H << "x" << W;
  }
}

TEST(RandomResizedCrop, BoxesInsideTheImageWithScaleAndRatioInRange) {
  struct Case {
    int64_t H, W;
    std::array<double, 2> scale, ratio;
    double largest;  // the largest area fraction a box with the ratio range can have
  };
  // EKD-FWSNet's CIFAR recipe, torchvision's ImageNet defaults on a non-square image.
  // On 48x80 a box is at most 48 high and 64 wide (ratio 4/3): 0.8 of the image.
  for (const Case& k : {Case{32, 32, {0.5, 1.0}, {3.0 / 4, 4.0 / 3}, 1.0},
                        Case{48, 80, {0.08, 1.0}, {3.0 / 4, 4.0 / 3}, 0.8}}) {
    Augment aug;
    aug.random_resized_crop = 24;
    aug.rrc_scale = k.scale;
    aug.rrc_ratio = k.ratio;
    double min_area = 1, max_area = 0, min_ratio = 10, max_ratio = 0;
    std::set<std::pair<int64_t, int64_t>> corners;
    for (uint64_t i = 0; i < 2000; ++i) {
      const Box b = sample_resized_crop_box(aug, k.H, k.W, 5, 2, i, i % 3);
      ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 &&
                  b.top + b.height <= k.H && b.left + b.width <= k.W)
          << b.top << " " << b.left << " " << b.height << " " << b.width;
      // w and h are rounded, so the unrounded sides lie within half a pixel of them.
      const double area = static_cast<double>(k.H * k.W);
      EXPECT_LE((b.height - 0.5) * (b.width - 0.5), k.scale[1] * area);
      EXPECT_GE((b.height + 0.5) * (b.width + 0.5), k.scale[0] * area);
      EXPECT_LE((b.width - 0.5) / (b.height + 0.5), k.ratio[1]);
      EXPECT_GE((b.width + 0.5) / (b.height - 0.5), k.ratio[0]);
      const double a = b.height * b.width / area, r = double(b.width) / double(b.height);
      min_area = std::min(min_area, a);
      max_area = std::max(max_area, a);
      min_ratio = std::min(min_ratio, r);
      max_ratio = std::max(max_ratio, r);
      corners.insert({b.top, b.left});
    }
    // The draws cover the ranges and the positions vary.
    EXPECT_LT(min_area, k.scale[0] + 0.05);
    EXPECT_GT(max_area, k.largest - 0.1);
    EXPECT_LT(min_ratio, 0.8);
    EXPECT_GT(max_ratio, 1.25);
    EXPECT_GT(corners.size(), 50u);
  }
}

TEST(RandomResizedCrop, PipelineResamplesTheSampleBoxThenFlips) {
  const ImageDataset ds = random_dataset(1, 20, 28, 11);
  Augment aug;
  aug.random_resized_crop = 16;
  aug.rrc_scale = {0.3, 1.0};
  aug.hflip = true;
  ASSERT_EQ(check_augment(aug, 3, 20, 28), (std::array<int64_t, 2>{16, 16}));
  int flipped = 0, kept = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    std::vector<float> got(3 * 16 * 16), want(3 * 16 * 16);
    augment_image(ds.images.data<uint8_t>(), 3, 20, 28, aug, 9, 1, i, 0, got.data());
    const Box b = sample_resized_crop_box(aug, 20, 28, 9, 1, i, 0);
    resample_box(ds.images.data<uint8_t>(), 3, 20, 28, b, want.data(), 16, 16, true);
    bool same = true, mirrored = true;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 16; ++y)
        for (int64_t x = 0; x < 16; ++x) {
          const float g = got[(c * 16 + y) * 16 + x] * 255.0f;
          same = same && std::fabs(g - want[(c * 16 + y) * 16 + x]) < 1e-3f;
          mirrored = mirrored && std::fabs(g - want[(c * 16 + y) * 16 + 15 - x]) < 1e-3f;
        }
    ASSERT_TRUE(same || mirrored) << "sample " << i;
    flipped += mirrored && !same;
    kept += same && !mirrored;
  }
  EXPECT_GT(flipped, 5);
  EXPECT_GT(kept, 5);
}

TEST(Cutout, BoxFollowsDeVriesAndTaylor) {
  // centre (cy, cx) = (floor(uy H), floor(ux W)); rows [cy - L/2, cy + L/2) clipped to the image.
  EXPECT_EQ(cutout_box(32, 32, 16, 0.5, 0.5), (Box{8, 8, 16, 16}));
  EXPECT_EQ(cutout_box(32, 32, 16, 0.0, 0.99), (Box{0, 23, 8, 9}));
  EXPECT_EQ(cutout_box(32, 32, 5, 0.25, 0.25), (Box{6, 6, 4, 4}));  // 5 / 2 = 2 each side
  EXPECT_EQ(cutout_box(10, 20, 8, 0.95, 0.0), (Box{5, 0, 5, 4}));
}

TEST(Cutout, ZeroesOneSquarePerImageAfterNormalisation) {
  // A constant image normalised to exactly 1.0: zeros can only come from cutout.
  std::vector<uint8_t> img(3 * 32 * 32, 153);
  Augment aug;
  aug.mean = {0.1f, 0.1f, 0.1f};
  aug.std = {0.5f, 0.5f, 0.5f};
  aug.cutout = 8;
  std::set<std::pair<int64_t, int64_t>> tops;
  int clipped = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    std::vector<float> out(3 * 32 * 32);
    augment_image(img.data(), 3, 32, 32, aug, 1, 0, i, 0, out.data());
    int64_t y0 = 32, y1 = -1, x0 = 32, x1 = -1, zeros = 0;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) {
          const float v = out[(c * 32 + y) * 32 + x];
          if (v == 0.0f) {
            ++zeros;
            y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
          } else {
            ASSERT_NEAR(v, (0.6f - 0.1f) / 0.5f, 1e-5f);
          }
        }
    // One filled rectangle, the same in every channel, of 8x8 or clipped by the border.
    const int64_t h = y1 - y0 + 1, w = x1 - x0 + 1;
    ASSERT_GT(zeros, 0) << "sample " << i;
    EXPECT_EQ(zeros, 3 * h * w) << "sample " << i;
    EXPECT_TRUE(h <= 8 && w <= 8 && h >= 4 && w >= 4) << h << "x" << w;
    EXPECT_TRUE(h == 8 || y0 == 0 || y1 == 31) << "sample " << i;
    EXPECT_TRUE(w == 8 || x0 == 0 || x1 == 31) << "sample " << i;
    clipped += h < 8 || w < 8;
    tops.insert({y0, x0});
  }
  EXPECT_GT(clipped, 0);
  EXPECT_GT(tops.size(), 50u);
}

TEST(Augment, ResizeThenCenterCrop) {
  const ImageDataset ds = random_dataset(1, 20, 28, 3);
  Augment aug;
  aug.resize = 12;
  aug.center_crop = 9;
  ASSERT_EQ(check_augment(aug, 3, 20, 28), (std::array<int64_t, 2>{9, 9}));
  std::vector<float> got(3 * 9 * 9), full(3 * 12 * 12);
  augment_image(ds.images.data<uint8_t>(), 3, 20, 28, aug, 0, 0, 0, 0, got.data());
  resample_box(ds.images.data<uint8_t>(), 3, 20, 28, Box{0, 0, 20, 28}, full.data(), 12, 12, true);
  const Box b = center_crop_box(12, 12, 9, 9);  // top 2 (1.5 rounds to even), left 2
  EXPECT_EQ(b, (Box{2, 2, 9, 9}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 9; ++y)
      for (int64_t x = 0; x < 9; ++x)
        EXPECT_NEAR(got[(c * 9 + y) * 9 + x] * 255.0f, full[(c * 12 + y + 2) * 12 + x + 2], 1e-3f);
  // A centre crop alone copies pixels.
  Augment cc;
  cc.center_crop = 16;
  std::vector<float> crop(3 * 16 * 16);
  augment_image(ds.images.data<uint8_t>(), 3, 20, 28, cc, 0, 0, 0, 0, crop.data());
  EXPECT_NEAR(crop[(2 * 16 + 3) * 16 + 5] * 255.0f, float(ds.images.at({0, 2, 2 + 3, 6 + 5})),
              1e-3f);  // top 2, left 6
}

TEST(Augment, InvalidOptionsAreErrors) {
  Augment both;
  both.random_resized_crop = 8;
  both.resize = 8;
  EXPECT_THROW(check_augment(both, 3, 32, 32), Error);
  Augment big;
  big.center_crop = 40;
  EXPECT_THROW(check_augment(big, 3, 32, 32), Error);
  Augment ratio;
  ratio.random_resized_crop = 8;
  ratio.rrc_ratio = {2.0, 1.0};
  EXPECT_THROW(check_augment(ratio, 3, 32, 32), Error);
  Augment norm;
  norm.mean = {0.5f};
  norm.std = {0.5f};
  EXPECT_THROW(check_augment(norm, 3, 32, 32), Error);
}

TEST(Augment, NewTransformsSameBatchesForAnyNumberOfWorkers) {
  const ImageDataset ds = random_dataset(45, 36, 40, 4);
  std::vector<std::vector<float>> reference;
  for (int workers : {0, 1, 2, 3}) {
    LoaderOptions o;
    o.batch_size = 8;
    o.workers = workers;
    o.seed = 17;
    o.views = 2;
    o.augment.random_resized_crop = 32;
    o.augment.rrc_scale = {0.5, 1.0};
    o.augment.hflip = true;
    o.augment.cutout = 8;
    o.augment.mean = {0.485f, 0.456f, 0.406f};
    o.augment.std = {0.229f, 0.224f, 0.225f};
    BatchLoader probe(ds, o);
    EXPECT_EQ(probe.image_size(), (std::array<int64_t, 2>{32, 32}));
    const auto got = one_epoch(ds, o, 2);
    ASSERT_EQ(got.size(), 12u);  // 6 batches x 2 views
    if (reference.empty())
      reference = got;
    else
      EXPECT_EQ(got, reference) << workers << " workers";
  }
  EXPECT_NE(reference[0], reference[1]);  // the two views differ
  LoaderOptions o;
  o.batch_size = 8;
  o.augment.random_resized_crop = 32;
  EXPECT_NE(one_epoch(ds, o, 2)[0], one_epoch(ds, o, 3)[0]);  // epochs differ
}

// FNV-1a over the float bits of the default transforms (pad-crop, reflect, flip, normalise) for
// many (seed, epoch, index, view): the value was computed with data/batch_loader.cpp as it was
// before the new transforms, so the default pipeline is bit-identical to it.
TEST(Augment, DefaultPipelineBitIdenticalToBefore) {
  std::vector<uint8_t> imgs(4 * 3 * 32 * 32);
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          imgs[((i * 3 + c) * 32 + y) * 32 + x] =
              static_cast<uint8_t>((i * 131 + c * 71 + y * 37 + x * 17 + (x * y) % 13) % 256);
  std::vector<Augment> configs(6);
  configs[1].crop_padding = 4;
  configs[2].crop_padding = 4;
  configs[2].reflect_padding = true;
  configs[3].hflip = true;
  configs[4].crop_padding = 4;
  configs[4].hflip = true;
  configs[4].mean = {0.4914f, 0.4822f, 0.4465f};
  configs[4].std = {0.2470f, 0.2435f, 0.2616f};
  configs[5].crop_padding = 2;
  configs[5].reflect_padding = true;
  configs[5].hflip = true;
  configs[5].mean = {0.5f, 0.4f, 0.3f};
  configs[5].std = {0.2f, 0.25f, 0.3f};
  uint64_t h = 1469598103934665603ULL;
  std::vector<float> out(3 * 32 * 32);
  for (const Augment& a : configs)
    for (uint64_t seed : {0ULL, 7ULL})
      for (uint64_t epoch : {0ULL, 3ULL})
        for (uint64_t view : {0ULL, 1ULL})
          for (uint64_t index = 0; index < 64; ++index) {
            augment_image(imgs.data() + (index % 4) * 3072, 3, 32, 32, a, seed, epoch, index, view,
                          out.data());
            for (float f : out) {
              uint32_t bits;
              std::memcpy(&bits, &f, 4);
              for (int k = 0; k < 4; ++k) h = (h ^ ((bits >> (8 * k)) & 0xff)) * 1099511628211ULL;
            }
          }
  EXPECT_EQ(h, 0xb97ab86c8520c689ULL);
}

TEST(Subset, SeededRandomSubsetIsReproducibleAndSorted) {
  ImageDataset ds = random_dataset(100, 2, 2, 8);
  for (int64_t i = 0; i < 100; ++i) ds.labels.data<int64_t>()[i] = i;  // label = index
  const ImageDataset a = ds.random_subset(30, 5), b = ds.random_subset(30, 5),
                     c = ds.random_subset(30, 6);
  ASSERT_EQ(a.size(), 30);
  const auto la = to_vector<int64_t>(a.labels);
  EXPECT_EQ(la, to_vector<int64_t>(b.labels));
  EXPECT_NE(la, to_vector<int64_t>(c.labels));
  EXPECT_TRUE(std::is_sorted(la.begin(), la.end()));
  EXPECT_EQ(std::set<int64_t>(la.begin(), la.end()).size(), 30u);
  EXPECT_NE(la.back() - la.front(), 29);  // not simply a run of consecutive samples
  for (int64_t i = 0; i < 30; ++i)        // each image travels with its label
    for (int64_t k = 0; k < 12; ++k)
      EXPECT_EQ(a.images.data<uint8_t>()[i * 12 + k], ds.images.data<uint8_t>()[la[i] * 12 + k]);
  EXPECT_EQ(ds.random_subset(0, 5).size(), 100);
  EXPECT_EQ(ds.random_subset(500, 5).size(), 100);
  EXPECT_THROW(ds.subset({3, 100}), Error);
}

// ops::crop_flip_normalize (tensor/ops/augment.h), the device path of --data-on-device, given the
// loader's own draws (sample_crop_flip), equals augment_image bit for bit: zero and reflect
// padding, with and without normalisation, over several epochs and views.
TEST(CropFlipNormalize, EqualsTheLoadersAugmentation) {
  const ImageDataset ds = random_dataset(9, 12, 10, 5);
  const int64_t C = 3, H = 12, W = 10;
  for (bool reflect : {false, true}) {
    for (bool normalise : {false, true}) {
      Augment aug;
      aug.crop_padding = 4;
      aug.reflect_padding = reflect;
      aug.hflip = true;
      if (normalise) {
        aug.mean = {0.5f, 0.4f, 0.3f};
        aug.std = {0.2f, 0.25f, 0.3f};
      }
      std::vector<float> scale(C), shift(C);
      for (int64_t c = 0; c < C; ++c) {
        scale[c] = normalise ? 1.0f / (255.0f * aug.std[c]) : 1.0f / 255.0f;
        shift[c] = normalise ? -aug.mean[c] / aug.std[c] : 0.0f;
      }
      const std::vector<int64_t> idx{3, 0, 8, 3, 5, 1};
      int flips = 0;
      for (uint64_t epoch : {0, 7}) {
        for (uint64_t view : {0, 2}) {
          std::vector<int64_t> params;
          for (int64_t i : idx) {
            const CropFlip cf = sample_crop_flip(aug, 11, epoch, static_cast<uint64_t>(i), view);
            EXPECT_LE(std::abs(cf.dy), 4);
            EXPECT_LE(std::abs(cf.dx), 4);
            params.insert(params.end(), {cf.dy, cf.dx, cf.flip ? 1 : 0});
            flips += cf.flip;
          }
          const Tensor got = ops::crop_flip_normalize(
              ds.images, from_vector<int64_t>(idx), from_vector<int64_t>(params, {6, 3}),
              from_vector<float>(scale), from_vector<float>(shift), reflect);
          ASSERT_EQ(got.shape(), (Shape{6, C, H, W}));
          for (size_t k = 0; k < idx.size(); ++k) {
            std::vector<float> want(C * H * W);
            augment_image(ds.images.data<uint8_t>() + idx[k] * C * H * W, C, H, W, aug, 11, epoch,
                          static_cast<uint64_t>(idx[k]), view, want.data());
            const float* g = got.data<float>() + k * C * H * W;
            for (int64_t e = 0; e < C * H * W; ++e)
              ASSERT_EQ(g[e], want[e]) << "reflect " << reflect << " normalise " << normalise
                                       << " sample " << k << " element " << e;
          }
        }
      }
      EXPECT_GT(flips, 0);
      EXPECT_LT(flips, 24);
    }
  }
  EXPECT_THROW(ops::crop_flip_normalize(
                   ds.images, from_vector<int64_t>({9}), from_vector<int64_t>({0, 0, 0}, {1, 3}),
                   from_vector<float>({1, 1, 1}), from_vector<float>({0, 0, 0}), false),
               Error);  // index out of range
  EXPECT_THROW(ops::crop_flip_normalize(
                   ds.images, from_vector<int64_t>({1}), from_vector<int64_t>({0, 0}, {1, 2}),
                   from_vector<float>({1, 1, 1}), from_vector<float>({0, 0, 0}), false),
               Error);  // params not [B, 3]
}
