// Batch normalisation on CUDA, composed of okd's CUDA ops (host code only; formulas in norm.h).
// The CPU kernel accumulates the per-channel statistics in double; so does this composition: the
// input is converted to float64 on the device and reduced with the deterministic reductions of
// reduce_cuda.cu, the per-channel scale and shift are formed in double exactly as norm_cpu.cpp
// forms them, then applied in the input's dtype (y = x * scale + shift, as on the CPU). It reads
// the input several times; a fused kernel (or cuDNN's) can replace it once a benchmark asks.
#include "tensor/cuda/backends.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

struct Geometry {
  int64_t N, C, M;            // M = N * prod(spatial): values per channel
  std::vector<int64_t> dims;  // every dim but C
  Shape channel_shape;        // [1, C, 1, ...] to broadcast a [C] tensor against x
};

Geometry geometry(const Tensor& x, const char* op) {
  OKD_CHECK(x.dim() >= 2, op, ": expected an input [N, C, ...], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()), op, ": expected a float tensor, got ", x.desc());
  check_device(x, op);
  Geometry g{x.size(0), x.size(1), 1, {}, Shape(x.dim(), 1)};
  g.channel_shape[1] = g.C;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d != 1) {
      g.dims.push_back(d);
      g.M *= x.shape()[d];
    }
  }
  return g;
}

// t ([C], any float dtype, on x's device) as float64, or `fill` when t is undefined.
Tensor channel_f64(const Tensor& t, int64_t C, double fill, const Tensor& x, const char* what,
                   const char* op) {
  if (!t.defined()) return full({C}, fill, DType::Float64, x.device());
  OKD_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the input has ", C, " channels");
  OKD_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device().str(),
            " but the input on ", x.device().str());
  return ops::to(t, DType::Float64);
}

// y = x * scale + shift in x's dtype, scale and shift [C] float64 rounded to that dtype first.
Tensor apply_affine(const Tensor& x, const Tensor& scale64, const Tensor& shift64,
                    const Geometry& g) {
  const Tensor scale = ops::reshape(ops::to(scale64, x.dtype()), g.channel_shape);
  const Tensor shift = ops::reshape(ops::to(shift64, x.dtype()), g.channel_shape);
  return ops::add(ops::mul(x, scale), shift);
}

}  // namespace

namespace gpu {

std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                        const Tensor& bias, double eps) {
  const Geometry g = geometry(x, "batch_norm");
  const Tensor w = channel_f64(weight, g.C, 1.0, x, "weight", "batch_norm");
  const Tensor b = channel_f64(bias, g.C, 0.0, x, "bias", "batch_norm");
  OKD_CHECK(g.M > 1, "batch_norm: training needs more than one value per channel, got input ",
            shape_str(x.shape()));
  const Tensor x64 = ops::to(x, DType::Float64);
  const Tensor mean = ops::mean(x64, g.dims);                    // sum / M
  const Tensor var = ops::var(x64, g.dims, /*unbiased=*/false);  // sum (x - mean)^2 / M
  const Tensor invstd = ops::rsqrt(ops::add(var, eps));          // 1 / sqrt(var + eps)
  // scale = invstd w, shift = b - mean invstd w (norm_cpu.cpp's order of operations)
  const Tensor scale = ops::mul(invstd, w);
  const Tensor shift = ops::sub(b, ops::mul(ops::mul(mean, invstd), w));
  ops::BatchNormStats st;
  st.mean = ops::to(mean, x.dtype());
  st.invstd = ops::to(invstd, x.dtype());
  st.var_unbiased = ops::to(ops::mul(var, static_cast<double>(g.M) / (g.M - 1)), x.dtype());
  return {apply_affine(x, scale, shift, g), st};
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  const Geometry g = geometry(x, "batch_norm");
  OKD_CHECK(mean.defined() && var.defined(), "batch_norm: eval mode needs running statistics");
  const Tensor m = channel_f64(mean, g.C, 0.0, x, "running_mean", "batch_norm");
  const Tensor v = channel_f64(var, g.C, 1.0, x, "running_var", "batch_norm");
  const Tensor w = channel_f64(weight, g.C, 1.0, x, "weight", "batch_norm");
  const Tensor b = channel_f64(bias, g.C, 0.0, x, "bias", "batch_norm");
  const Tensor inv = ops::rsqrt(ops::add(v, eps));
  const Tensor scale = ops::mul(w, inv);
  const Tensor shift = ops::sub(b, ops::mul(ops::mul(m, inv), w));
  return apply_affine(x, scale, shift, g);
}

// dx = w invstd / M (M dy - sum(dy) - xhat sum(dy xhat)), dw = sum(dy xhat), db = sum(dy), with
// xhat = (x - mean) invstd; sums over every dim but C, all in double.
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd) {
  const Geometry g = geometry(x, "batch_norm_backward");
  OKD_CHECK(dy.shape() == x.shape() && dy.dtype() == x.dtype() && dy.device() == x.device(),
            "batch_norm_backward: gradient ", dy.desc(), " does not match input ", x.desc());
  const Tensor w = channel_f64(weight, g.C, 1.0, x, "weight", "batch_norm_backward");
  const Tensor m = channel_f64(mean, g.C, 0.0, x, "mean", "batch_norm_backward");
  const Tensor is = channel_f64(invstd, g.C, 1.0, x, "invstd", "batch_norm_backward");
  const Tensor x64 = ops::to(x, DType::Float64), dy64 = ops::to(dy, DType::Float64);
  auto per_channel = [&](const Tensor& c) { return ops::reshape(c, g.channel_shape); };
  const Tensor xc = ops::sub(x64, per_channel(m));                         // x - mean
  const Tensor sdy = ops::sum(dy64, g.dims);                               // sum(dy)
  const Tensor sdyx = ops::mul(ops::sum(ops::mul(dy64, xc), g.dims), is);  // sum(dy xhat)
  const Tensor k = ops::div(ops::mul(w, is),
                            scalar_tensor(static_cast<double>(g.M), DType::Float64, x.device()));
  const Tensor xhat = ops::mul(xc, per_channel(is));
  const Tensor inner =
      ops::sub(ops::sub(ops::mul(dy64, static_cast<double>(g.M)), per_channel(sdy)),
               ops::mul(xhat, per_channel(sdyx)));
  const Tensor dx = ops::to(ops::mul(per_channel(k), inner), x.dtype());
  return {dx, ops::to(sdyx, x.dtype()), ops::to(sdy, x.dtype())};
}

}  // namespace gpu

}  // namespace okd::cuda
