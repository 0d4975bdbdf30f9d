// Batch normalisation on the CPU: channels in parallel, each channel reduced by one thread with
// per-row sums in 8 fixed lanes (vectorisable) added up in double, so results do not depend on
// the thread count.
#include <cmath>
#include <vector>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/norm.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {
struct Geometry {
  int64_t N, C, S;  // x viewed as [N, C, S]
};
Geometry geometry(const Tensor& x, const char* op) {
  OKD_CHECK(x.dim() >= 2, op, ": expected an input [N, C, ...], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()) && x.device().is_cpu(), op,
            ": expected a float CPU tensor, got ", x.desc());
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return {x.shape()[0], x.shape()[1], S};
}
// The reductions of a row r[0..S): 8 partial sums in T (lane i % 8) combined in a fixed order.
// A single double accumulator is a serial dependency chain: 4+ cycles an element, 13% of a
// ResNet-20 training step before this.
template <class T, class F>
double lane_sum(int64_t S, F term) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= S; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += term(i + j);
  double s = 0;
  for (int j = 0; j < 8; ++j) s += acc[j];
  for (; i < S; ++i) s += term(i);
  return s;
}

void check_param(const Tensor& t, int64_t C, const char* what, const char* op) {
  if (!t.defined()) return;
  OKD_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the input has ", C, " channels");
}
void check_running(const Tensor& t, const Tensor& like, const char* what) {
  OKD_CHECK(t.defined() && t.dim() == 1 && t.shape() == like.shape() && t.dtype() == like.dtype() &&
                t.device() == like.device() && t.is_contiguous(),
            "batch_norm_update_running_: ", what, " ", t.defined() ? t.desc() : "undefined",
            " does not match the running mean ", like.desc(), " (expected [C], contiguous)");
}
// The running statistics and the batch counter that batch_norm_update_running_ (or a training
// forward, in its own launch) advances: a contiguous [C] mean, a variance like it, an int64 scalar.
void check_running_state(const Tensor& running_mean, const Tensor& running_var,
                         const Tensor& num_batches_tracked) {
  OKD_CHECK(running_mean.defined() && running_mean.dim() == 1 && running_mean.is_contiguous(),
            "batch_norm_update_running_: the running mean must be a contiguous [C] tensor, got ",
            running_mean.defined() ? running_mean.desc() : "undefined");
  check_running(running_var, running_mean, "running variance");
  if (num_batches_tracked.defined())
    OKD_CHECK(num_batches_tracked.dtype() == DType::Int64 && num_batches_tracked.numel() == 1 &&
                  num_batches_tracked.is_contiguous() &&
                  num_batches_tracked.device() == running_mean.device(),
              "batch_norm_update_running_: num_batches_tracked must be an int64 scalar on ",
              running_mean.device().str(), ", got ", num_batches_tracked.desc());
}
// Whether the running statistics can be updated inside the forward's launch: x's dtype and
// device (else batch_norm_train converts the batch statistics and calls the update separately).
bool running_folds(const BatchNormRunning& r, const Tensor& x) {
  return r.mean.defined() && r.var.defined() && r.mean.dtype() == x.dtype() &&
         r.var.dtype() == x.dtype() && r.mean.device() == x.device() &&
         r.var.device() == x.device();
}

