// Bilinear resampling weights, box resampling, and the boxes of centre crop, random resized crop
// and cutout.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace okd::data {

namespace {
// The triangle filter of bilinear interpolation.
double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Two taps per output pixel: x = max((i + 0.5) s - 0.5, 0), neighbours floor(x) and the next one
// (clamped at the border) with weights 1 - frac(x) and frac(x).
AxisWeights plain_weights(int64_t in_size, int64_t out_size) {
  AxisWeights a;
  a.taps = in_size > 1 ? 2 : 1;  // never read past a one-pixel input
  a.start.assign(out_size, 0);
  if (in_size == 1) {
    a.weights.assign(out_size, 1.0f);
    return a;
  }
  a.weights.resize(2 * out_size);
  const double s = static_cast<double>(in_size) / static_cast<double>(out_size);
  for (int64_t i = 0; i < out_size; ++i) {
    const double x = std::max((static_cast<double>(i) + 0.5) * s - 0.5, 0.0);
    int64_t x0 = std::min(static_cast<int64_t>(x), in_size - 1);
    const double f = x - static_cast<double>(x0);
    if (x0 == in_size - 1) {  // last pixel: both taps on it
      a.start[i] = x0 > 0 ? x0 - 1 : 0;
      const bool shifted = x0 > 0;
      a.weights[2 * i] = shifted ? 0.0f : 1.0f;
      a.weights[2 * i + 1] = shifted ? 1.0f : 0.0f;
      continue;
    }
    a.start[i] = x0;
    a.weights[2 * i] = static_cast<float>(1.0 - f);
    a.weights[2 * i + 1] = static_cast<float>(f);
  }
  return a;
}

// PyTorch's antialiased weights (PIL's): centre c = (i + 0.5) s, support r = max(s, 1), taps
// j in [trunc(c - r + 0.5), trunc(c + r + 0.5)) clamped to the input, weight
// triangle((j - c + 0.5) / max(s, 1)), normalised to sum 1.
AxisWeights antialias_weights(int64_t in_size, int64_t out_size) {
  const double s = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = std::max(s, 1.0), inv = 1.0 / support;
  AxisWeights a;
  a.taps = std::min<int64_t>(static_cast<int64_t>(std::ceil(support)) * 2 + 1, in_size);
  a.start.resize(out_size);
  a.weights.assign(a.taps * out_size, 0.0f);
  for (int64_t i = 0; i < out_size; ++i) {
    const double c = (static_cast<double>(i) + 0.5) * s;
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(c - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(c + support + 0.5), in_size);
    // Taps are stored from start[i] = min(lo, in_size - taps) so every row has `taps` entries.
    const int64_t start = std::min(lo, in_size - a.taps);
    a.start[i] = start;
    double total = 0.0;
    for (int64_t j = lo; j < hi; ++j) total += triangle((static_cast<double>(j) - c + 0.5) * inv);
    for (int64_t j = lo; j < hi; ++j)
      a.weights[i * a.taps + (j - start)] =
          static_cast<float>(triangle((static_cast<double>(j) - c + 0.5) * inv) / total);
  }
  return a;
}

template <class T>
void resample_box_impl(const T* src, int64_t C, int64_t H, int64_t W, Box box, float* dst,
                       int64_t out_h, int64_t out_w, bool antialias) {
  OKD_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                box.top + box.height <= H && box.left + box.width <= W,
            "resample_box: box (top ", box.top, ", left ", box.left, ", ", box.height, "x",
            box.width, ") is not inside the ", H, "x", W, " image");
  OKD_CHECK(out_h > 0 && out_w > 0, "resample_box: empty output ", out_h, "x", out_w);
  const AxisWeights wy = bilinear_weights(box.height, out_h, antialias);
  const AxisWeights wx = bilinear_weights(box.width, out_w, antialias);
  // Rows first (each source row of the box to out_w columns), then columns.
  std::vector<float> rows(static_cast<size_t>(box.height * out_w));
  for (int64_t c = 0; c < C; ++c) {
    const T* plane = src + c * H * W + box.top * W + box.left;
    for (int64_t y = 0; y < box.height; ++y) {
      const T* in = plane + y * W;
      float* r = rows.data() + y * out_w;
      for (int64_t x = 0; x < out_w; ++x) {
        const T* p = in + wx.start[x];
        const float* w = wx.weights.data() + x * wx.taps;
        float acc = 0.0f;
        for (int64_t k = 0; k < wx.taps; ++k) acc += w[k] * static_cast<float>(p[k]);
        r[x] = acc;
      }
    }
    float* out = dst + c * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      float* o = out + y * out_w;
      const float* w = wy.weights.data() + y * wy.taps;
      std::fill(o, o + out_w, 0.0f);
      for (int64_t k = 0; k < wy.taps; ++k) {
        const float* r = rows.data() + (wy.start[y] + k) * out_w;
        for (int64_t x = 0; x < out_w; ++x) o[x] += w[k] * r[x];
      }
    }
  }
}
}  // namespace

