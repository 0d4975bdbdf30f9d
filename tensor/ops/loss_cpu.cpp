// log_softmax and the fused cross-entropy on the CPU, rows in parallel, math in double.
#include <cmath>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/loss.h"
#include "tensor/parallel.h"

namespace okd::ops {

Tensor log_softmax_lastdim(const Tensor& x_) {
  if (cuda::on_cuda(x_)) return cuda::log_softmax_lastdim(x_);
  OKD_CHECK(is_floating(x_.dtype()) && x_.device().is_cpu() && x_.dim() >= 1,
            "log_softmax: expected a float CPU tensor with at least one dim, got ", x_.desc());
  Tensor x = contiguous(x_);
  Tensor y = empty(x.shape(), x.dtype());
  const int64_t C = x.dim() ? x.size(-1) : 1, R = C ? x.numel() / C : 0;
  OKD_DISPATCH_FLOAT(x.dtype(), "log_softmax", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(0, R, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* in = px + r * C;
        T* out = py + r * C;
        double m = in[0];
        for (int64_t c = 1; c < C; ++c) m = std::max<double>(m, in[c]);
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(in[c] - m);
        const double lse = m + std::log(s);
        for (int64_t c = 0; c < C; ++c) out[c] = static_cast<T>(in[c] - lse);
      }
    });
  });
  return y;
}

Tensor log_softmax_lastdim_backward(const Tensor& dy_, const Tensor& y_) {
  if (cuda::on_cuda(dy_, y_)) return cuda::log_softmax_lastdim_backward(dy_, y_);
  Tensor dy = contiguous(dy_), y = contiguous(y_);
  Tensor dx = empty(y.shape(), y.dtype());
  const int64_t C = y.size(-1), R = C ? y.numel() / C : 0;
  OKD_DISPATCH_FLOAT(y.dtype(), "log_softmax_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    const T* py = y.data<T>();
    T* pdx = dx.data<T>();
    parallel_for(0, R, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += pdy[r * C + c];
        for (int64_t c = 0; c < C; ++c)
          pdx[r * C + c] =
              static_cast<T>(pdy[r * C + c] - std::exp(static_cast<double>(py[r * C + c])) * s);
      }
    });
  });
  return dx;
}

namespace {
struct CeSetup {
  Tensor logits;
  std::vector<int64_t> y;
  std::vector<double> w;  // class weights (1 when undefined)
  double denom = 0;
  int64_t N = 0, C = 0;
};

CeSetup ce_setup(const Tensor& logits, const Tensor& targets, double eps, const Tensor& weights) {
  OKD_CHECK(logits.dim() == 2, "cross_entropy: expected logits [N, C], got ",
            shape_str(logits.shape()));
  OKD_CHECK(is_floating(logits.dtype()) && logits.device().is_cpu(),
            "cross_entropy: expected float CPU logits, got ", logits.desc());
  OKD_CHECK(targets.dtype() == DType::Int64, "cross_entropy: targets must be int64, got ",
            dtype_name(targets.dtype()));
  OKD_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), "cross_entropy: targets ",
            shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()));
  OKD_CHECK(eps >= 0 && eps <= 1, "cross_entropy: label_smoothing must be in [0, 1], got ", eps);
  CeSetup s;
  s.logits = contiguous(logits);
  s.N = logits.size(0);
  s.C = logits.size(1);
  s.y = to_vector<int64_t>(targets);
  if (weights.defined()) {
    OKD_CHECK(weights.dim() == 1 && weights.size(0) == s.C, "cross_entropy: class weights ",
              shape_str(weights.shape()), " do not match ", s.C, " classes");
    s.w = to_vector<double>(weights);
  } else {
    s.w.assign(s.C, 1.0);
  }
  for (int64_t i = 0; i < s.N; ++i) {
    OKD_CHECK(s.y[i] >= 0 && s.y[i] < s.C, "cross_entropy: target ", s.y[i], " at position ", i,
              " is outside [0, ", s.C, ")");
    s.denom += s.w[s.y[i]];
  }
  return s;
}
}  // namespace

Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double eps,
                             const Tensor& weights) {
  if (cuda::on_cuda(logits)) return cuda::cross_entropy_forward(logits, targets, eps, weights);
  CeSetup s = ce_setup(logits, targets, eps, weights);
  Tensor out = empty({}, logits.dtype());
  OKD_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* px = s.logits.data<T>();
    double total = 0;
    for (int64_t i = 0; i < s.N; ++i) {
      const T* r = px + i * s.C;
      double m = r[0];
      for (int64_t c = 1; c < s.C; ++c) m = std::max<double>(m, r[c]);
      double se = 0;
      for (int64_t c = 0; c < s.C; ++c) se += std::exp(r[c] - m);
      const double lse = m + std::log(se);
      double row = (1 - eps) * s.w[s.y[i]] * (lse - r[s.y[i]]);
      if (eps > 0) {
        double sm = 0;
        for (int64_t c = 0; c < s.C; ++c) sm += s.w[c] * (lse - r[c]);
        row += eps / s.C * sm;
      }
      total += row;
    }
    out.data<T>()[0] = static_cast<T>(s.N ? total / s.denom : NAN);
  });
  return out;
}

Tensor cross_entropy_backward(const Tensor& g_, const Tensor& logits, const Tensor& targets,
                              double eps, const Tensor& weights) {
  OKD_CHECK(g_.numel() == 1, "cross_entropy_backward: the upstream gradient must be a scalar, got ",
            g_.desc());
  if (cuda::on_cuda(g_, logits))
    return cuda::cross_entropy_backward(g_, logits, targets, eps, weights);
  const double g = g_.item();
  CeSetup s = ce_setup(logits, targets, eps, weights);
  Tensor dx = empty(logits.shape(), logits.dtype());
  OKD_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    const T* px = s.logits.data<T>();
    T* pd = dx.data<T>();
    double wsum = 0;
    for (double v : s.w) wsum += v;
    parallel_for(0, s.N, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* r = px + i * s.C;
        double m = r[0];
        for (int64_t c = 1; c < s.C; ++c) m = std::max<double>(m, r[c]);
        double se = 0;
        for (int64_t c = 0; c < s.C; ++c) se += std::exp(r[c] - m);
        const double a_y = (1 - eps) * s.w[s.y[i]];
        const double a_sum = (a_y + eps / s.C * wsum) / s.denom;
        for (int64_t c = 0; c < s.C; ++c) {
          double a = eps / s.C * s.w[c] + (c == s.y[i] ? a_y : 0.0);
          const double p = std::exp(r[c] - m) / se;
          pd[i * s.C + c] = static_cast<T>(g * (p * a_sum - a / s.denom));
        }
      }
    });
  });
  return dx;
}

}  // namespace okd::ops
