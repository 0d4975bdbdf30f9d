// Batch normalisation on the CPU: per-channel statistics accumulated in double, channels in
// parallel (each channel is reduced by one thread, so results do not depend on the thread count).
#include <cmath>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
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
void check_param(const Tensor& t, int64_t C, const char* what, const char* op) {
  if (!t.defined()) return;
  OKD_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the input has ", C, " channels");
}
}  // namespace

std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x_, const Tensor& weight,
                                                   const Tensor& bias, double eps) {
  if (cuda::on_cuda(x_, weight, bias)) return cuda::batch_norm_train(x_, weight, bias, eps);
  Geometry g = geometry(x_, "batch_norm");
  check_param(weight, g.C, "weight", "batch_norm");
  check_param(bias, g.C, "bias", "batch_norm");
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
    parallel_for(0, g.C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double s = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = px + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) s += r[i];
        }
        const double mean = s / M;
        double ss = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = px + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            const double d = r[i] - mean;
            ss += d * d;
          }
        }
        const double var = ss / M;
        const double invstd = 1.0 / std::sqrt(var + eps);
        pm[c] = static_cast<T>(mean);
        pi[c] = static_cast<T>(invstd);
        pv[c] = static_cast<T>(ss / (M - 1));
        const T scale = static_cast<T>(invstd * (w ? w[c] : T(1)));
        const T shift = static_cast<T>((b ? b[c] : T(0)) - mean * invstd * (w ? w[c] : T(1)));
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = px + (n * g.C + c) * g.S;
          T* o = py + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) o[i] = r[i] * scale + shift;
        }
      }
    });
  });
  return {y, st};
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

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy_, const Tensor& x_,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd) {
  if (cuda::on_cuda(x_, dy_, weight, mean, invstd))
    return cuda::batch_norm_backward(dy_, x_, weight, mean, invstd);
  Geometry g = geometry(x_, "batch_norm_backward");
  const int64_t M = g.N * g.S;
  Tensor x = contiguous(x_), dy = contiguous(dy_);
  Tensor dx = empty(x.shape(), x.dtype()), dw = empty({g.C}, x.dtype()),
         db = empty({g.C}, x.dtype());
  OKD_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&]<class T>() {
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    std::vector<double> m = to_vector<double>(mean), is = to_vector<double>(invstd);
    std::vector<double> w =
        weight.defined() ? to_vector<double>(weight) : std::vector<double>(g.C, 1.0);
    T* pdw = dw.data<T>();
    T* pdb = db.data<T>();
    parallel_for(0, g.C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        double sdy = 0, sdyx = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = px + (n * g.C + c) * g.S;
          const T* d = pdy + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            sdy += d[i];
            sdyx += d[i] * (r[i] - m[c]);
          }
        }
        sdyx *= is[c];  // sum(dy * xhat)
        pdw[c] = static_cast<T>(sdyx);
        pdb[c] = static_cast<T>(sdy);
        const double k = w[c] * is[c] / M;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* r = px + (n * g.C + c) * g.S;
          const T* d = pdy + (n * g.C + c) * g.S;
          T* o = pdx + (n * g.C + c) * g.S;
          for (int64_t i = 0; i < g.S; ++i) {
            const double xhat = (r[i] - m[c]) * is[c];
            o[i] = static_cast<T>(k * (M * d[i] - sdy - xhat * sdyx));
          }
        }
      }
    });
  });
  return {dx, dw, db};
}

}  // namespace okd::ops
