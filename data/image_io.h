// Decoding and saving single images with stb_image / stb_image_write: JPEG, PNG and BMP (and the
// other formats stb_image reads) decode to 8-bit RGB in planar CHW order, the layout ImageDataset
// stores. Failures name the file and stb's reason.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace okd::data {

struct DecodedImage {
  int64_t channels = 3, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // uint8 [C, H, W]
};

// Decodes an encoded image held in memory; path only names the image in errors.
DecodedImage decode_image(const std::vector<uint8_t>& bytes, const std::string& path);
// Reads and decodes the file at path.
DecodedImage read_image(const std::string& path);
// The width and height stored in the file's header, without decoding the pixels.
void read_image_size(const std::string& path, int64_t& height, int64_t& width);
// Writes a uint8 [C, H, W] image (C = 1 or 3) as PNG, BMP or JPEG (quality 95), chosen by the
// extension of path (.png, .bmp, .jpg/.jpeg). For inspecting augmentations, and for the tests.
void save_image(const std::string& path, const uint8_t* chw, int64_t channels, int64_t height,
                int64_t width);

}  // namespace okd::data
