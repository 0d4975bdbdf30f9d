// Optimizer updates on CUDA: the per-element loops of update_cpu.cpp (ops::sgd_step_,
// ops::adam_step_ and their multi-tensor forms, which dispatch here for CUDA parameters) as
// kernels. Same arithmetic in the parameter's dtype with the scalars cast to it first, as there;
// nvcc may fuse a multiply and an add into one FMA, so a float32 result can differ from the CPU's
// in the last bit (a multi-tensor step shares its element code with the per-tensor kernel).
#include <algorithm>
#include <cmath>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"

namespace okd::cuda {

namespace {

// SGD's scalars, cast to the parameter's dtype.
template <class T>
struct SgdScalars {
  T wd, mom, one_minus_damp, neg_lr;
  bool decay, nesterov, first;
};

template <class T>
__device__ __forceinline__ void sgd_element(T* p, const T* dp, T* buf, int64_t i,
                                            const SgdScalars<T>& s) {
  T g = dp[i];
  if (s.decay) g = g + s.wd * p[i];
  if (buf) {
    buf[i] = s.first ? g : buf[i] * s.mom + s.one_minus_damp * g;
    g = s.nesterov ? g + s.mom * buf[i] : buf[i];
  }
  p[i] = p[i] + s.neg_lr * g;
}

template <class T>
__global__ void sgd_kernel(T* p, const T* dp, T* buf, int64_t n, SgdScalars<T> s) {
  OKD_GRID_STRIDE(i, n) { sgd_element(p, dp, buf, i, s); }
}

// Up to kForeachChunk tensors per launch, their pointers passed by value (1.5 KiB of kernel
// parameters); blockIdx.y picks the tensor, x strides over its elements.
constexpr size_t kForeachChunk = 48;
template <class T>
struct SgdList {
  T* p[kForeachChunk];
  const T* g[kForeachChunk];
  T* buf[kForeachChunk];
  int64_t n[kForeachChunk];
};

template <class T>
__global__ void sgd_foreach_kernel(SgdList<T> l, SgdScalars<T> s) {
  const int j = blockIdx.y;
  const int64_t n = l.n[j];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    sgd_element(l.p[j], l.g[j], l.buf[j], i, s);
}

template <class T>
SgdScalars<T> sgd_scalars(const SgdStep& s) {
  return {static_cast<T>(s.weight_decay),
          static_cast<T>(s.momentum),
          static_cast<T>(1 - s.dampening),
          static_cast<T>(-s.lr),
          s.weight_decay != 0,
          s.nesterov,
          s.first};
}

__global__ void counter_add_kernel(int64_t* c, int64_t n, int64_t amount) {
  OKD_GRID_STRIDE(i, n) { c[i] += amount; }
}

template <class T>
struct AdamScalars {
  T wd, shrink_factor, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step_size;
  bool coupled, shrink;
  // With a device step counter: t is read there and bc2_sqrt, neg_step_size computed from it in
  // double, as the host computes them (optim/adam.cpp).
  const int64_t* step;
  double beta1, beta2, lr;
};

// t from the device counter, when there is one: 1 - b2^t and -lr / (1 - b1^t) in double.
template <class T>
__device__ __forceinline__ void adam_bias_corrections(AdamScalars<T>& s) {
  if (!s.step) return;
  const double t = static_cast<double>(*s.step);
  s.bc2_sqrt = static_cast<T>(::sqrt(1 - ::pow(s.beta2, t)));
  s.neg_step_size = static_cast<T>(-(s.lr / (1 - ::pow(s.beta1, t))));
}

template <class T>
__device__ __forceinline__ void adam_element(T* p, const T* dp, T* m, T* v, T* vmax, int64_t i,
                                             const AdamScalars<T>& s) {
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

template <class T>
__global__ void adam_kernel(T* p, const T* dp, T* m, T* v, T* vmax, int64_t n, AdamScalars<T> s) {
  adam_bias_corrections(s);
  OKD_GRID_STRIDE(i, n) { adam_element(p, dp, m, v, vmax, i, s); }
}

// The multi-tensor Adam: per tensor its pointers, length and t (the host's bias corrections, or
// its device counter), 72 bytes in double; kAdamForeachChunk of them and the shared scalars stay
// under the 4 KiB of kernel parameters.
template <class T>
struct AdamTensor {
  T *p, *m, *v, *vmax;
  const T* g;
  const int64_t* step;  // null: bc2_sqrt and neg_step_size below are t's
  int64_t n;
  T bc2_sqrt, neg_step_size;
};
constexpr size_t kAdamForeachChunk = 48;
template <class T>
struct AdamList {
  AdamTensor<T> t[kAdamForeachChunk];
};
static_assert(sizeof(AdamList<double>) + sizeof(AdamScalars<double>) <= 4096,
              "the multi-tensor Adam's kernel parameters must fit in 4 KiB");

template <class T>
__global__ void adam_foreach_kernel(AdamList<T> l, AdamScalars<T> s) {
  const AdamTensor<T>& a = l.t[blockIdx.y];
  s.step = a.step;
  s.bc2_sqrt = a.bc2_sqrt;
  s.neg_step_size = a.neg_step_size;
  adam_bias_corrections(s);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < a.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    adam_element(a.p, a.g, a.m, a.v, a.vmax, i, s);
}

// Adam's scalars cast to the parameter's dtype, with t's bias corrections computed in double on
// the host (as optim/adam.cpp and Python compute them) and no device counter.
template <class T>
AdamScalars<T> adam_scalars(const AdamStep& s, int64_t step) {
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1 - std::pow(s.beta1, t);
  const double bias_correction2 = 1 - std::pow(s.beta2, t);
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
  c.neg_step_size = static_cast<T>(-(s.lr / bias_correction1));
  c.step = nullptr;
  c.beta1 = s.beta1;
  c.beta2 = s.beta2;
  c.lr = s.lr;
  return c;
}

// The int64 scalar t on the parameter's device.
const int64_t* step_counter_data(const Tensor& counter, const char* op) {
  OKD_CHECK(counter.dtype() == DType::Int64 && counter.numel() == 1, op,
            ": the step counter must be an int64 scalar, got ", counter.desc());
  check_device(counter, op);
  return counter.device_data<int64_t>();
}

// The multi-tensor launches: params in chunks of kChunk; fill(j, i) records parameter i (already
// checked and its version bumped) in slot j of the caller's kernel-argument list and returns its
// length; launch(grid) then runs the kernel with grid.x blocks for the longest tensor of the
// chunk and grid.y = one per tensor. Slots past the chunk's count keep stale values no block reads.
template <size_t kChunk, class Fill, class Launch>
void foreach_chunks(const std::vector<Tensor>& params, const char* op, Fill&& fill,
                    Launch&& launch) {
  for (size_t first = 0; first < params.size(); first += kChunk) {
    const size_t count = std::min(kChunk, params.size() - first);
    int64_t longest = 0;
    for (size_t j = 0; j < count; ++j) {
      const Tensor& p = params[first + j];
      check_device(p, op);
      p.impl()->storage->bump_version();
      longest = std::max(longest, fill(j, first + j));
    }
    if (longest == 0) continue;
    launch(dim3(std::min(grid_for(longest), 1024u), static_cast<unsigned>(count)));
    OKD_CUDA_CHECK_LAUNCH(op);
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
        param.device_data<T>(), grad.device_data<T>(), buf, n, sgd_scalars<T>(s));
  };
  dispatch_float(param.dtype(), op, run);
  OKD_CUDA_CHECK_LAUNCH(op);
}

void sgd_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& bufs, const SgdStep& s) {
  // Checked by ops::sgd_step_foreach_ (update_cpu.cpp): one device and dtype, matching state.
  const char* op = "SGD::step";
  if (params.empty()) return;
  dispatch_float(params[0].dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const SgdScalars<T> sc = sgd_scalars<T>(s);
    SgdList<T> l{};
    foreach_chunks<kForeachChunk>(
        params, op,
        [&](size_t j, size_t i) {
          l.p[j] = params[i].device_data<T>();
          l.g[j] = grads[i].device_data<T>();
          l.buf[j] = s.momentum != 0 ? bufs[i].device_data<T>() : nullptr;
          return l.n[j] = params[i].numel();
        },
        [&](dim3 grid) { sgd_foreach_kernel<T><<<grid, kThreads, 0, stream()>>>(l, sc); });
  });
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  // Shapes, dtypes, devices and buffers were checked by ops::adam_step_ (update_cpu.cpp).
  const char* op = "Adam::step";
  check_device(param, op);
  param.impl()->storage->bump_version();
  const int64_t n = param.numel();
  if (n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    AdamScalars<T> c = adam_scalars<T>(s, s.step);
    if (s.step_counter.defined()) c.step = step_counter_data(s.step_counter, op);
    adam_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        param.device_data<T>(), grad.device_data<T>(), exp_avg.device_data<T>(),
        exp_avg_sq.device_data<T>(), s.amsgrad ? max_exp_avg_sq.device_data<T>() : nullptr, n, c);
  };
  dispatch_float(param.dtype(), op, run);
  OKD_CUDA_CHECK_LAUNCH(op);
}

