// Pooling on the CPU: one (n, c) plane per task.
#include <cmath>
#include <limits>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/pool.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {
void check_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, const char* op) {
  OKD_CHECK(x.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()) && x.device().is_cpu(), op,
            ": expected a float CPU tensor, got ", x.desc());
  OKD_CHECK(k >= 1 && s >= 1 && p >= 0 && 2 * p <= k, op, ": invalid kernel ", k, ", stride ", s,
            ", padding ", p, " (padding must be at most half the kernel)");
  OKD_CHECK(x.size(2) + 2 * p >= k && x.size(3) + 2 * p >= k, op, ": input ", shape_str(x.shape()),
            " is smaller than the kernel ", k);
}
inline int64_t start_index(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
inline int64_t end_index(int64_t i, int64_t out, int64_t in) {
  return ((i + 1) * in + out - 1) / out;
}
}  // namespace

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x_, int64_t k, int64_t s, int64_t p) {
  if (cuda::on_cuda(x_)) return cuda::max_pool2d_forward(x_, k, s, p);
  check_pool(x_, k, s, p, "max_pool2d");
  Tensor x = contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  Tensor y = empty({N, C, OH, OW}, x.dtype()), idx = empty({N, C, OH, OW}, DType::Int64);
  OKD_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int64_t* pi = idx.data<int64_t>();
    parallel_for(0, N * C, 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const T* in = px + plane * H * W;
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            T best = -std::numeric_limits<T>::infinity();
            int64_t bi = -1;
            for (int64_t i = 0; i < k; ++i) {
              const int64_t h = oh * s - p + i;
              if (h < 0 || h >= H) continue;
              for (int64_t j = 0; j < k; ++j) {
                const int64_t w = ow * s - p + j;
                if (w < 0 || w >= W) continue;
                const T v = in[h * W + w];
                if (bi < 0 || v > best || v != v) {
                  best = v;
                  bi = h * W + w;
                  if (v != v) break;
                }
              }
            }
            py[(plane * OH + oh) * OW + ow] = best;
            pi[(plane * OH + oh) * OW + ow] = bi;
          }
      }
    });
  });
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& dy_, const Tensor& indices, const Shape& s) {
  if (cuda::on_cuda(dy_, indices)) return cuda::max_pool2d_backward(dy_, indices, s);
  Tensor dy = contiguous(dy_);
  Tensor dx = zeros(s, dy.dtype());
  const int64_t planes = s[0] * s[1], HW = s[2] * s[3], L = dy.size(2) * dy.size(3);
  OKD_DISPATCH_FLOAT(dy.dtype(), "max_pool2d_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    const int64_t* pi = indices.data<int64_t>();
    T* pdx = dx.data<T>();
    parallel_for(0, planes, 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane)
        for (int64_t l = 0; l < L; ++l) pdx[plane * HW + pi[plane * L + l]] += pdy[plane * L + l];
    });
  });
  return dx;
}

Tensor avg_pool2d_forward(const Tensor& x_, int64_t k, int64_t s, int64_t p) {
  if (cuda::on_cuda(x_)) return cuda::avg_pool2d_forward(x_, k, s, p);
  check_pool(x_, k, s, p, "avg_pool2d");
  Tensor x = contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  Tensor y = empty({N, C, OH, OW}, x.dtype());
  OKD_DISPATCH_FLOAT(x.dtype(), "avg_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const double inv = 1.0 / static_cast<double>(k * k);
    parallel_for(0, N * C, 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            double acc = 0;
            for (int64_t i = 0; i < k; ++i) {
              const int64_t h = oh * s - p + i;
              if (h < 0 || h >= H) continue;
              for (int64_t j = 0; j < k; ++j) {
                const int64_t w = ow * s - p + j;
                if (w >= 0 && w < W) acc += px[plane * H * W + h * W + w];
              }
            }
            py[(plane * OH + oh) * OW + ow] = static_cast<T>(acc * inv);
          }
    });
  });
  return y;
}

Tensor avg_pool2d_backward(const Tensor& dy_, const Shape& sh, int64_t k, int64_t s, int64_t p) {
  if (cuda::on_cuda(dy_)) return cuda::avg_pool2d_backward(dy_, sh, k, s, p);
  Tensor dy = contiguous(dy_);
  Tensor dx = zeros(sh, dy.dtype());
  const int64_t H = sh[2], W = sh[3], OH = dy.size(2), OW = dy.size(3);
  OKD_DISPATCH_FLOAT(dy.dtype(), "avg_pool2d_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    const T inv = static_cast<T>(1.0 / static_cast<double>(k * k));
    parallel_for(0, sh[0] * sh[1], 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const T g = pdy[(plane * OH + oh) * OW + ow] * inv;
            for (int64_t i = 0; i < k; ++i) {
              const int64_t h = oh * s - p + i;
              if (h < 0 || h >= H) continue;
              for (int64_t j = 0; j < k; ++j) {
                const int64_t w = ow * s - p + j;
                if (w >= 0 && w < W) pdx[plane * H * W + h * W + w] += g;
              }
            }
          }
    });
  });
  return dx;
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x_, int64_t OH, int64_t OW) {
  if (cuda::on_cuda(x_)) return cuda::adaptive_avg_pool2d_forward(x_, OH, OW);
  OKD_CHECK(x_.dim() == 4, "adaptive_avg_pool2d: expected a 4-D input, got ",
            shape_str(x_.shape()));
  OKD_CHECK(OH >= 1 && OW >= 1, "adaptive_avg_pool2d: output size must be positive");
  Tensor x = contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = empty({N, C, OH, OW}, x.dtype());
  OKD_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(0, N * C, 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane)
        for (int64_t i = 0; i < OH; ++i)
          for (int64_t j = 0; j < OW; ++j) {
            const int64_t h0 = start_index(i, OH, H), h1 = end_index(i, OH, H);
            const int64_t w0 = start_index(j, OW, W), w1 = end_index(j, OW, W);
            double acc = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) acc += px[plane * H * W + h * W + w];
            py[(plane * OH + i) * OW + j] =
                static_cast<T>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
          }
    });
  });
  return y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& dy_, const Shape& sh) {
  if (cuda::on_cuda(dy_)) return cuda::adaptive_avg_pool2d_backward(dy_, sh);
  Tensor dy = contiguous(dy_);
  Tensor dx = zeros(sh, dy.dtype());
  const int64_t H = sh[2], W = sh[3], OH = dy.size(2), OW = dy.size(3);
  OKD_DISPATCH_FLOAT(dy.dtype(), "adaptive_avg_pool2d_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    parallel_for(0, sh[0] * sh[1], 4, [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane)
        for (int64_t i = 0; i < OH; ++i)
          for (int64_t j = 0; j < OW; ++j) {
            const int64_t h0 = start_index(i, OH, H), h1 = end_index(i, OH, H);
            const int64_t w0 = start_index(j, OW, W), w1 = end_index(j, OW, W);
            const T g = static_cast<T>(pdy[(plane * OH + i) * OW + j] /
                                       static_cast<double>((h1 - h0) * (w1 - w0)));
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) pdx[plane * H * W + h * W + w] += g;
          }
    });
  });
  return dx;
}

}  // namespace okd::ops