AxisWeights bilinear_weights(int64_t in_size, int64_t out_size, bool antialias) {
  OKD_CHECK(in_size > 0 && out_size > 0, "bilinear_weights: sizes must be positive (", in_size,
            " -> ", out_size, ")");
  return antialias ? antialias_weights(in_size, out_size) : plain_weights(in_size, out_size);
}

void resample_box(const uint8_t* src, int64_t C, int64_t H, int64_t W, Box box, float* dst,
                  int64_t out_h, int64_t out_w, bool antialias) {
  resample_box_impl(src, C, H, W, box, dst, out_h, out_w, antialias);
}
void resample_box(const float* src, int64_t C, int64_t H, int64_t W, Box box, float* dst,
                  int64_t out_h, int64_t out_w, bool antialias) {
  resample_box_impl(src, C, H, W, box, dst, out_h, out_w, antialias);
}

void resize_image(const uint8_t* src, int64_t C, int64_t H, int64_t W, uint8_t* dst, int64_t out_h,
                  int64_t out_w, bool antialias) {
  std::vector<float> tmp(static_cast<size_t>(C * out_h * out_w));
  resample_box(src, C, H, W, Box{0, 0, H, W}, tmp.data(), out_h, out_w, antialias);
  for (size_t i = 0; i < tmp.size(); ++i)
    dst[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(tmp[i]), 0.0f, 255.0f));
}

Box center_crop_box(int64_t H, int64_t W, int64_t crop_h, int64_t crop_w) {
  OKD_CHECK(crop_h > 0 && crop_w > 0 && crop_h <= H && crop_w <= W, "center crop ", crop_h, "x",
            crop_w, " does not fit in the ", H, "x", W, " image");
  // std::nearbyint rounds halves to even (the default rounding mode), as Python's round().
  return Box{static_cast<int64_t>(std::nearbyint((H - crop_h) / 2.0)),
             static_cast<int64_t>(std::nearbyint((W - crop_w) / 2.0)), crop_h, crop_w};
}

Box random_resized_crop_box(int64_t H, int64_t W, std::array<double, 2> scale,
                            std::array<double, 2> ratio,
                            const std::array<std::array<double, 4>, 10>& uniforms) {
  const double area = static_cast<double>(H * W);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (const auto& u : uniforms) {
    const double target = area * (scale[0] + u[0] * (scale[1] - scale[0]));
    const double aspect = std::exp(log_lo + u[1] * (log_hi - log_lo));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      // randint(0, n) = floor(u n), clamped against u rounding up to 1.
      const int64_t top = std::min(static_cast<int64_t>(u[2] * double(H - h + 1)), H - h);
      const int64_t left = std::min(static_cast<int64_t>(u[3] * double(W - w + 1)), W - w);
      return Box{top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  int64_t w = W, h = H;
  if (in_ratio < ratio[0])
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / ratio[0]));
  else if (in_ratio > ratio[1])
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * ratio[1]));
  return Box{(H - h) / 2, (W - w) / 2, h, w};
}

Box cutout_box(int64_t H, int64_t W, int64_t size, double uy, double ux) {
  const int64_t cy = std::min(static_cast<int64_t>(uy * double(H)), H - 1);
  const int64_t cx = std::min(static_cast<int64_t>(ux * double(W)), W - 1);
  const int64_t half = size / 2;
  const int64_t y0 = std::clamp<int64_t>(cy - half, 0, H),
                y1 = std::clamp<int64_t>(cy + half, 0, H);
  const int64_t x0 = std::clamp<int64_t>(cx - half, 0, W),
                x1 = std::clamp<int64_t>(cx + half, 0, W);
  return Box{y0, x0, y1 - y0, x1 - x0};
}

void fill_box(float* img, int64_t C, int64_t H, int64_t W, Box box, float value) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = box.top; y < box.top + box.height; ++y) {
      float* row = img + (c * H + y) * W + box.left;
      std::fill(row, row + box.width, value);
    }
}

}  // namespace okd::data
