// Batch normalisation on CUDA (formulas in norm.h). Training forward and backward are one kernel
// launch each: one block per channel reduces the channel's N x S values in double (each thread a
// fixed strided share, then block_reduce's fixed tree: deterministic), forms scale and shift in
// double as norm_cpu.cpp does, and writes the output in the input's dtype, with the fused ReLU
// and residual of the forward and the ReLU mask of the backward applied in the same pass. (They
// replaced a composition of ~12 generic ops forward and ~20 backward, in float64.) Eval mode is
// one elementwise kernel with the per-channel scale and shift formed in each block.
#include <algorithm>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

struct Geometry {
  int64_t N, C, S, M;  // x viewed as [N, C, S]; M = N * S values per channel
};

Geometry geometry(const Tensor& x, const char* op) {
  OKD_CHECK(x.dim() >= 2, op, ": expected an input [N, C, ...], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()), op, ": expected a float tensor, got ", x.desc());
  check_device(x, op);
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return {x.size(0), x.size(1), S, x.size(0) * S};
}

// Threads of a block laid over [rows, S]: `cols` threads per row (a power of two, at most the
// block), blockDim.x / cols rows at a time, so an 8x8 plane (S = 64) keeps every thread busy.
struct Lanes {
  int cols, rows;
};
Lanes lanes_for(int64_t S, int threads) {
  int cols = 32;
  while (cols < threads && cols < S) cols *= 2;
  return {cols, threads / cols};
}

constexpr int kChannelThreads = 512;
constexpr int kEvalThreads = 256;

// Channel c = blockIdx.x of x [N, C, S] (contiguous): mean, biased variance, y = x * scale + shift
// (+ residual, then max(., 0) when relu), and the statistics. w, b, res may be null.
template <class T>
__global__ void bn_train_kernel(const T* x, const T* w, const T* b, const T* res, T* y, T* mean_out,
                                T* invstd_out, T* var_unbiased_out, int64_t N, int64_t C, int64_t S,
                                double eps, bool relu, Lanes lanes) {
  __shared__ double smem[32];
  const int64_t c = blockIdx.x;
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  const double M = static_cast<double>(N * S);
  double s = 0;
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const T* r = x + (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) s += static_cast<double>(r[i]);
  }
  const double mean = block_reduce(s, SumOp{}, smem) / M;
  const T mean_t = static_cast<T>(mean);
  double ss = 0;  // two passes, as on the CPU: sum (x - mean)^2
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const T* r = x + (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const double d = static_cast<double>(r[i] - mean_t);
      ss += d * d;
    }
  }
  ss = block_reduce(ss, SumOp{}, smem);
  const double invstd = 1.0 / ::sqrt(ss / M + eps);
  const double wc = w ? static_cast<double>(w[c]) : 1.0, bc = b ? static_cast<double>(b[c]) : 0.0;
  const T scale = static_cast<T>(invstd * wc), shift = static_cast<T>(bc - mean * invstd * wc);
  if (threadIdx.x == 0) {
    mean_out[c] = mean_t;
    invstd_out[c] = static_cast<T>(invstd);
    var_unbiased_out[c] = static_cast<T>(ss / (M - 1));
  }
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      T v = x[at + i] * scale + shift;
      if (res) v = v + res[at + i];
      y[at + i] = relu && !(v > T(0)) ? T(0) : v;
    }
  }
}

// Channel c = blockIdx.x: with d = dy (or dy where z > 0, z the fused forward's output),
// dx = w invstd / M (M d - sum(d) - xhat sum(d xhat)), dw = sum(d xhat), db = sum(d).
template <class T>
__global__ void bn_backward_kernel(const T* dy, const T* x, const T* w, const T* mean,
                                   const T* invstd, const T* z, T* dx, T* dw, T* db, int64_t N,
                                   int64_t C, int64_t S, Lanes lanes) {
  __shared__ double smem[32];
  const int64_t c = blockIdx.x;
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  const T mc = mean[c];
  const double is = static_cast<double>(invstd[c]), wc = w ? static_cast<double>(w[c]) : 1.0;
  double sdy = 0, sdyx = 0;
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const T d = z && !(z[at + i] > T(0)) ? T(0) : dy[at + i];
      sdy += static_cast<double>(d);
      sdyx += static_cast<double>(d * (x[at + i] - mc));
    }
  }
  sdy = block_reduce(sdy, SumOp{}, smem);
  sdyx = block_reduce(sdyx, SumOp{}, smem) * is;  // sum(d xhat)
  if (threadIdx.x == 0) {
    dw[c] = static_cast<T>(sdyx);
    db[c] = static_cast<T>(sdy);
  }
  const double M = static_cast<double>(N * S), k = wc * is / M;
  const T a = static_cast<T>(k * M), bb = static_cast<T>(-k * sdyx * is),
          off = static_cast<T>(-k * sdy);
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const T d = z && !(z[at + i] > T(0)) ? T(0) : dy[at + i];
      dx[at + i] = a * d + bb * (x[at + i] - mc) + off;
    }
  }
}

// Eval mode: y = x * scale + shift with scale = w / sqrt(var + eps), shift = b - mean scale, formed
// in double per channel as norm_cpu.cpp does and rounded to T. Block (c, j) takes channel c of
// the samples j, j + gridDim.y, ...; w, b may be null.
template <class T>
__global__ void bn_eval_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b,
                               T* y, int64_t N, int64_t C, int64_t S, double eps, Lanes lanes) {
  const int64_t c = blockIdx.x;
  const double inv = 1.0 / ::sqrt(static_cast<double>(var[c]) + eps);
  const double wc = w ? static_cast<double>(w[c]) : 1.0, bc = b ? static_cast<double>(b[c]) : 0.0;
  const T scale = static_cast<T>(wc * inv),
          shift = static_cast<T>(bc - static_cast<double>(mean[c]) * inv * wc);
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  for (int64_t n = blockIdx.y * static_cast<int64_t>(lanes.rows) + row0; n < N;
       n += static_cast<int64_t>(gridDim.y) * lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) y[at + i] = x[at + i] * scale + shift;
  }
}