void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const AdamStep& s) {
  // Checked by ops::adam_step_foreach_ (update_cpu.cpp): one device and dtype, matching state,
  // one step (and counter, if any) per parameter.
  const char* op = "Adam::step";
  if (params.empty()) return;
  dispatch_float(params[0].dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const AdamScalars<T> sc = adam_scalars<T>(s, 1);
    AdamList<T> l{};
    foreach_chunks<kAdamForeachChunk>(
        params, op,
        [&](size_t j, size_t i) {
          const AdamScalars<T> own = adam_scalars<T>(s, steps[i]);  // t's bias corrections
          AdamTensor<T>& a = l.t[j];
          a.p = params[i].device_data<T>();
          a.g = grads[i].device_data<T>();
          a.m = exp_avgs[i].device_data<T>();
          a.v = exp_avg_sqs[i].device_data<T>();
          a.vmax = s.amsgrad ? max_exp_avg_sqs[i].device_data<T>() : nullptr;
          a.step = step_counters.empty() ? nullptr : step_counter_data(step_counters[i], op);
          a.n = params[i].numel();
          a.bc2_sqrt = own.bc2_sqrt;
          a.neg_step_size = own.neg_step_size;
          return a.n;
        },
        [&](dim3 grid) { adam_foreach_kernel<T><<<grid, kThreads, 0, stream()>>>(l, sc); });
  });
}

}  // namespace gpu

}  // namespace okd::cuda
