// ImageFolder: listing class folders, parallel decoding with stb_image, load-time resizing.
#include "data/image_folder.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "data/image_io.h"
#include "data/transforms.h"
#include "tensor/error.h"

namespace fs = std::filesystem;

namespace okd::data {

namespace {
bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Class folders of root, sorted by name; folders whose name starts with '.' are not classes.
std::vector<std::string> class_folders(const std::string& root) {
  OKD_CHECK(fs::is_directory(root), "imagefolder: the folder ", root,
            " does not exist (expected root/<class>/<image>)");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string()[0] != '.')
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  OKD_CHECK(!names.empty(), "imagefolder: ", root,
            " has no class folders (expected root/<class>/<image>)");
  return names;
}

// The size an image of h x w takes under options, before any crop: torchvision's Resize(S)
// makes the shorter side S and the longer one floor(S * long / short).
void resized_size(int64_t h, int64_t w, const ImageFolderOptions& o, int64_t& rh, int64_t& rw) {
  const int64_t S = o.image_size;
  if (!o.shorter_side) {
    rh = rw = S;
  } else if (w <= h) {
    rw = S;
    rh = S * h / w;
  } else {
    rh = S;
    rw = S * w / h;
  }
}

// Writes img into dst (uint8 [3, H, W]): a copy when it already has that size, else (image_size
// > 0) the resize and centre crop of the options.
void fit_image(const DecodedImage& img, const std::string& path, const ImageFolderOptions& o,
               int64_t H, int64_t W, const std::string& first_path, uint8_t* dst) {
  const int64_t C = img.channels;
  if (img.height == H && img.width == W) {
    std::copy(img.pixels.begin(), img.pixels.end(), dst);
    return;
  }
  OKD_CHECK(o.image_size > 0, path, ": the image is ", img.width, "x", img.height, " but ",
            first_path, " is ", W, "x", H,
            "; images of different sizes need an image size to be resized to (--image-size)");
  int64_t rh = 0, rw = 0;
  resized_size(img.height, img.width, o, rh, rw);
  std::vector<float> resized(static_cast<size_t>(C * rh * rw));
  resample_box(img.pixels.data(), C, img.height, img.width, Box{0, 0, img.height, img.width},
               resized.data(), rh, rw, /*antialias=*/true);
  const Box crop = center_crop_box(rh, rw, H, W);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const float v = resized[(c * rh + crop.top + y) * rw + crop.left + x];
        dst[(c * H + y) * W + x] =
            static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
      }
}

// Prints "WHERE: decoded k/N images" at every 10% (in place on a terminal).
class Progress {
 public:
  Progress(const std::string& where, int64_t total, bool on)
      : where_(where), total_(total), on_(on && total >= 2000), tty_(isatty(fileno(stderr)) != 0) {}
  void tick() {
    const int64_t d = ++done_;
    if (!on_ || d * 10 / total_ == (d - 1) * 10 / total_) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "%s%s: decoded %lld/%lld images%s", tty_ ? "\r" : "", where_.c_str(),
                 static_cast<long long>(d), static_cast<long long>(total_),
                 tty_ && d < total_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string where_;
  int64_t total_;
  bool on_, tty_;
  std::atomic<int64_t> done_{0};
  std::mutex mu_;
};
}  // namespace

std::vector<std::string> list_images(const std::string& class_dir, int64_t* other_files) {
  std::vector<std::string> images;
  int64_t others = 0;
  for (const auto& e : fs::recursive_directory_iterator(
           class_dir, fs::directory_options::follow_directory_symlink)) {
    if (!e.is_regular_file()) continue;
    if (is_image_file(e.path()))
      images.push_back(e.path().string());
    else
      ++others;
  }
  std::sort(images.begin(), images.end());
  if (other_files) *other_files = others;
  return images;
}

ImageDataset load_image_folder(const std::string& root, const ImageFolderOptions& o) {
  OKD_CHECK(o.image_size >= 0, "imagefolder: image size must be >= 0, got ", o.image_size);
  const std::vector<std::string> folders = class_folders(root);
  std::map<std::string, int64_t> label_of;
  const std::vector<std::string>& names = o.classes.empty() ? folders : o.classes;
  for (size_t i = 0; i < names.size(); ++i) label_of[names[i]] = static_cast<int64_t>(i);

  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t ignored = 0;
  for (const auto& name : folders) {
    const std::string dir = (fs::path(root) / name).string();
    OKD_CHECK(label_of.count(name) != 0, "imagefolder: ", dir, " is not one of the ", names.size(),
              " classes of the training split (a validation folder must hold one folder per "
              "class, named as in the training folder)");
    int64_t others = 0;
    std::vector<std::string> imgs = list_images(dir, &others);
    OKD_CHECK(!imgs.empty(), "imagefolder: class folder ", dir, " holds no JPEG, PNG or BMP image",
              others ? str(" (", others, " other files)") : "");
    ignored += others;
    for (auto& f : imgs) {
      files.push_back(std::move(f));
      labels.push_back(label_of[name]);
    }
  }
  if (ignored > 0)
    std::fprintf(stderr, "imagefolder %s: ignored %lld files that are not .jpg/.jpeg/.png/.bmp\n",
                 root.c_str(), static_cast<long long>(ignored));

  ImageFolderOptions named = o;
  if (named.name.empty())
    named.name = "imagefolder/" + fs::path(root).lexically_normal().filename().string();
  return load_image_list(files, labels, names, named, "imagefolder " + root);
}

