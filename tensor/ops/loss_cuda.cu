// log_softmax over the last dim, the fused cross-entropy forward/backward and the fused KD
// divergence (per-row forward, student backward) on CUDA (formulas in loss.h). One block per row,
// math in double as on the CPU (loss_cpu.cpp); the row max and sums use launch.cuh's fixed-order
// block_reduce and the batch total one block, so results do not vary from run to run. Nothing is
// read on the host: the kernels check the targets and defer a bad one (cuda_ops.h, "errors found on
// the device"), the denominator sum_i w[y_i] is summed on the device, and the backward reads its
// upstream gradient from device memory, so a cross-entropy step makes no host synchronisation
// (whole-step capture, issue 9).
#include <cmath>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"

namespace okd::cuda {

namespace {

constexpr int kRowThreads = 128;

// m = max_c x_c and lse = m + log sum_c exp(x_c - m) of one row, for every thread of the block.
template <class T>
__device__ void row_logsumexp(const T* x, int64_t C, double* smem, double& m, double& lse) {
  double v = -INFINITY;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const double xc = static_cast<double>(x[c]);
    v = v < xc ? xc : v;  // like std::max(m, x): a NaN logit poisons the sum below, not the max
  }
  m = block_reduce(v, MaxOp{}, smem);
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += ::exp(static_cast<double>(x[c]) - m);
  lse = m + ::log(block_reduce(s, SumOp{}, smem));
}

template <class T>
__global__ void log_softmax_kernel(const T* x, T* y, int64_t R, int64_t C) {
  __shared__ double smem[32];
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    double m, lse;
    row_logsumexp(x + r * C, C, smem, m, lse);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      y[r * C + c] = static_cast<T>(x[r * C + c] - lse);
  }
}

// dx = dy - exp(y) sum_c dy_c
template <class T>
__global__ void log_softmax_backward_kernel(const T* dy, const T* y, T* dx, int64_t R, int64_t C) {
  __shared__ double smem[32];
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    double s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += static_cast<double>(dy[r * C + c]);
    s = block_reduce(s, SumOp{}, smem);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      dx[r * C + c] = static_cast<T>(dy[r * C + c] - ::exp(static_cast<double>(y[r * C + c])) * s);
  }
}

// row_loss[i] = (1-eps) w[y_i] (lse - x[y_i]) + eps/C sum_c w[c] (lse - x[c]) and
// row_weight[i] = w[y_i]; w null means 1. A target outside [0, C) is reported (NaN, weight 0).
template <class T>
__global__ void ce_rows_kernel(const T* x, const int64_t* target, const double* w, int64_t N,
                               int64_t C, double eps, double* row_loss, double* row_weight,
                               DeviceErrorRecord* err) {
  __shared__ double smem[32];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* r = x + i * C;
    double m, lse;
    row_logsumexp(r, C, smem, m, lse);
    const int64_t y = target[i];
    double smooth = 0;
    if (eps > 0) {
      double part = 0;
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        part += (w ? w[c] : 1.0) * (lse - static_cast<double>(r[c]));
      smooth = block_reduce(part, SumOp{}, smem);
    }
    if (threadIdx.x == 0) {
      if (y < 0 || y >= C) {
        report_device_error(err, DeviceErrorKind::CrossEntropyTarget, 0, i, y, C);
        row_loss[i] = NAN;
        row_weight[i] = 0;
      } else {
        double row = (1 - eps) * (w ? w[y] : 1.0) * (lse - static_cast<double>(r[y]));
        if (eps > 0) row += eps / C * smooth;
        row_loss[i] = row;
        row_weight[i] = w ? w[y] : 1.0;
      }
    }
  }
}

// out = sum_i row_loss[i] / sum_i row_weight[i], by one block (N is a batch size).
template <class T>
__global__ void ce_total_kernel(const double* row_loss, const double* row_weight, int64_t N,
                                T* out) {
  __shared__ double smem[32];
  double s = 0, d = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    s += row_loss[i];
    d += row_weight[i];
  }
  s = block_reduce(s, SumOp{}, smem);
  d = block_reduce(d, SumOp{}, smem);
  if (threadIdx.x == 0) *out = static_cast<T>(N ? s / d : NAN);
}

// sums[0] = D = sum_i w[y_i] over the valid targets, sums[1] = sum_c w[c]; one block.
__global__ void ce_sums_kernel(const int64_t* target, const double* w, int64_t N, int64_t C,
                               double* sums) {
  __shared__ double smem[32];
  double d = 0, ws = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const int64_t y = target[i];
    if (y >= 0 && y < C) d += w ? w[y] : 1.0;
  }
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ws += w ? w[c] : 1.0;
  d = block_reduce(d, SumOp{}, smem);
  ws = block_reduce(ws, SumOp{}, smem);
  if (threadIdx.x == 0) {
    sums[0] = d;
    sums[1] = ws;
  }
}

