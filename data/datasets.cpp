// CIFAR binary and IDX readers.
#include "data/datasets.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"

namespace fs = std::filesystem;

namespace okd::data {

ImageDataset ImageDataset::first(int64_t n) const {
  if (n <= 0 || n >= size()) return *this;
  ImageDataset d = *this;
  d.images = ops::clone(ops::narrow(images, 0, 0, n));
  d.labels = ops::clone(ops::narrow(labels, 0, 0, n));
  return d;
}

ImageDataset ImageDataset::subset(const std::vector<int64_t>& indices) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t item = images.numel() / std::max<int64_t>(size(), 1);
  Shape shape = images.shape();
  shape[0] = n;
  ImageDataset d = *this;
  d.images = empty(shape, DType::UInt8);
  d.labels = empty({n}, DType::Int64);
  const Tensor imgs = ops::contiguous(images), labs = ops::contiguous(labels);
  const uint8_t* src = imgs.data<uint8_t>();
  const int64_t* lab = labs.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = indices[i];
    OKD_CHECK(k >= 0 && k < size(), name, ": subset index ", k, " is out of range for ", size(),
              " samples");
    std::memcpy(d.images.data<uint8_t>() + i * item, src + k * item, item);
    d.labels.data<int64_t>()[i] = lab[k];
  }
  return d;
}

ImageDataset ImageDataset::random_subset(int64_t n, uint64_t seed) const {
  if (n <= 0 || n >= size()) return *this;
  Generator gen(seed ^ 0x5b5e7ULL);
  std::vector<int64_t> pick = to_vector<int64_t>(randperm(size(), gen));
  pick.resize(n);
  std::sort(pick.begin(), pick.end());
  return subset(pick);
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  OKD_CHECK(f.good(), "cannot open ", path);
  std::vector<uint8_t> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
  gzFile gz = gzopen(path.c_str(), "rb");
  OKD_CHECK(gz != nullptr, "cannot open ", path, " as gzip");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(gz, &err);
      gzclose(gz);
      OKD_FAIL(path, ": corrupt gzip data (", msg, ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(gz);
  return out;
}

namespace {
std::string find_dir(const std::string& dir, const std::string& sub, const std::string& probe,
                     const std::string& what) {
  for (const fs::path& p : {fs::path(dir), fs::path(dir) / sub})
    if (fs::exists(p / probe)) return p.string();
  OKD_FAIL(what, ": no ", probe, " in ", dir, " or ", (fs::path(dir) / sub).string(),
           ". Download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html and "
           "extract it there (or pass --data-dir)");
}

ImageDataset read_cifar_records(const std::vector<std::string>& files, int64_t label_bytes,
                                int64_t label_index, int64_t classes, const std::string& name) {
  const int64_t record = label_bytes + 3072;
  std::vector<std::vector<uint8_t>> blobs;
  int64_t total = 0;
  for (const auto& f : files) {
    blobs.push_back(read_maybe_gzip(f));
    OKD_CHECK(!blobs.back().empty() && static_cast<int64_t>(blobs.back().size()) % record == 0, f,
              ": size ", blobs.back().size(), " is not a positive multiple of the record length ",
              record, " (truncated or not a CIFAR binary file?)");
    total += static_cast<int64_t>(blobs.back().size()) / record;
  }
  ImageDataset d;
  d.name = name;
  d.num_classes = classes;
  d.images = empty({total, 3, 32, 32}, DType::UInt8);
  d.labels = empty({total}, DType::Int64);
  uint8_t* img = d.images.data<uint8_t>();
  int64_t* lab = d.labels.data<int64_t>();
  int64_t i = 0;
  for (size_t b = 0; b < blobs.size(); ++b) {
    const auto& blob = blobs[b];
    for (size_t off = 0; off < blob.size(); off += record, ++i) {
      int64_t y = blob[off + label_index];
      OKD_CHECK(y < classes, files[b], ": label ", y, " of record ", off / record,
                " is out of range for ", classes, " classes");
      lab[i] = y;
      std::memcpy(img + i * 3072, blob.data() + off + label_bytes, 3072);
    }
  }
  return d;
}
}  // namespace

ImageDataset load_cifar10(const std::string& dir, bool train) {
  std::string root = find_dir(dir, "cifar-10-batches-bin",
                              train ? "data_batch_1.bin" : "test_batch.bin", "cifar10");
  std::vector<std::string> files;
  if (train)
    for (int i = 1; i <= 5; ++i) {
      std::string f = (fs::path(root) / ("data_batch_" + std::to_string(i) + ".bin")).string();
      OKD_CHECK(fs::exists(f), "cifar10: missing ", f);
      files.push_back(f);
    }
  else
    files.push_back((fs::path(root) / "test_batch.bin").string());
  ImageDataset d = read_cifar_records(files, 1, 0, 10, train ? "cifar10/train" : "cifar10/test");
  d.class_names = {"airplane", "automobile", "bird",  "cat",  "deer",
                   "dog",      "frog",       "horse", "ship", "truck"};
  return d;
}

ImageDataset load_cifar100(const std::string& dir, bool train, bool coarse) {
  std::string root =
      find_dir(dir, "cifar-100-binary", train ? "train.bin" : "test.bin", "cifar100");
  std::string f = (fs::path(root) / (train ? "train.bin" : "test.bin")).string();
  return read_cifar_records({f}, 2, coarse ? 0 : 1, coarse ? 20 : 100,
                            train ? "cifar100/train" : "cifar100/test");
}

namespace {
uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const std::string& f : {stem + ".gz", stem})
    if (fs::exists(fs::path(dir) / f)) return (fs::path(dir) / f).string();
  OKD_FAIL("no ", stem, "[.gz] in ", dir,
           ". On Debian, apt-get install dataset-fashion-mnist installs Fashion-MNIST in "
           "/usr/share/datasets/fashion-mnist (or pass --data-dir)");
}
}  // namespace