// A [C] parameter as a contiguous tensor of x's dtype on x's device, or undefined.
Tensor channel_param(const Tensor& t, int64_t C, const Tensor& x, const char* what,
                     const char* op) {
  if (!t.defined()) return Tensor();
  OKD_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the input has ", C, " channels");
  OKD_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device().str(),
            " but the input on ", x.device().str());
  return ops::contiguous(ops::to(t, x.dtype()));
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.device_data<T>() : nullptr;
}

}  // namespace

namespace gpu {

std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x_, const Tensor& weight,
                                                        const Tensor& bias, double eps, bool relu,
                                                        const Tensor& residual) {
  const char* op = "batch_norm";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(g.M > 1, "batch_norm: training needs more than one value per channel, got input ",
            shape_str(x_.shape()));
  const Tensor x = ops::contiguous(x_);
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor b = channel_param(bias, g.C, x, "bias", op);
  Tensor res;
  if (residual.defined()) {
    OKD_CHECK(residual.shape() == x.shape() && residual.dtype() == x.dtype() &&
                  residual.device() == x.device(),
              "batch_norm: the residual ", residual.desc(), " does not match the input ", x.desc());
    res = ops::contiguous(residual);
  }
  const int64_t S = g.S;
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  ops::BatchNormStats st{empty({g.C}, x.dtype(), x.device()), empty({g.C}, x.dtype(), x.device()),
                         empty({g.C}, x.dtype(), x.device())};
  if (g.C == 0) return {y, st};  // no channel: nothing to launch
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_train_kernel<T><<<static_cast<unsigned>(g.C), kChannelThreads, 0, stream()>>>(
        x.device_data<T>(), data_or_null<T>(w), data_or_null<T>(b), data_or_null<T>(res),
        y.device_data<T>(), st.mean.device_data<T>(), st.invstd.device_data<T>(),
        st.var_unbiased.device_data<T>(), g.N, g.C, S, eps, relu, lanes_for(S, kChannelThreads));
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  return {y, st};
}

Tensor batch_norm_eval(const Tensor& x_, const Tensor& mean, const Tensor& var,
                       const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "batch_norm";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(mean.defined() && var.defined(), "batch_norm: eval mode needs running statistics");
  // (statistics of another float dtype than x are rounded to x's first; the CPU reads them in
  // double)
  const Tensor x = ops::contiguous(x_);
  const Tensor m = channel_param(mean, g.C, x, "running_mean", op);
  const Tensor v = channel_param(var, g.C, x, "running_var", op);
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor b = channel_param(bias, g.C, x, "bias", op);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return y;  // nothing to launch
  const int64_t S = g.S;
  const Lanes lanes = lanes_for(S, kEvalThreads);
  const int64_t row_blocks = (g.N + lanes.rows - 1) / lanes.rows;
  const dim3 grid(static_cast<unsigned>(g.C),
                  static_cast<unsigned>(std::min<int64_t>(row_blocks, 32)));
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_eval_kernel<T><<<grid, kEvalThreads, 0, stream()>>>(
        x.device_data<T>(), m.device_data<T>(), v.device_data<T>(), data_or_null<T>(w),
        data_or_null<T>(b), y.device_data<T>(), g.N, g.C, S, eps, lanes);
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  return y;
}

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy_, const Tensor& x_,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd,
                                                       const Tensor& relu_out) {
  const char* op = "batch_norm_backward";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(dy_.shape() == x_.shape() && dy_.dtype() == x_.dtype() && dy_.device() == x_.device(),
            "batch_norm_backward: gradient ", dy_.desc(), " does not match input ", x_.desc());
  if (relu_out.defined())
    OKD_CHECK(relu_out.shape() == x_.shape() && relu_out.dtype() == x_.dtype() &&
                  relu_out.device() == x_.device(),
              "batch_norm_backward: the fused ReLU output ", relu_out.desc(),
              " does not match the input ", x_.desc());
  const Tensor x = ops::contiguous(x_), dy = ops::contiguous(dy_);
  const Tensor z = relu_out.defined() ? ops::contiguous(relu_out) : Tensor();
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor m = channel_param(mean, g.C, x, "mean", op);
  const Tensor is = channel_param(invstd, g.C, x, "invstd", op);
  OKD_CHECK(m.defined() && is.defined(), op, ": needs the forward's mean and invstd");
  const int64_t S = g.S;
  Tensor dx = empty(x.shape(), x.dtype(), x.device());
  Tensor dw = empty({g.C}, x.dtype(), x.device()), db = empty({g.C}, x.dtype(), x.device());
  if (g.C == 0) return {dx, dw, db};  // no channel: nothing to launch
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_backward_kernel<T><<<static_cast<unsigned>(g.C), kChannelThreads, 0, stream()>>>(
        dy.device_data<T>(), x.device_data<T>(), data_or_null<T>(w), m.device_data<T>(),
        is.device_data<T>(), data_or_null<T>(z), dx.device_data<T>(), dw.device_data<T>(),
        db.device_data<T>(), g.N, g.C, S, lanes_for(S, kChannelThreads));
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  return {dx, dw, db};
}

}  // namespace gpu

}  // namespace okd::cuda