// dx[i,c] = g (softmax[i,c] a_sum - a[i,c] / D), a[i,c] = eps/C w[c] + [c = y_i] (1-eps) w[y_i],
// a_sum = ((1-eps) w[y_i] + eps/C sum_c w[c]) / D.
// g_ptr: the upstream gradient (device scalar), sums: ce_sums_kernel's D and sum_c w[c].
template <class T>
__global__ void ce_backward_kernel(const T* x, const int64_t* target, const double* w, int64_t N,
                                   int64_t C, double eps, const T* g_ptr, const double* sums, T* dx,
                                   DeviceErrorRecord* err) {
  __shared__ double smem[32];
  const double g = static_cast<double>(*g_ptr), denom = sums[0], wsum = sums[1];
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const T* r = x + i * C;
    double m, lse;
    row_logsumexp(r, C, smem, m, lse);
    const int64_t y = target[i];
    if (y < 0 || y >= C) {  // uniform across the block: no barrier is skipped by some threads
      if (threadIdx.x == 0)
        report_device_error(err, DeviceErrorKind::CrossEntropyTarget, 0, i, y, C);
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dx[i * C + c] = static_cast<T>(NAN);
      continue;
    }
    const double a_y = (1 - eps) * (w ? w[y] : 1.0);
    const double a_sum = (a_y + eps / C * wsum) / denom;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const double a = eps / C * (w ? w[c] : 1.0) + (c == y ? a_y : 0.0);
      const double p = ::exp(static_cast<double>(r[c]) - lse);
      dx[i * C + c] = static_cast<T>(g * (p * a_sum - a / denom));
    }
  }
}

// lse(x / T) of one row (x scaled by inv_T in double), for every thread of the block.
template <class T>
__device__ double row_logsumexp_scaled(const T* x, int64_t C, double inv_T, double* smem) {
  double v = -INFINITY;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const double xc = static_cast<double>(x[c]) * inv_T;
    v = v < xc ? xc : v;
  }
  const double m = block_reduce(v, MaxOp{}, smem);
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    s += ::exp(static_cast<double>(x[c]) * inv_T - m);
  return m + ::log(block_reduce(s, SumOp{}, smem));
}

// p_c and log p_c of the teacher from its scaled logit z = t_c / T and lse(t / T) (loss.h).
__device__ void kd_teacher_prob(double z, double lse_t, double eps, double& p, double& lp) {
  const double lpt = z - lse_t;
  if (eps > 0) {
    p = ::exp(lpt) + eps;
    lp = ::log(p);
  } else {
    p = ::exp(lpt);
    lp = lpt;
  }
}

// rows[n] = sum_c p[n,c] (log p[n,c] - log q[n,c]), one block per row.
template <class T>
__global__ void kd_div_rows_kernel(const T* s, const T* t, int64_t N, int64_t C, double inv_T,
                                   double eps, T* rows) {
  __shared__ double smem[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* sr = s + n * C;
    const T* tr = t + n * C;
    const double lse_s = row_logsumexp_scaled(sr, C, inv_T, smem);
    const double lse_t = row_logsumexp_scaled(tr, C, inv_T, smem);
    double part = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      double p, lp;
      kd_teacher_prob(static_cast<double>(tr[c]) * inv_T, lse_t, eps, p, lp);
      part += p * (lp - (static_cast<double>(sr[c]) * inv_T - lse_s));
    }
    const double row = block_reduce(part, SumOp{}, smem);
    if (threadIdx.x == 0) rows[n] = static_cast<T>(row);
  }
}

// ds[n,c] = g[n] / T (q[n,c] sum_c' p[n,c'] - p[n,c]), one block per row; g read on the device.
template <class T>
__global__ void kd_div_backward_kernel(const T* g, const T* s, const T* t, int64_t N, int64_t C,
                                       double inv_T, double eps, T* ds) {
  __shared__ double smem[32];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* sr = s + n * C;
    const T* tr = t + n * C;
    const double lse_s = row_logsumexp_scaled(sr, C, inv_T, smem);
    const double lse_t = row_logsumexp_scaled(tr, C, inv_T, smem);
    double part = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      double p, lp;
      kd_teacher_prob(static_cast<double>(tr[c]) * inv_T, lse_t, eps, p, lp);
      part += p;
    }
    const double psum = block_reduce(part, SumOp{}, smem);
    const double k = static_cast<double>(g[n]) * inv_T;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      double p, lp;
      kd_teacher_prob(static_cast<double>(tr[c]) * inv_T, lse_t, eps, p, lp);
      const double q = ::exp(static_cast<double>(sr[c]) * inv_T - lse_s);
      ds[n * C + c] = static_cast<T>(k * (q * psum - p));
    }
  }
}