ImageDataset load_idx(const std::string& dir, bool train, int64_t pad_to, int64_t channels,
                      const std::string& name) {
  OKD_CHECK(fs::is_directory(dir), name, ": data directory ", dir,
            " does not exist. On Debian, "
            "apt-get install dataset-fashion-mnist installs Fashion-MNIST in "
            "/usr/share/datasets/fashion-mnist");
  const std::string prefix = train ? "train" : "t10k";
  std::string img_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  std::string lab_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  std::vector<uint8_t> img = read_maybe_gzip(img_path), lab = read_maybe_gzip(lab_path);
  OKD_CHECK(img.size() >= 16 && be32(img.data()) == 0x00000803, img_path,
            ": not an IDX image file (magic must be 0x00000803)");
  OKD_CHECK(lab.size() >= 8 && be32(lab.data()) == 0x00000801, lab_path,
            ": not an IDX label file (magic must be 0x00000801)");
  const int64_t n = be32(img.data() + 4), h = be32(img.data() + 8), w = be32(img.data() + 12);
  OKD_CHECK(static_cast<int64_t>(img.size()) == 16 + n * h * w, img_path, ": expected ",
            16 + n * h * w, " bytes for ", n, " images of ", h, "x", w, ", got ", img.size());
  OKD_CHECK(be32(lab.data() + 4) == n && static_cast<int64_t>(lab.size()) == 8 + n, lab_path,
            ": holds ", be32(lab.data() + 4), " labels (", lab.size(), " bytes) for ", n,
            " images");
  OKD_CHECK(channels == 1 || channels == 3, name, ": channels must be 1 or 3");
  const int64_t H = std::max(pad_to, h), W = std::max(pad_to, w);
  const int64_t top = (H - h) / 2, left = (W - w) / 2;
  ImageDataset d;
  d.name = name + (train ? "/train" : "/test");
  d.num_classes = 10;
  d.images = zeros({n, channels, H, W}, DType::UInt8);
  d.labels = empty({n}, DType::Int64);
  uint8_t* pi = d.images.data<uint8_t>();
  int64_t* pl = d.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    OKD_CHECK(lab[8 + i] < 10, lab_path, ": label ", int(lab[8 + i]), " at index ", i,
              " is not in 0..9");
    pl[i] = lab[8 + i];
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t r = 0; r < h; ++r)
        std::memcpy(pi + ((i * channels + c) * H + top + r) * W + left,
                    img.data() + 16 + (i * h + r) * w, w);
  }
  if (name == "fashion-mnist")
    d.class_names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                     "sandal",  "shirt",   "sneaker",  "bag",   "boot"};
  return d;
}

}  // namespace okd::data
