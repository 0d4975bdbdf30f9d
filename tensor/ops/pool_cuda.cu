// 2-D pooling on CUDA, NCHW (shapes and conventions in pool.h). Forward: one thread per output
// element, the CPU's loop. Backward without atomics, so results are deterministic and equal to the
// CPU's bit for bit: average pooling gathers, per input element, the gradients of the outputs
// whose window covers it in the CPU's (row-major output) order; max pooling scatters through the
// saved indices with one thread per (n, c) plane, visiting the plane's outputs in order, as the
// CPU does (planes are disjoint, so no two threads write the same element).
#include <limits>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"

namespace okd::cuda {

namespace {

template <class T>
__global__ void max_pool_kernel(const T* x, T* y, int64_t* idx, int64_t total, int64_t H, int64_t W,
                                int64_t OH, int64_t OW, int64_t k, int64_t s, int64_t p) {
  OKD_GRID_STRIDE(o, total) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OW * OH);
    const T* in = x + plane * H * W;
    T best = -INFINITY;
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
          if (v != v) break;  // as on the CPU: the rest of this window row is skipped
        }
      }
    }
    y[o] = best;
    idx[o] = bi;
  }
}

template <class T>
__global__ void max_pool_backward_kernel(const T* dy, const int64_t* idx, T* dx, int64_t planes,
                                         int64_t L, int64_t HW) {
  OKD_GRID_STRIDE(plane, planes) {
    for (int64_t l = 0; l < L; ++l) dx[plane * HW + idx[plane * L + l]] += dy[plane * L + l];
  }
}

template <class T>
__global__ void avg_pool_kernel(const T* x, T* y, int64_t total, int64_t H, int64_t W, int64_t OH,
                                int64_t OW, int64_t k, int64_t s, int64_t p) {
  const double inv = 1.0 / static_cast<double>(k * k);
  OKD_GRID_STRIDE(o, total) {
    const int64_t ow = o % OW, oh = (o / OW) % OH, plane = o / (OW * OH);
    double acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t h = oh * s - p + i;
      if (h < 0 || h >= H) continue;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t w = ow * s - p + j;
        if (w >= 0 && w < W) acc += x[plane * H * W + h * W + w];
      }
    }
    y[o] = static_cast<T>(acc * inv);
  }
}

// Products rounded on their own (no FMA contraction into the sum), as the CPU computes them.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

// Output oh covers input row h when oh s - p <= h <= oh s - p + k - 1.
template <class T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, int64_t total, int64_t H, int64_t W,
                                         int64_t OH, int64_t OW, int64_t k, int64_t s, int64_t p) {
  const T inv = static_cast<T>(1.0 / static_cast<double>(k * k));
  OKD_GRID_STRIDE(e, total) {
    const int64_t w = e % W, h = (e / W) % H, plane = e / (W * H);
    const int64_t oh0 = max(int64_t{0}, (h + p - k + s) / s), oh1 = min(OH - 1, (h + p) / s);
    const int64_t ow0 = max(int64_t{0}, (w + p - k + s) / s), ow1 = min(OW - 1, (w + p) / s);
    T acc = 0;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) acc += mul_rn(dy[(plane * OH + oh) * OW + ow], inv);
    dx[e] = acc;
  }
}

__device__ __forceinline__ int64_t start_index(int64_t i, int64_t out, int64_t in) {
  return (i * in) / out;
}
__device__ __forceinline__ int64_t end_index(int64_t i, int64_t out, int64_t in) {
  return ((i + 1) * in + out - 1) / out;
}

template <class T>
__global__ void adaptive_avg_kernel(const T* x, T* y, int64_t total, int64_t H, int64_t W,
                                    int64_t OH, int64_t OW) {
  OKD_GRID_STRIDE(o, total) {
    const int64_t j = o % OW, i = (o / OW) % OH, plane = o / (OW * OH);
    const int64_t h0 = start_index(i, OH, H), h1 = end_index(i, OH, H);
    const int64_t w0 = start_index(j, OW, W), w1 = end_index(j, OW, W);
    double acc = 0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) acc += x[plane * H * W + h * W + w];
    y[o] = static_cast<T>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
  }
}

template <class T>
__global__ void adaptive_avg_backward_kernel(const T* dy, T* dx, int64_t total, int64_t H,
                                             int64_t W, int64_t OH, int64_t OW) {
  OKD_GRID_STRIDE(e, total) {
    const int64_t w = e % W, h = (e / W) % H, plane = e / (W * H);
    T acc = 0;
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h0 = start_index(i, OH, H), h1 = end_index(i, OH, H);
      if (h < h0 || h >= h1) continue;
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w0 = start_index(j, OW, W), w1 = end_index(j, OW, W);
        if (w < w0 || w >= w1) continue;
        acc += static_cast<T>(dy[(plane * OH + i) * OW + j] /
                              static_cast<double>((h1 - h0) * (w1 - w0)));
      }
    }
    dx[e] = acc;
  }
}

// pool_cpu.cpp's check_pool, for CUDA tensors.
void check_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, const char* op) {
  OKD_CHECK(x.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()), op, ": expected a float tensor, got ", x.desc());
  check_device(x, op);
  OKD_CHECK(k >= 1 && s >= 1 && p >= 0 && 2 * p <= k, op, ": invalid kernel ", k, ", stride ", s,
            ", padding ", p, " (padding must be at most half the kernel)");
  OKD_CHECK(x.size(2) + 2 * p >= k && x.size(3) + 2 * p >= k, op, ": input ", shape_str(x.shape()),
            " is smaller than the kernel ", k);
}