void kd_check(const Tensor& s, const Tensor& t, double T, double eps, const char* op) {
  OKD_CHECK(s.dim() == 2 && s.shape() == t.shape(), op,
            ": student and teacher logits must both be [N, C], got ", shape_str(s.shape()), " and ",
            shape_str(t.shape()));
  OKD_CHECK(is_floating(s.dtype()) && s.dtype() == t.dtype(), op,
            ": expected student and teacher of the same float dtype, got ", s.desc(), " and ",
            t.desc());
  check_device(s, op);
  OKD_CHECK(t.device() == s.device(), op, ": the teacher is on ", t.device().str(),
            " but the student on ", s.device().str());
  OKD_CHECK(T > 0, op, ": the temperature must be positive, got ", T);
  OKD_CHECK(eps >= 0, op, ": teacher_eps must be >= 0, got ", eps);
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535));
}

// What the CE kernels need, checked as ce_setup in loss_cpu.cpp does (but the targets' values,
// which the kernels check).
struct CeSetup {
  Tensor logits, targets, weights;  // contiguous on the device; weights float64 or undefined
  int64_t N = 0, C = 0;
};

CeSetup ce_setup(const Tensor& logits, const Tensor& targets, double eps, const Tensor& weights) {
  OKD_CHECK(logits.dim() == 2, "cross_entropy: expected logits [N, C], got ",
            shape_str(logits.shape()));
  OKD_CHECK(is_floating(logits.dtype()), "cross_entropy: expected float logits, got ",
            logits.desc());
  check_device(logits, "cross_entropy");
  OKD_CHECK(targets.dtype() == DType::Int64, "cross_entropy: targets must be int64, got ",
            dtype_name(targets.dtype()));
  OKD_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), "cross_entropy: targets ",
            shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()));
  OKD_CHECK(targets.device() == logits.device(), "cross_entropy: targets are on ",
            targets.device().str(), " but logits on ", logits.device().str());
  OKD_CHECK(eps >= 0 && eps <= 1, "cross_entropy: label_smoothing must be in [0, 1], got ", eps);
  CeSetup s;
  s.logits = ops::contiguous(logits);
  s.targets = ops::contiguous(targets);
  s.N = logits.size(0);
  s.C = logits.size(1);
  if (weights.defined()) {
    OKD_CHECK(weights.dim() == 1 && weights.size(0) == s.C, "cross_entropy: class weights ",
              shape_str(weights.shape()), " do not match ", s.C, " classes");
    OKD_CHECK(weights.device() == logits.device(), "cross_entropy: class weights are on ",
              weights.device().str(), " but logits on ", logits.device().str());
    s.weights = ops::contiguous(ops::to(weights, DType::Float64));
  }
  return s;
}

const double* weights_ptr(const CeSetup& s) {
  return s.weights.defined() ? s.weights.device_data<double>() : nullptr;
}

}  // namespace

namespace gpu {

Tensor log_softmax_lastdim(const Tensor& x_) {
  OKD_CHECK(is_floating(x_.dtype()) && x_.dim() >= 1,
            "log_softmax: expected a float tensor with at least one dim, got ", x_.desc());
  check_device(x_, "log_softmax");
  const Tensor x = ops::contiguous(x_);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
  if (R == 0) return y;
  dispatch_float(x.dtype(), "log_softmax", [&](auto tag) {
    using T = decltype(tag);
    log_softmax_kernel<T>
        <<<row_grid(R), kRowThreads, 0, stream()>>>(x.device_data<T>(), y.device_data<T>(), R, C);
  });
  OKD_CUDA_CHECK_LAUNCH("log_softmax");
  return y;
}

Tensor log_softmax_lastdim_backward(const Tensor& dy_, const Tensor& y_) {
  OKD_CHECK(dy_.shape() == y_.shape() && dy_.dtype() == y_.dtype() && y_.dim() >= 1,
            "log_softmax_backward: gradient ", dy_.desc(), " does not match output ", y_.desc());
  check_device(dy_, "log_softmax_backward");
  check_device(y_, "log_softmax_backward");
  const Tensor dy = ops::contiguous(dy_), y = ops::contiguous(y_);
  Tensor dx = empty(y.shape(), y.dtype(), y.device());
  const int64_t C = y.size(-1), R = C ? y.numel() / C : 0;
  if (R == 0) return dx;
  dispatch_float(y.dtype(), "log_softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    log_softmax_backward_kernel<T><<<row_grid(R), kRowThreads, 0, stream()>>>(
        dy.device_data<T>(), y.device_data<T>(), dx.device_data<T>(), R, C);
  });
  OKD_CUDA_CHECK_LAUNCH("log_softmax_backward");
  return dx;
}

Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double eps,
                             const Tensor& weights) {
  const CeSetup s = ce_setup(logits, targets, eps, weights);
  Tensor out = empty({}, logits.dtype(), logits.device());
  // row losses in [0, N), row weights in [N, 2N)
  Tensor rows = empty({std::max<int64_t>(2 * s.N, 1)}, DType::Float64, logits.device());
  double* row_loss = rows.device_data<double>();
  double* row_weight = row_loss + s.N;
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    if (s.N > 0 && s.C > 0) {
      ce_rows_kernel<T><<<row_grid(s.N), kRowThreads, 0, stream()>>>(
          s.logits.device_data<T>(), s.targets.device_data<int64_t>(), weights_ptr(s), s.N, s.C,
          eps, row_loss, row_weight, device_error_record_for_kernels());
      OKD_CUDA_CHECK_LAUNCH("cross_entropy");
    }
    ce_total_kernel<T>
        <<<1, kThreads, 0, stream()>>>(row_loss, row_weight, s.N, out.device_data<T>());
  });
  OKD_CUDA_CHECK_LAUNCH("cross_entropy");
  return out;
}