std::pair<Tensor, BatchNormStats> batch_norm_train_cpu(const Tensor& x_, const Tensor& weight,
                                                       const Tensor& bias, double eps, bool relu,
                                                       const Tensor& residual) {
  Geometry g = geometry(x_, "batch_norm");
  check_param(weight, g.C, "weight", "batch_norm");
  check_param(bias, g.C, "bias", "batch_norm");
  Tensor res = residual.defined() ? contiguous(residual) : Tensor();
  const int64_t M = g.N * g.S;
  OKD_CHECK(M > 1, "batch_norm: training needs more than one value per channel, got input ",
            shape_str(x_.shape()));
  Tensor x = contiguous(x_);
  Tensor y = empty(x.shape(), x.dtype());
  BatchNormStats st{empty({g.C}, x.dtype()), empty({g.C}, x.dtype()), empty({g.C}, x.dtype())};
  OKD_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    Tensor wc = weight.defined() ? contiguous(weight) : Tensor();
    Tensor bc = bias.defined() ? contiguous(bias) : Tensor();
    const T* w = wc.defined() ? wc.data<T>() : nullptr;
    const T* b = bc.defined() ? bc.data<T>() : nullptr;
    T* pm = st.mean.data<T>();
    T* pi = st.invstd.data<T>();
    T* pv = st.var_unbiased.data<T>();
    const T* pres = res.defined() ? res.data<T>() : nullptr;
    parallel_for(0, g.C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double s = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* __restrict r = px + (n * g.C + c) * g.S;
          s += lane_sum<T>(g.S, [r](int64_t i) { return r[i]; });
        }
        const double mean = s / M;
        const T mean_t = static_cast<T>(mean);
        double ss = 0;  // two-pass variance: sum (x - mean)^2
        for (int64_t n = 0; n < g.N; ++n) {
          const T* __restrict r = px + (n * g.C + c) * g.S;
          ss += lane_sum<T>(g.S, [r, mean_t](int64_t i) {
            const T d = r[i] - mean_t;
            return d * d;
          });
        }
        const double var = ss / M;
        const double invstd = 1.0 / std::sqrt(var + eps);
        pm[c] = static_cast<T>(mean);
        pi[c] = static_cast<T>(invstd);
        pv[c] = static_cast<T>(ss / (M - 1));
        const T scale = static_cast<T>(invstd * (w ? w[c] : T(1)));
        const T shift = static_cast<T>((b ? b[c] : T(0)) - mean * invstd * (w ? w[c] : T(1)));
        for (int64_t n = 0; n < g.N; ++n) {
          const T* __restrict r = px + (n * g.C + c) * g.S;
          T* __restrict o = py + (n * g.C + c) * g.S;
          // (y rounded to T before the residual is added, as the composition rounds it)
          if (pres != nullptr) {
            const T* __restrict s = pres + (n * g.C + c) * g.S;
            if (relu)
              for (int64_t i = 0; i < g.S; ++i) {
                const T y = r[i] * scale + shift;
                const T v = y + s[i];
                o[i] = v > T(0) ? v : T(0);
              }
            else
              for (int64_t i = 0; i < g.S; ++i) {
                const T y = r[i] * scale + shift;
                o[i] = y + s[i];
              }
          } else if (relu) {
            for (int64_t i = 0; i < g.S; ++i) {
              const T v = r[i] * scale + shift;
              o[i] = v > T(0) ? v : T(0);
            }
          } else {
            for (int64_t i = 0; i < g.S; ++i) o[i] = r[i] * scale + shift;
          }
        }
      }
    });
  });
  return {y, st};
}
}  // namespace

std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                   const Tensor& bias, double eps, bool relu,
                                                   const Tensor& residual,
                                                   const BatchNormRunning& running) {
  if (residual.defined())
    OKD_CHECK(residual.shape() == x.shape() && residual.dtype() == x.dtype() &&
                  residual.device() == x.device(),
              "batch_norm: the residual ", residual.desc(), " does not match the input ", x.desc());
  std::pair<Tensor, BatchNormStats> out;
  if (cuda::on_cuda(x, weight, bias, residual)) {
    if (running_folds(running, x)) {
      // what batch_norm_update_running_ checks, before the kernel relies on it
      check_running_state(running.mean, running.var, running.num_batches_tracked);
      OKD_CHECK(x.dim() >= 2 && running.mean.size(0) == x.size(1), "batch_norm: the running mean ",
                running.mean.desc(), " does not match the input ", x.desc());
      return cuda::batch_norm_train(x, weight, bias, eps, relu, residual, running);
    }
    out = cuda::batch_norm_train(x, weight, bias, eps, relu, residual, BatchNormRunning{});
  } else {
    out = batch_norm_train_cpu(x, weight, bias, eps, relu, residual);
  }
  if (running.mean.defined()) {  // on the CPU, or statistics of another dtype: a separate update
    const BatchNormStats& st = out.second;
    batch_norm_update_running_(running.mean, running.var, to(st.mean, running.mean.dtype()),
                               to(st.var_unbiased, running.var.dtype()), running.momentum,
                               running.num_batches_tracked);
  }
  return out;
}

