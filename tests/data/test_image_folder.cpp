// ImageFolder on small folders the test writes itself (PNG, BMP and JPEG through stb_image_write):
// class order and labels, exact PNG/BMP decoding, approximate JPEG decoding, load-time resizing
// against torchvision, and the errors for bad folders and files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/image_folder.h"
#include "data/image_io.h"
#include "tests/support/test_support.h"

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
// A uint8 [3, h, w] image whose pixels depend on (seed, c, y, x) and vary smoothly in y and x.
std::vector<uint8_t> pattern(int64_t h, int64_t w, int seed) {
  std::vector<uint8_t> v(3 * h * w);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        v[(c * h + y) * w + x] = static_cast<uint8_t>((seed * 40 + c * 60 + y * 5 + x * 3) % 256);
  return v;
}
void write(const fs::path& p, const std::vector<uint8_t>& img, int64_t h, int64_t w) {
  fs::create_directories(p.parent_path());
  save_image(p.string(), img.data(), 3, h, w);
}
std::vector<uint8_t> image_of(const ImageDataset& d, int64_t i) {
  const int64_t n = d.images.numel() / d.size();
  const uint8_t* p = d.images.data<uint8_t>() + i * n;
  return std::vector<uint8_t>(p, p + n);
}
using ::okd::test::error_of;
bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// root/{zebra, ant, bee}: PNG, BMP and JPEG files, one in a sub-folder, plus files to ignore.
fs::path make_folder(const std::string& name) {
  const fs::path root = tmp_dir(name);
  write(root / "zebra" / "b.png", pattern(6, 5, 1), 6, 5);
  write(root / "zebra" / "a.bmp", pattern(6, 5, 2), 6, 5);
  write(root / "ant" / "x.png", pattern(6, 5, 3), 6, 5);
  write(root / "bee" / "images" / "y.BMP", pattern(6, 5, 4), 6, 5);  // nested, upper case
  write(root / "bee" / "z.png", pattern(6, 5, 5), 6, 5);
  std::ofstream(root / "bee" / "boxes.txt") << "not an image\n";
  fs::create_directories(root / ".cache");  // hidden: not a class
  std::ofstream(root / "README") << "a file at the root is not a class\n";
  return root;
}
}  // namespace

TEST(ImageFolder, ClassesSortedByNameAndLabelsFollowThem) {
  const fs::path root = make_folder("if_classes");
  ImageFolderOptions o;
  o.threads = 2;
  const ImageDataset d = load_image_folder(root.string(), o);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"ant", "bee", "zebra"}));
  EXPECT_EQ(d.num_classes, 3);
  ASSERT_EQ(d.size(), 5);
  EXPECT_EQ(d.images.shape(), (Shape{5, 3, 6, 5}));
  // Files in class order, then by path: ant/x, bee/images/y, bee/z, zebra/a, zebra/b.
  EXPECT_EQ(to_vector<int64_t>(d.labels), (std::vector<int64_t>{0, 1, 1, 2, 2}));
  EXPECT_EQ(image_of(d, 0), pattern(6, 5, 3));
  EXPECT_EQ(image_of(d, 1), pattern(6, 5, 4));  // BMP, decoded exactly
  EXPECT_EQ(image_of(d, 2), pattern(6, 5, 5));  // PNG, decoded exactly
  EXPECT_EQ(image_of(d, 3), pattern(6, 5, 2));
  EXPECT_EQ(image_of(d, 4), pattern(6, 5, 1));
  EXPECT_EQ(list_images((root / "bee").string()).size(), 2u);
}

TEST(ImageFolder, SameResultForAnyThreadCount) {
  const fs::path root = make_folder("if_threads");
  ImageFolderOptions one, many;
  one.threads = 1;
  many.threads = 4;
  one.image_size = many.image_size = 4;
  const ImageDataset a = load_image_folder(root.string(), one),
                     b = load_image_folder(root.string(), many);
  EXPECT_EQ(to_vector<uint8_t>(a.images), to_vector<uint8_t>(b.images));
  EXPECT_EQ(to_vector<int64_t>(a.labels), to_vector<int64_t>(b.labels));
}

