// Random tensors on CUDA (uniform, bernoulli): one thread per element computes its Philox word
// with the same inline code as the CPU (tensor/philox.h), so a generator state gives the CPU's
// numbers. The affine map of uniform is rounded step by step (no fused multiply-add), as on the
// CPU.
#include "tensor/cuda/backends.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/philox.h"

namespace okd::cuda {

namespace {

template <class T>
__global__ void uniform_kernel(T* out, int64_t n, double lo, double span, const int64_t* first_ptr,
                               uint64_t key) {
  const uint64_t first = static_cast<uint64_t>(*first_ptr);
  OKD_GRID_STRIDE(i, n) {
    const double u = philox::u01(philox::word(first, key, i));
    out[i] = static_cast<T>(__dadd_rn(lo, __dmul_rn(span, u)));
  }
}

template <class T>
__global__ void bernoulli_kernel(T* out, int64_t n, double p, const int64_t* first_ptr,
                                 uint64_t key) {
  const uint64_t first = static_cast<uint64_t>(*first_ptr);
  OKD_GRID_STRIDE(i, n) {
    out[i] = static_cast<T>(philox::u01(philox::word(first, key, i)) < p ? 1 : 0);
  }
}

}  // namespace

namespace gpu {

// The first block is read from the generator's device counter (an int64 scalar on cuda:0).
static const int64_t* counter_ptr(const Tensor& first) {
  OKD_CHECK(first.dtype() == DType::Int64 && first.numel() == 1,
            "random: the block counter must be "
            "an int64 scalar, got ",
            first.desc());
  check_device(first, "random");
  return first.device_data<int64_t>();
}

Tensor random_uniform(const Shape& shape, DType dtype, double lo, double hi, const Tensor& first_t,
                      uint64_t key) {
  // dtype checked by okd::uniform (tensor/random.cpp) before the dispatch
  const int64_t* first = counter_ptr(first_t);
  Tensor t = empty(shape, dtype, Device(DeviceType::CUDA, 0));
  const int64_t n = t.numel();
  if (n == 0) return t;
  if (dtype == DType::Float32)
    uniform_kernel<float><<<grid_for(n), kThreads, 0, stream()>>>(t.device_data<float>(), n, lo,
                                                                  hi - lo, first, key);
  else
    uniform_kernel<double><<<grid_for(n), kThreads, 0, stream()>>>(t.device_data<double>(), n, lo,
                                                                   hi - lo, first, key);
  OKD_CUDA_CHECK_LAUNCH("uniform");
  return t;
}

Tensor random_bernoulli(const Shape& shape, DType dtype, double p, const Tensor& first_t,
                        uint64_t key) {
  const int64_t* first = counter_ptr(first_t);
  Tensor t = empty(shape, dtype, Device(DeviceType::CUDA, 0));
  const int64_t n = t.numel();
  if (n == 0) return t;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    bernoulli_kernel<T>
        <<<grid_for(n), kThreads, 0, stream()>>>(t.device_data<T>(), n, p, first, key);
  };
  dispatch_all(dtype, run);
  OKD_CUDA_CHECK_LAUNCH("bernoulli");
  return t;
}

}  // namespace gpu
}  // namespace okd::cuda