namespace {
// The lines of a text file split at whitespace; errors name the file.
std::vector<std::vector<std::string>> read_table(const fs::path& path) {
  std::ifstream f(path);
  OKD_CHECK(f.good(), "cannot open ", path.string());
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    std::vector<std::string> row;
    for (std::string field; ss >> field;) row.push_back(field);
    if (!row.empty()) rows.push_back(std::move(row));
  }
  return rows;
}
}  // namespace

ImageDataset load_tinyimagenet_val(const std::string& val_dir, const ImageFolderOptions& o) {
  const fs::path ann = fs::path(val_dir) / "val_annotations.txt";
  OKD_CHECK(!o.classes.empty(), "tinyimagenet: ", ann.string(),
            " names classes by id: pass the training split's classes");
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < o.classes.size(); ++i) label_of[o.classes[i]] = static_cast<int64_t>(i);
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  int64_t line = 0;
  for (const auto& row : read_table(ann)) {
    ++line;
    OKD_CHECK(row.size() >= 2, ann.string(), ": line ", line, " has ", row.size(),
              " fields (expected: file, class id, box)");
    OKD_CHECK(label_of.count(row[1]) != 0, ann.string(), ": line ", line, ": class ", row[1],
              " is not one of the ", o.classes.size(), " training classes");
    files.push_back((fs::path(val_dir) / "images" / row[0]).string());
    labels.push_back(label_of[row[1]]);
  }
  OKD_CHECK(!files.empty(), ann.string(), ": no images listed");
  ImageFolderOptions named = o;
  if (named.name.empty()) named.name = "tinyimagenet/val";
  return load_image_list(files, labels, o.classes, named, "tinyimagenet " + val_dir);
}

ImageDataset load_cub200(const std::string& dir, bool train, const ImageFolderOptions& o) {
  const fs::path root(dir);
  const std::vector<std::string> classes = class_folders((root / "images").string());
  std::map<std::string, int64_t> label_of;
  for (size_t i = 0; i < classes.size(); ++i) label_of[classes[i]] = static_cast<int64_t>(i);
  // images.txt: "<id> <class>/<file>"; train_test_split.txt: "<id> <1: train, 0: test>".
  std::map<std::string, std::string> path_of;
  for (const auto& row : read_table(root / "images.txt")) {
    OKD_CHECK(row.size() == 2, (root / "images.txt").string(), ": expected '<id> <path>' lines");
    path_of[row[0]] = row[1];
  }
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  for (const auto& row : read_table(root / "train_test_split.txt")) {
    OKD_CHECK(row.size() == 2 && path_of.count(row[0]) != 0,
              (root / "train_test_split.txt").string(), ": line for id ", row[0],
              " is not '<id in images.txt> <0|1>'");
    if ((row[1] == "1") != train) continue;
    const std::string& rel = path_of[row[0]];
    const std::string cls = fs::path(rel).parent_path().string();
    OKD_CHECK(label_of.count(cls) != 0, (root / "images.txt").string(), ": ", rel,
              " is not in a class folder of ", (root / "images").string());
    files.push_back((root / "images" / rel).string());
    labels.push_back(label_of[cls]);
  }
  ImageFolderOptions named = o;
  if (named.name.empty()) named.name = train ? "cub200/train" : "cub200/test";
  return load_image_list(files, labels, classes, named, "cub200 " + dir);
}

ImageDataset load_image_list(const std::vector<std::string>& files,
                             const std::vector<int64_t>& labels,
                             const std::vector<std::string>& class_names,
                             const ImageFolderOptions& o, const std::string& where) {
  OKD_CHECK(o.image_size >= 0, where, ": image size must be >= 0, got ", o.image_size);
  OKD_CHECK(!files.empty(), where, ": no images");
  OKD_CHECK(files.size() == labels.size(), where, ": ", files.size(), " files but ", labels.size(),
            " labels");
  const int64_t N = static_cast<int64_t>(files.size());
  int64_t H = o.image_size, W = o.image_size;
  if (o.image_size == 0) read_image_size(files[0], H, W);

  ImageDataset d;
  d.name = o.name.empty() ? where : o.name;
  d.class_names = class_names;
  d.num_classes = static_cast<int64_t>(class_names.size());
  d.images = empty({N, 3, H, W}, DType::UInt8);
  d.labels = empty({N}, DType::Int64);
  for (int64_t i = 0; i < N; ++i) {
    OKD_CHECK(labels[i] >= 0 && labels[i] < d.num_classes, files[i], ": label ", labels[i],
              " is out of range for ", d.num_classes, " classes");
    d.labels.data<int64_t>()[i] = labels[i];
  }
  uint8_t* out = d.images.data<uint8_t>();

  // Workers take file indices in increasing order and stop after a failure only past the
  // failing index, so every lower index is decoded and the error reported is the one of the
  // lowest unreadable file, whatever the thread count.
  std::atomic<int64_t> next{0};
  std::mutex err_mu;
  int64_t err_index = N;
  std::string err_msg;
  auto first_error = [&] {
    std::lock_guard<std::mutex> lock(err_mu);
    return err_index;
  };
  Progress progress(where, N, o.progress);
  auto work = [&] {
    for (int64_t i = next++; i < N && i < first_error(); i = next++) {
      try {
        fit_image(read_image(files[i]), files[i], o, H, W, files[0], out + i * 3 * H * W);
        progress.tick();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (i < err_index) {
          err_index = i;
          err_msg = e.what();
        }
      }
    }
  };
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, N));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (err_index < N) OKD_FAIL(where, ": ", err_msg);
  return d;
}

}  // namespace okd::data