TEST(ImageFolder, JpegDecodesApproximatelyAndGreyBecomesRgb) {
  const fs::path root = tmp_dir("if_jpeg");
  const std::vector<uint8_t> img = pattern(16, 16, 0);
  write(root / "a" / "p.jpg", img, 16, 16);
  std::vector<uint8_t> grey(8 * 8);
  for (int i = 0; i < 64; ++i) grey[i] = static_cast<uint8_t>(i * 4);
  fs::create_directories(root / "b");
  save_image((root / "b" / "g.png").string(), grey.data(), 1, 8, 8);
  // The JPEG alone: lossy, so close but not equal.
  const DecodedImage j = read_image((root / "a" / "p.jpg").string());
  ASSERT_EQ(j.pixels.size(), img.size());
  double err = 0;
  for (size_t i = 0; i < img.size(); ++i) err += std::fabs(double(j.pixels[i]) - double(img[i]));
  EXPECT_LT(err / img.size(), 6.0);
  // The grey PNG comes out as three equal channels.
  const DecodedImage g = read_image((root / "b" / "g.png").string());
  ASSERT_EQ(g.pixels.size(), 3u * 64u);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 64; ++i) EXPECT_EQ(g.pixels[c * 64 + i], grey[i]);
  // Different sizes (16x16 and 8x8) need an image size.
  const std::string e = error_of([&] { load_image_folder(root.string()); });
  EXPECT_TRUE(has(e, "g.png") && has(e, "--image-size")) << e;
  ImageFolderOptions o;
  o.image_size = 8;
  EXPECT_EQ(load_image_folder(root.string(), o).images.shape(), (Shape{2, 3, 8, 8}));
}

TEST(ImageFolder, ResizeOnLoadMatchesTorchvision) {
  // The reference image (11x13) saved as PNG; Resize(s) + CenterCrop(s) from torchvision.
  const std::vector<uint8_t> src = to_vector<uint8_t>(test::load_ref("transforms/src"));
  const fs::path root = tmp_dir("if_resize");
  write(root / "only" / "src.png", src, 11, 13);
  for (int64_t s : {8, 4}) {
    ImageFolderOptions o;
    o.image_size = s;
    const ImageDataset d = load_image_folder(root.string(), o);
    ASSERT_EQ(d.images.shape(), (Shape{1, 3, s, s}));
    const auto ref =
        to_vector<float>(test::load_ref("transforms/resize_short" + std::to_string(s) + "_crop"));
    const auto got = image_of(d, 0);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(std::fabs(got[i] - ref[i]), 0.5f + 1e-3f) << "size " << s << " at " << i;
  }
  ImageFolderOptions exact;
  exact.image_size = 6;
  exact.shorter_side = false;  // both sides to 6, as interpolate(size=(6, 6), antialias=True)
  const auto got = image_of(load_image_folder(root.string(), exact), 0);
  const auto ref = to_vector<float>(test::load_ref("transforms/resize_6x6_1"));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_LE(std::fabs(got[i] - ref[i]), 0.5f + 1e-3f);
}

TEST(ImageFolder, ValidationSplitUsesTheTrainingClasses) {
  const fs::path root = tmp_dir("if_val");
  write(root / "bee" / "1.png", pattern(4, 4, 1), 4, 4);
  ImageFolderOptions o;
  o.classes = {"ant", "bee", "zebra"};
  const ImageDataset d = load_image_folder(root.string(), o);
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.labels.at({0}), 1);
  write(root / "wasp" / "2.png", pattern(4, 4, 2), 4, 4);
  const std::string e = error_of([&] { load_image_folder(root.string(), o); });
  EXPECT_TRUE(has(e, "wasp") && has(e, "classes")) << e;
}

TEST(ImageFolder, CorruptImageIsAnErrorNamingTheFile) {
  const fs::path root = make_folder("if_corrupt");
  std::ofstream(root / "bee" / "broken.png", std::ios::binary) << "\x89PNG\r\n\x1a\n garbage";
  for (int threads : {1, 3}) {
    ImageFolderOptions o;
    o.threads = threads;
    const std::string e = error_of([&] { load_image_folder(root.string(), o); });
    EXPECT_TRUE(has(e, "broken.png") && has(e, "unreadable image")) << e;
  }
  // A truncated PNG (half of a real one) names the file too.
  const fs::path trunc = tmp_dir("if_truncated");
  write(trunc / "a" / "t.png", pattern(32, 32, 7), 32, 32);
  fs::resize_file(trunc / "a" / "t.png", fs::file_size(trunc / "a" / "t.png") / 2);
  const std::string e = error_of([&] { load_image_folder(trunc.string()); });
  EXPECT_TRUE(has(e, "t.png")) << e;
}