Tensor batch_norm_eval(const Tensor& x_, const Tensor& mean, const Tensor& var,
                       const Tensor& weight, const Tensor& bias, double eps) {
  if (cuda::on_cuda(x_, mean, var, weight, bias))
    return cuda::batch_norm_eval(x_, mean, var, weight, bias, eps);
  Geometry g = geometry(x_, "batch_norm");
  check_param(mean, g.C, "running_mean", "batch_norm");
  check_param(var, g.C, "running_var", "batch_norm");
  check_param(weight, g.C, "weight", "batch_norm");
  check_param(bias, g.C, "bias", "batch_norm");
  Tensor x = contiguous(x_);
  Tensor y = empty(x.shape(), x.dtype());
  OKD_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&]<class T>() {
    std::vector<double> m = to_vector<double>(mean), v = to_vector<double>(var);
    std::vector<double> w =
        weight.defined() ? to_vector<double>(weight) : std::vector<double>(g.C, 1.0);
    std::vector<double> b =
        bias.defined() ? to_vector<double>(bias) : std::vector<double>(g.C, 0.0);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(0, g.N * g.C, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % g.C;
        const double inv = 1.0 / std::sqrt(v[c] + eps);
        const T scale = static_cast<T>(w[c] * inv),
                shift = static_cast<T>(b[c] - m[c] * inv * w[c]);
        const T* in = px + r * g.S;
        T* o = py + r * g.S;
        for (int64_t i = 0; i < g.S; ++i) o[i] = in[i] * scale + shift;
      }
    });
  });
  return y;
}

void batch_norm_update_running_(const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& batch_mean, const Tensor& batch_var, double momentum,
                                const Tensor& num_batches_tracked) {
  check_running_state(running_mean, running_var, num_batches_tracked);
  check_running(batch_mean, running_mean, "batch mean");
  check_running(batch_var, running_mean, "batch variance");
  if (cuda::on_cuda(running_mean, running_var, batch_mean, batch_var))
    return cuda::batch_norm_update_running_(running_mean, running_var, batch_mean, batch_var,
                                            momentum, num_batches_tracked);
  OKD_CHECK(running_mean.device().is_cpu(), "batch_norm_update_running_: the CPU kernel got ",
            running_mean.desc());
  running_mean.impl()->storage->bump_version();
  running_var.impl()->storage->bump_version();
  OKD_DISPATCH_FLOAT(running_mean.dtype(), "batch_norm_update_running_", [&]<class T>() {
    const double keep = 1.0 - momentum;
    auto update = [&](T* r, const T* b) {
      for (int64_t c = 0; c < running_mean.numel(); ++c) {
        const T kept = static_cast<T>(r[c] * keep);
        r[c] = static_cast<T>(kept + momentum * b[c]);
      }
    };
    update(running_mean.data<T>(), batch_mean.data<T>());
    update(running_var.data<T>(), batch_var.data<T>());
  });
  if (num_batches_tracked.defined()) {
    num_batches_tracked.impl()->storage->bump_version();
    *num_batches_tracked.data<int64_t>() += 1;
  }
}