void check_grad(const Tensor& dy, const Shape& in, const char* op) {
  OKD_CHECK(dy.dim() == 4 && in.size() == 4 && dy.size(0) == in[0] && dy.size(1) == in[1], op,
            ": gradient ", shape_str(dy.shape()), " does not match input shape ", shape_str(in));
  OKD_CHECK(is_floating(dy.dtype()), op, ": expected a float gradient, got ", dy.desc());
  check_device(dy, op);
}

}  // namespace

namespace gpu {

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x_, int64_t k, int64_t s, int64_t p) {
  check_pool(x_, k, s, p, "max_pool2d");
  const Tensor x = ops::contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  Tensor y = empty({N, C, OH, OW}, x.dtype(), x.device());
  Tensor idx = empty({N, C, OH, OW}, DType::Int64, x.device());
  const int64_t total = y.numel();
  if (total == 0) return {y, idx};
  dispatch_float(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    max_pool_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        x.device_data<T>(), y.device_data<T>(), idx.device_data<int64_t>(), total, H, W, OH, OW, k,
        s, p);
  });
  OKD_CUDA_CHECK_LAUNCH("max_pool2d");
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& dy_, const Tensor& indices, const Shape& sh) {
  check_grad(dy_, sh, "max_pool2d_backward");
  OKD_CHECK(indices.dtype() == DType::Int64 && indices.shape() == dy_.shape() &&
                indices.device() == dy_.device(),
            "max_pool2d_backward: indices ", indices.desc(), " do not match the gradient ",
            dy_.desc());
  const Tensor dy = ops::contiguous(dy_), idx = ops::contiguous(indices);
  Tensor dx = zeros(sh, dy.dtype(), dy.device());
  const int64_t planes = sh[0] * sh[1], L = dy.size(2) * dy.size(3);
  if (planes == 0 || L == 0) return dx;
  dispatch_float(dy.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_kernel<T><<<grid_for(planes), kThreads, 0, stream()>>>(
        dy.device_data<T>(), idx.device_data<int64_t>(), dx.device_data<T>(), planes, L,
        sh[2] * sh[3]);
  });
  OKD_CUDA_CHECK_LAUNCH("max_pool2d_backward");
  return dx;
}

Tensor avg_pool2d_forward(const Tensor& x_, int64_t k, int64_t s, int64_t p) {
  check_pool(x_, k, s, p, "avg_pool2d");
  const Tensor x = ops::contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  Tensor y = empty({N, C, OH, OW}, x.dtype(), x.device());
  const int64_t total = y.numel();
  if (total == 0) return y;
  dispatch_float(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        x.device_data<T>(), y.device_data<T>(), total, H, W, OH, OW, k, s, p);
  });
  OKD_CUDA_CHECK_LAUNCH("avg_pool2d");
  return y;
}

Tensor avg_pool2d_backward(const Tensor& dy_, const Shape& sh, int64_t k, int64_t s, int64_t p) {
  check_grad(dy_, sh, "avg_pool2d_backward");
  const Tensor dy = ops::contiguous(dy_);
  Tensor dx = empty(sh, dy.dtype(), dy.device());
  const int64_t total = dx.numel();
  if (total == 0) return dx;
  dispatch_float(dy.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        dy.device_data<T>(), dx.device_data<T>(), total, sh[2], sh[3], dy.size(2), dy.size(3), k, s,
        p);
  });
  OKD_CUDA_CHECK_LAUNCH("avg_pool2d_backward");
  return dx;
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x_, int64_t OH, int64_t OW) {
  OKD_CHECK(x_.dim() == 4, "adaptive_avg_pool2d: expected a 4-D input, got ",
            shape_str(x_.shape()));
  OKD_CHECK(OH >= 1 && OW >= 1, "adaptive_avg_pool2d: output size must be positive");
  OKD_CHECK(is_floating(x_.dtype()), "adaptive_avg_pool2d: expected a float tensor, got ",
            x_.desc());
  check_device(x_, "adaptive_avg_pool2d");
  const Tensor x = ops::contiguous(x_);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = empty({N, C, OH, OW}, x.dtype(), x.device());
  const int64_t total = y.numel();
  if (total == 0) return y;
  dispatch_float(x.dtype(), "adaptive_avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        x.device_data<T>(), y.device_data<T>(), total, H, W, OH, OW);
  });
  OKD_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d");
  return y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& dy_, const Shape& sh) {
  check_grad(dy_, sh, "adaptive_avg_pool2d_backward");
  const Tensor dy = ops::contiguous(dy_);
  Tensor dx = empty(sh, dy.dtype(), dy.device());
  const int64_t total = dx.numel();
  if (total == 0) return dx;
  dispatch_float(dy.dtype(), "adaptive_avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    adaptive_avg_backward_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        dy.device_data<T>(), dx.device_data<T>(), total, sh[2], sh[3], dy.size(2), dy.size(3));
  });
  OKD_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward");
  return dx;
}

}  // namespace gpu

}  // namespace okd::cuda
