// ImageFolder: listing class folders, parallel decoding with stb_image, load-time resizing.
#include "data/image_folder.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
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

// Prints "imagefolder ROOT: decoded k/N images" at every 10% (in place on a terminal).
class Progress {
 public:
  Progress(const std::string& root, int64_t total, bool on)
      : root_(root), total_(total), on_(on && total >= 2000), tty_(isatty(fileno(stderr)) != 0) {}
  void tick() {
    const int64_t d = ++done_;
    if (!on_ || d * 10 / total_ == (d - 1) * 10 / total_) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "%simagefolder %s: decoded %lld/%lld images%s", tty_ ? "\r" : "",
                 root_.c_str(), static_cast<long long>(d), static_cast<long long>(total_),
                 tty_ && d < total_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string root_;
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

  const int64_t N = static_cast<int64_t>(files.size());
  int64_t H = o.image_size, W = o.image_size;
  if (o.image_size == 0) read_image_size(files[0], H, W);

  ImageDataset d;
  d.name = !o.name.empty() ? o.name
                           : "imagefolder/" + fs::path(root).lexically_normal().filename().string();
  d.class_names = names;
  d.num_classes = static_cast<int64_t>(names.size());
  d.images = empty({N, 3, H, W}, DType::UInt8);
  d.labels = empty({N}, DType::Int64);
  std::copy(labels.begin(), labels.end(), d.labels.data<int64_t>());
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
  Progress progress(root, N, o.progress);
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
  if (err_index < N) OKD_FAIL("imagefolder: ", err_msg);
  return d;
}

}  // namespace okd::data
