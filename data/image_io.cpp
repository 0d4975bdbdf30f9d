// stb_image / stb_image_write behind the DecodedImage interface (interleaved HWC <-> planar CHW).
#include "data/image_io.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tensor/error.h"

namespace okd::data {

namespace {
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  OKD_CHECK(f.good(), path, ": cannot open the file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  OKD_CHECK(!bytes.empty(), path, ": the file is empty");
  return bytes;
}
int stb_size(const std::vector<uint8_t>& bytes, const std::string& path) {
  OKD_CHECK(bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()), path,
            ": the file is too large to decode (", bytes.size(), " bytes)");
  return static_cast<int>(bytes.size());
}
std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}
}  // namespace

DecodedImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path) {
  int w = 0, h = 0, file_channels = 0;
  // Ask for 3 channels: grey, grey+alpha and RGBA images come out as RGB (alpha dropped).
  uint8_t* hwc =
      stbi_load_from_memory(bytes.data(), stb_size(bytes, path), &w, &h, &file_channels, 3);
  OKD_CHECK(hwc != nullptr, path, ": unreadable image (", stbi_failure_reason(),
            "); okd decodes JPEG, PNG and BMP");
  DecodedImage img;
  img.height = h;
  img.width = w;
  img.pixels.resize(static_cast<size_t>(3) * h * w);
  const int64_t plane = static_cast<int64_t>(h) * w;
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t c = 0; c < 3; ++c) img.pixels[c * plane + p] = hwc[p * 3 + c];
  stbi_image_free(hwc);
  return img;
}

DecodedImage read_image(const std::string& path) { return decode_image(read_bytes(path), path); }

void read_image_size(const std::string& path, int64_t& height, int64_t& width) {
  std::vector<uint8_t> bytes = read_bytes(path);
  int w = 0, h = 0, c = 0;
  OKD_CHECK(stbi_info_from_memory(bytes.data(), stb_size(bytes, path), &w, &h, &c) != 0, path,
            ": unreadable image (", stbi_failure_reason(), "); okd decodes JPEG, PNG and BMP");
  height = h;
  width = w;
}

void save_image(const std::string& path, const uint8_t* chw, int64_t channels, int64_t height,
                int64_t width) {
  OKD_CHECK(channels == 1 || channels == 3, "save_image: ", path, ": ", channels,
            " channels (1 or 3 expected)");
  OKD_CHECK(height > 0 && width > 0, "save_image: ", path, ": empty image ", height, "x", width);
  const int64_t plane = height * width;
  std::vector<uint8_t> hwc(static_cast<size_t>(plane * channels));
  for (int64_t p = 0; p < plane; ++p)
    for (int64_t c = 0; c < channels; ++c) hwc[p * channels + c] = chw[c * plane + p];
  const int w = static_cast<int>(width), h = static_cast<int>(height),
            n = static_cast<int>(channels);
  const std::string ext = lower_extension(path);
  int ok = 0;
  if (ext == ".png")
    ok = stbi_write_png(path.c_str(), w, h, n, hwc.data(), w * n);
  else if (ext == ".bmp")
    ok = stbi_write_bmp(path.c_str(), w, h, n, hwc.data());
  else if (ext == ".jpg" || ext == ".jpeg")
    ok = stbi_write_jpg(path.c_str(), w, h, n, hwc.data(), 95);
  else
    OKD_FAIL("save_image: ", path, ": unknown extension '", ext, "' (.png, .bmp, .jpg)");
  OKD_CHECK(ok != 0, "save_image: cannot write ", path);
}

}  // namespace okd::data