TEST(ImageFolder, BadFoldersAreErrorsNamingThem) {
  const fs::path root = make_folder("if_empty_class");
  fs::create_directories(root / "empty");
  std::ofstream(root / "empty" / "notes.txt") << "x";
  std::string e = error_of([&] { load_image_folder(root.string()); });
  EXPECT_TRUE(has(e, "empty") && has(e, "holds no JPEG, PNG or BMP image") &&
              has(e, "1 other files"))
      << e;

  e = error_of([&] { load_image_folder((root / "missing").string()); });
  EXPECT_TRUE(has(e, "missing") && has(e, "does not exist")) << e;

  const fs::path flat = tmp_dir("if_no_classes");
  write(flat / "a.png", pattern(4, 4, 0), 4, 4);  // images straight in the root
  e = error_of([&] { load_image_folder(flat.string()); });
  EXPECT_TRUE(has(e, "no class folders")) << e;
}

TEST(ImageIo, SaveRejectsUnknownExtensions) {
  const std::vector<uint8_t> img = pattern(2, 2, 0);
  EXPECT_THROW(save_image((tmp_dir("io") / "x.gif").string(), img.data(), 3, 2, 2), Error);
  EXPECT_THROW(read_image((tmp_dir("io2") / "none.png").string()), Error);
}

TEST(TinyImageNet, TrainFolderAndValAnnotationsAsDistributed) {
  // train/<wnid>/images/<wnid>_<k>.JPEG plus <wnid>_boxes.txt; val/images/ + val_annotations.txt.
  const fs::path root = tmp_dir("tiny_imagenet");
  for (const std::string wnid : {"n02", "n01"}) {
    for (int k = 0; k < 2; ++k)
      write(root / "train" / wnid / "images" / (wnid + "_" + std::to_string(k) + ".png"),
            pattern(8, 8, k), 8, 8);
    std::ofstream(root / "train" / wnid / (wnid + "_boxes.txt")) << "x 0 0 1 1\n";
  }
  write(root / "val" / "images" / "val_0.png", pattern(8, 8, 5), 8, 8);
  write(root / "val" / "images" / "val_1.png", pattern(8, 8, 6), 8, 8);
  std::ofstream(root / "val" / "val_annotations.txt") << "val_0.png\tn02\t0\t0\t7\t7\n"
                                                      << "val_1.png\tn01\t1\t1\t6\t6\n";
  const ImageDataset train = load_image_folder((root / "train").string());
  EXPECT_EQ(train.class_names, (std::vector<std::string>{"n01", "n02"}));
  EXPECT_EQ(to_vector<int64_t>(train.labels), (std::vector<int64_t>{0, 0, 1, 1}));
  ImageFolderOptions o;
  o.classes = train.class_names;
  const ImageDataset val = load_tinyimagenet_val((root / "val").string(), o);
  EXPECT_EQ(to_vector<int64_t>(val.labels), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(image_of(val, 1), pattern(8, 8, 6));
  std::ofstream(root / "val" / "val_annotations.txt", std::ios::app)
      << "val_2.png\tn09\t0\t0\t1\t1\n";
  const std::string e = error_of([&] { load_tinyimagenet_val((root / "val").string(), o); });
  EXPECT_TRUE(has(e, "val_annotations.txt") && has(e, "line 3") && has(e, "n09")) << e;
}

TEST(Cub200, SplitFilesAsDistributed) {
  const fs::path root = tmp_dir("cub200");
  write(root / "images" / "002.Laysan_Albatross" / "b1.jpg", pattern(10, 14, 1), 10, 14);
  write(root / "images" / "001.Black_footed_Albatross" / "a1.jpg", pattern(12, 9, 2), 12, 9);
  write(root / "images" / "001.Black_footed_Albatross" / "a2.jpg", pattern(9, 9, 3), 9, 9);
  std::ofstream(root / "images.txt") << "1 001.Black_footed_Albatross/a1.jpg\n"
                                     << "2 001.Black_footed_Albatross/a2.jpg\n"
                                     << "3 002.Laysan_Albatross/b1.jpg\n";
  std::ofstream(root / "train_test_split.txt") << "1 1\n2 0\n3 1\n";
  ImageFolderOptions o;
  o.image_size = 6;
  const ImageDataset train = load_cub200(root.string(), true, o),
                     test = load_cub200(root.string(), false, o);
  EXPECT_EQ(train.num_classes, 2);
  EXPECT_EQ(train.class_names[0], "001.Black_footed_Albatross");
  EXPECT_EQ(to_vector<int64_t>(train.labels), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(to_vector<int64_t>(test.labels), (std::vector<int64_t>{0}));
  EXPECT_EQ(train.images.shape(), (Shape{2, 3, 6, 6}));
  // Different sizes without an image size: the error names the file and the flag.
  const std::string e = error_of([&] { load_cub200(root.string(), true, {}); });
  EXPECT_TRUE(has(e, "b1.jpg") && has(e, "--image-size")) << e;
}
