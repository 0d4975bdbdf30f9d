// Optimizer updates on CUDA: the per-element loops of update_cpu.cpp (ops::sgd_step_ and
// ops::adam_step_, which dispatch here for CUDA parameters) as kernels. Same arithmetic in the
// parameter's dtype with the scalars cast to it first, as there; nvcc may fuse a multiply and an
// add into one FMA, so a float32 result can differ from the CPU's in the last bit.
#include <cmath>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"

namespace okd::cuda {

namespace {

template <class T>
__global__ void sgd_kernel(T* p, const T* dp, T* buf, int64_t n, T wd, bool decay, T mom,
                           T one_minus_damp, T neg_lr, bool nesterov, bool first) {
  OKD_GRID_STRIDE(i, n) {
    T g = dp[i];
    if (decay) g = g + wd * p[i];
    if (buf) {
      buf[i] = first ? g : buf[i] * mom + one_minus_damp * g;
      g = nesterov ? g + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * g;
  }
}

__global__ void counter_add_kernel(int64_t* c, int64_t n, int64_t amount) {
  OKD_GRID_STRIDE(i, n) { c[i] += amount; }
}

template <class T>
struct AdamScalars {
  T wd, shrink_factor, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step_size;
  bool coupled, shrink;
};

template <class T>
__global__ void adam_kernel(T* p, const T* dp, T* m, T* v, T* vmax, int64_t n, AdamScalars<T> s) {
  OKD_GRID_STRIDE(i, n) {
    if (s.shrink) p[i] = p[i] * s.shrink_factor;
    T g = dp[i];
    if (s.coupled) g = g + s.wd * p[i];
    m[i] = m[i] * s.b1 + s.one_minus_b1 * g;
    v[i] = v[i] * s.b2 + s.one_minus_b2 * g * g;
    T second = v[i];
    if (vmax) second = vmax[i] = vmax[i] < v[i] ? v[i] : vmax[i];
    const T denom = sqrt(second) / s.bc2_sqrt + s.eps;
    p[i] = p[i] + s.neg_step_size * m[i] / denom;
  }
}

}  // namespace

namespace gpu {

void counter_add_(const Tensor& counter, int64_t amount) {
  check_device(counter, "counter_add_");  // dtype and layout were checked by ops::counter_add_
  counter.impl()->storage->bump_version();
  const int64_t n = counter.numel();
  if (n == 0) return;
  counter_add_kernel<<<grid_for(n), kThreads, 0, stream()>>>(counter.device_data<int64_t>(), n,
                                                             amount);
  OKD_CUDA_CHECK_LAUNCH("counter_add_");
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s) {
  // Shapes, dtypes, devices and buffers were checked by ops::sgd_step_ (update_cpu.cpp).
  const char* op = "SGD::step";
  check_device(param, op);
  param.impl()->storage->bump_version();
  const int64_t n = param.numel();
  if (n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* buf = s.momentum != 0 ? momentum_buffer.device_data<T>() : nullptr;
    sgd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        param.device_data<T>(), grad.device_data<T>(), buf, n, static_cast<T>(s.weight_decay),
        s.weight_decay != 0, static_cast<T>(s.momentum), static_cast<T>(1 - s.dampening),
        static_cast<T>(-s.lr), s.nesterov, s.first);
  };
  if (param.dtype() == DType::Float32)
    run(float{});
  else
    run(double{});
  OKD_CUDA_CHECK_LAUNCH(op);
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  // Shapes, dtypes, devices and buffers were checked by ops::adam_step_ (update_cpu.cpp).
  const char* op = "Adam::step";
  check_device(param, op);
  param.impl()->storage->bump_version();
  const int64_t n = param.numel();
  if (n == 0) return;
  // Bias corrections in double, as optim/adam.cpp (and Python) computes them.
  const double t = static_cast<double>(s.step);
  const double bias_correction1 = 1 - std::pow(s.beta1, t);
  const double bias_correction2 = 1 - std::pow(s.beta2, t);
  const double step_size = s.lr / bias_correction1;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    AdamScalars<T> c;
    c.coupled = !s.decoupled && s.weight_decay != 0;
    c.shrink = s.decoupled;
    c.wd = static_cast<T>(s.weight_decay);
    c.shrink_factor = static_cast<T>(1 - s.lr * s.weight_decay);
    c.b1 = static_cast<T>(s.beta1);
    c.one_minus_b1 = static_cast<T>(1 - s.beta1);
    c.b2 = static_cast<T>(s.beta2);
    c.one_minus_b2 = static_cast<T>(1 - s.beta2);
    c.bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
    c.eps = static_cast<T>(s.eps);
    c.neg_step_size = static_cast<T>(-step_size);
    adam_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        param.device_data<T>(), grad.device_data<T>(), exp_avg.device_data<T>(),
        exp_avg_sq.device_data<T>(), s.amsgrad ? max_exp_avg_sq.device_data<T>() : nullptr, n, c);
  };
  if (param.dtype() == DType::Float32)
    run(float{});
  else
    run(double{});
  OKD_CUDA_CHECK_LAUNCH(op);
}

}  // namespace gpu

}  // namespace okd::cuda
