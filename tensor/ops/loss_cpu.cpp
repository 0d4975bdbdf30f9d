// log_softmax, the fused cross-entropy and the fused KD divergence on the CPU, rows in parallel,
// math in double.
#include <cmath>
#include <vector>

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

namespace {
void kd_check(const Tensor& s, const Tensor& t, double T, double eps, const char* op) {
  OKD_CHECK(s.dim() == 2 && s.shape() == t.shape(), op,
            ": student and teacher logits must both be [N, C], got ", shape_str(s.shape()), " and ",
            shape_str(t.shape()));
  OKD_CHECK(is_floating(s.dtype()) && s.dtype() == t.dtype(), op,
            ": expected student and teacher of the same float dtype, got ", s.desc(), " and ",
            t.desc());
  OKD_CHECK(s.device().is_cpu() && t.device().is_cpu(), op, ": expected CPU tensors, got ",
            s.desc(), " and ", t.desc());
  OKD_CHECK(T > 0, op, ": the temperature must be positive, got ", T);
  OKD_CHECK(eps >= 0, op, ": teacher_eps must be >= 0, got ", eps);
}

// One row of kd_div: lq[c] = log q_c = s_c / T - lse(s / T), p[c] and lp[c] = log p[c] (loss.h).
template <class T>
void kd_row(const T* s, const T* t, int64_t C, double inv_T, double eps, double* lq, double* p,
            double* lp) {
  double ms = static_cast<double>(s[0]) * inv_T, mt = static_cast<double>(t[0]) * inv_T;
  for (int64_t c = 1; c < C; ++c) {
    ms = std::max<double>(ms, static_cast<double>(s[c]) * inv_T);
    mt = std::max<double>(mt, static_cast<double>(t[c]) * inv_T);
  }
  double ss = 0, st = 0;
  for (int64_t c = 0; c < C; ++c) {
    ss += std::exp(static_cast<double>(s[c]) * inv_T - ms);
    st += std::exp(static_cast<double>(t[c]) * inv_T - mt);
  }
  const double lse_s = ms + std::log(ss), lse_t = mt + std::log(st);
  for (int64_t c = 0; c < C; ++c) {
    lq[c] = static_cast<double>(s[c]) * inv_T - lse_s;
    const double lpt = static_cast<double>(t[c]) * inv_T - lse_t;
    if (eps > 0) {
      p[c] = std::exp(lpt) + eps;
      lp[c] = std::log(p[c]);
    } else {
      p[c] = std::exp(lpt);
      lp[c] = lpt;
    }
  }
}
}  // namespace

Tensor kd_div_rows(const Tensor& student, const Tensor& teacher, double T, double eps) {
  if (cuda::on_cuda(student, teacher)) return cuda::kd_div_rows(student, teacher, T, eps);
  kd_check(student, teacher, T, eps, "kd_div");
  const Tensor s = contiguous(student), t = contiguous(teacher);
  const int64_t N = s.size(0), C = s.size(1);
  Tensor out = empty({N}, s.dtype());
  OKD_DISPATCH_FLOAT(s.dtype(), "kd_div", [&]<class T_>() {
    const T_* ps = s.data<T_>();
    const T_* pt = t.data<T_>();
    T_* po = out.data<T_>();
    parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
      std::vector<double> lq(C), p(C), lp(C);
      for (int64_t n = b; n < e; ++n) {
        if (C == 0) {
          po[n] = T_(0);
          continue;
        }
        kd_row(ps + n * C, pt + n * C, C, 1.0 / T, eps, lq.data(), p.data(), lp.data());
        double row = 0;
        for (int64_t c = 0; c < C; ++c) row += p[c] * (lp[c] - lq[c]);
        po[n] = static_cast<T_>(row);
      }
    });
  });
  return out;
}

Tensor kd_div_backward_student(const Tensor& g_rows, const Tensor& student, const Tensor& teacher,
                               double T, double eps) {
  if (cuda::on_cuda(g_rows, student, teacher))
    return cuda::kd_div_backward_student(g_rows, student, teacher, T, eps);
  kd_check(student, teacher, T, eps, "kd_div_backward");
  const int64_t N = student.size(0), C = student.size(1);
  OKD_CHECK(g_rows.dim() == 1 && g_rows.size(0) == N && g_rows.device().is_cpu(),
            "kd_div_backward: the upstream gradient must be a CPU tensor [", N, "], got ",
            g_rows.desc());
  const Tensor s = contiguous(student), t = contiguous(teacher);
  const std::vector<double> g = to_vector<double>(g_rows);
  Tensor ds = empty({N, C}, s.dtype());
  OKD_DISPATCH_FLOAT(s.dtype(), "kd_div_backward", [&]<class T_>() {
    const T_* ps = s.data<T_>();
    const T_* pt = t.data<T_>();
    T_* pd = ds.data<T_>();
    parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
      std::vector<double> lq(C), p(C), lp(C);
      for (int64_t n = b; n < e; ++n) {
        if (C == 0) continue;
        kd_row(ps + n * C, pt + n * C, C, 1.0 / T, eps, lq.data(), p.data(), lp.data());
        double psum = 0;
        for (int64_t c = 0; c < C; ++c) psum += p[c];
        const double k = g[n] / T;
        for (int64_t c = 0; c < C; ++c)
          pd[n * C + c] = static_cast<T_>(k * (std::exp(lq[c]) * psum - p[c]));
      }
    });
  });
  return ds;
}

}  // namespace okd::ops
