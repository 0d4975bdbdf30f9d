// The geometric and erasing transforms of the augmentation pipeline, on one planar image
// (C planes of H rows of W pixels, row-major), with the random choices passed in as uniform
// numbers so a caller decides where randomness comes from (BatchLoader: Philox per sample).
//
// Resampling is bilinear with half-pixel centres, PyTorch's interpolate(mode="bilinear",
// align_corners=False): output pixel i of an axis of scale s = in/out samples the input at
// x = (i + 0.5) * s - 0.5. With antialias, a shrinking axis (s > 1) widens the triangle filter to
// s input pixels (interpolate(..., antialias=True), PIL's bilinear); a growing axis is the same
// either way.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace okd::data {

// Rows [top, top + height) and columns [left, left + width) of an image.
struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool operator==(const Box&) const = default;
};

// Interpolation weights along one axis: out[i] = sum_k weights[i * taps + k] * in[start[i] + k].
struct AxisWeights {
  int64_t taps = 0;
  std::vector<int64_t> start;
  std::vector<float> weights;
};
AxisWeights bilinear_weights(int64_t in_size, int64_t out_size, bool antialias);

// Resamples box of every plane of src (row stride W, plane stride H * W) to out_h x out_w
// float pixels in dst ([C, out_h, out_w]); values keep their scale (0..255 for uint8 input).
void resample_box(const uint8_t* src, int64_t C, int64_t H, int64_t W, Box box, float* dst,
                  int64_t out_h, int64_t out_w, bool antialias);
void resample_box(const float* src, int64_t C, int64_t H, int64_t W, Box box, float* dst,
                  int64_t out_h, int64_t out_w, bool antialias);
// The whole image resized to out_h x out_w, rounded to the nearest uint8 (load-time resizing).
void resize_image(const uint8_t* src, int64_t C, int64_t H, int64_t W, uint8_t* dst, int64_t out_h,
                  int64_t out_w, bool antialias = true);

// torchvision's center_crop box of size crop_h x crop_w: top = round((H - crop_h) / 2), left
// likewise, rounding halves to even as Python does. The crop must fit in the image.
Box center_crop_box(int64_t H, int64_t W, int64_t crop_h, int64_t crop_w);

// The box of torchvision's RandomResizedCrop.get_params. Up to 10 attempts: area fraction
// a ~ U(scale) and log aspect ratio r ~ U(log ratio), w = round(sqrt(a H W e^r)),
// h = round(sqrt(a H W / e^r)); the first box that fits is placed uniformly. When none fits,
// the centre crop of the whole image clamped to the ratio range. uniforms[k] are 4 numbers in
// [0, 1) for attempt k (area, ratio, top, left).
Box random_resized_crop_box(int64_t H, int64_t W, std::array<double, 2> scale,
                            std::array<double, 2> ratio,
                            const std::array<std::array<double, 4>, 10>& uniforms);

// The square that Cutout (DeVries & Taylor 2017) erases: centre (cy, cx) uniform over the image
// (cy = floor(uy * H), cx = floor(ux * W)), rows clip(cy - size/2 .. cy + size/2) to [0, H) and
// columns likewise, with size/2 rounded down as in the authors' code.
Box cutout_box(int64_t H, int64_t W, int64_t size, double uy, double ux);
// Sets the box of every plane of img ([C, H, W] floats) to value.
void fill_box(float* img, int64_t C, int64_t H, int64_t W, Box box, float value);

}  // namespace okd::data