namespace {
// dx, dw, db and (want_masked) the masked dy of batch_norm_backward / batch_norm_add_relu_backward.
std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_backward_any(
    const Tensor& dy_, const Tensor& x_, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& relu_out, bool want_masked) {
  if (cuda::on_cuda(x_, dy_, weight, mean, invstd, relu_out))
    return cuda::batch_norm_backward(dy_, x_, weight, mean, invstd, relu_out, want_masked);
  Geometry g = geometry(x_, "batch_norm_backward");
  const int64_t M = g.N * g.S;
  Tensor x = contiguous(x_), dy = contiguous(dy_);
  if (relu_out.defined())
    OKD_CHECK(relu_out.shape() == x.shape() && relu_out.dtype() == x.dtype(),
              "batch_norm_backward: the fused ReLU output ", relu_out.desc(),
              " does not match the input ", x.desc());
  Tensor z = relu_out.defined() ? contiguous(relu_out) : Tensor();
  Tensor dx = empty(x.shape(), x.dtype()), dw = empty({g.C}, x.dtype()),
         db = empty({g.C}, x.dtype());
  Tensor dm = want_masked ? empty(x.shape(), x.dtype()) : Tensor();
  OKD_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&]<class T>() {
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    std::vector<double> m = to_vector<double>(mean), is = to_vector<double>(invstd);
    std::vector<double> w =
        weight.defined() ? to_vector<double>(weight) : std::vector<double>(g.C, 1.0);
    T* pdw = dw.data<T>();
    T* pdb = db.data<T>();
    const T* pz = z.defined() ? z.data<T>() : nullptr;
    T* pdm = dm.defined() ? dm.data<T>() : nullptr;
    parallel_for(0, g.C, 1, [&](int64_t c0, int64_t c1) {
      // One row of dy masked by the fused ReLU's output (z > 0), in a separate simple loop the
      // compiler vectorises; selects inside the lane sums ran scalar (22% of a ResNet step).
      std::vector<T> masked(pz && !pdm ? static_cast<size_t>(g.S) : 0);
      auto mask_row = [S = g.S](T* __restrict out, const T* __restrict d, const T* __restrict zr) {
        for (int64_t i = 0; i < S; ++i) {
          const T v = d[i];
          out[i] = zr[i] > T(0) ? v : T(0);
        }
        return static_cast<const T*>(out);
      };
      // Row (n, c) of the gradient reaching the batch norm: dy, or dy where z > 0 when fused
      // (masked into the returned dm when it is asked for: its first pass writes it, the second
      // reads it back).
      auto dy_row = [&](int64_t n, int64_t c, bool first) {
        const int64_t at = (n * g.C + c) * g.S;
        if (!pz) return pdy + at;
        if (!pdm) return mask_row(masked.data(), pdy + at, pz + at);
        return first ? mask_row(pdm + at, pdy + at, pz + at) : static_cast<const T*>(pdm + at);
      };
      for (int64_t c = c0; c < c1; ++c) {
        const T mc = static_cast<T>(m[c]);
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* __restrict r = px + (n * g.C + c) * g.S;
          const T* __restrict d = dy_row(n, c, true);
          sdy += lane_sum<T>(g.S, [d](int64_t i) { return d[i]; });
          sdyx += lane_sum<T>(g.S, [r, d, mc](int64_t i) { return d[i] * (r[i] - mc); });
        }
        sdyx *= is[c];  // sum(dy * xhat)
        pdw[c] = static_cast<T>(sdyx);
        pdb[c] = static_cast<T>(sdy);
        // dx = k (M dy - sum(dy) - xhat sum(dy xhat)),  k = w invstd / M,  xhat = (x - mean) invstd
        const double k = w[c] * is[c] / M;
        const T a = static_cast<T>(k * M), b = static_cast<T>(-k * sdyx * is[c]),
                off = static_cast<T>(-k * sdy);
        for (int64_t n = 0; n < g.N; ++n) {
          const T* __restrict r = px + (n * g.C + c) * g.S;
          const T* __restrict d = dy_row(n, c, false);
          T* __restrict o = pdx + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) o[i] = a * d[i] + b * (r[i] - mc) + off;
        }
      }
    });
  });
  return {dx, dw, db, dm};
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd,
                                                       const Tensor& relu_out) {
  auto [dx, dw, db, unused] =
      batch_norm_backward_any(dy, x, weight, mean, invstd, relu_out, /*want_masked=*/false);
  return {dx, dw, db};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_add_relu_backward(
    const Tensor& dz, const Tensor& x, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& z) {
  OKD_CHECK(z.defined(), "batch_norm_add_relu_backward: needs the forward's output z");
  return batch_norm_backward_any(dz, x, weight, mean, invstd, z, /*want_masked=*/true);
}

}  // namespace okd::ops