Tensor cross_entropy_backward(const Tensor& g_, const Tensor& logits, const Tensor& targets,
                              double eps, const Tensor& weights) {
  const CeSetup s = ce_setup(logits, targets, eps, weights);
  OKD_CHECK(g_.device() == logits.device(), "cross_entropy_backward: the upstream gradient is on ",
            g_.device().str(), " but logits on ", logits.device().str());
  const Tensor g = ops::contiguous(ops::to(g_, logits.dtype()));
  Tensor dx = empty(logits.shape(), logits.dtype(), logits.device());
  if (s.N == 0 || s.C == 0) return dx;
  Tensor sums = empty({2}, DType::Float64, logits.device());
  ce_sums_kernel<<<1, kThreads, 0, stream()>>>(s.targets.device_data<int64_t>(), weights_ptr(s),
                                               s.N, s.C, sums.device_data<double>());
  OKD_CUDA_CHECK_LAUNCH("cross_entropy_backward");
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    ce_backward_kernel<T><<<row_grid(s.N), kRowThreads, 0, stream()>>>(
        s.logits.device_data<T>(), s.targets.device_data<int64_t>(), weights_ptr(s), s.N, s.C, eps,
        g.device_data<T>(), sums.device_data<double>(), dx.device_data<T>(),
        device_error_record_for_kernels());
  });
  OKD_CUDA_CHECK_LAUNCH("cross_entropy_backward");
  return dx;
}

Tensor kd_div_rows(const Tensor& student, const Tensor& teacher, double T, double eps) {
  kd_check(student, teacher, T, eps, "kd_div");
  const Tensor s = ops::contiguous(student), t = ops::contiguous(teacher);
  const int64_t N = s.size(0), C = s.size(1);
  Tensor rows = empty({N}, s.dtype(), s.device());
  if (N == 0) return rows;
  dispatch_float(s.dtype(), "kd_div", [&](auto tag) {
    using V = decltype(tag);
    kd_div_rows_kernel<V><<<row_grid(N), kRowThreads, 0, stream()>>>(
        s.device_data<V>(), t.device_data<V>(), N, C, 1.0 / T, eps, rows.device_data<V>());
  });
  OKD_CUDA_CHECK_LAUNCH("kd_div");
  return rows;
}

Tensor kd_div_backward_student(const Tensor& g_rows, const Tensor& student, const Tensor& teacher,
                               double T, double eps) {
  kd_check(student, teacher, T, eps, "kd_div_backward");
  const int64_t N = student.size(0), C = student.size(1);
  OKD_CHECK(g_rows.dim() == 1 && g_rows.size(0) == N && g_rows.device() == student.device(),
            "kd_div_backward: the upstream gradient must be [", N, "] on ", student.device().str(),
            ", got ", g_rows.desc());
  const Tensor s = ops::contiguous(student), t = ops::contiguous(teacher);
  const Tensor g = ops::contiguous(ops::to(g_rows, s.dtype()));
  Tensor ds = empty({N, C}, s.dtype(), s.device());
  if (N == 0 || C == 0) return ds;
  dispatch_float(s.dtype(), "kd_div_backward", [&](auto tag) {
    using V = decltype(tag);
    kd_div_backward_kernel<V><<<row_grid(N), kRowThreads, 0, stream()>>>(
        g.device_data<V>(), s.device_data<V>(), t.device_data<V>(), N, C, 1.0 / T, eps,
        ds.device_data<V>());
  });
  OKD_CUDA_CHECK_LAUNCH("kd_div_backward");
  return ds;
}

}  // namespace gpu

}  // namespace okd::cuda
