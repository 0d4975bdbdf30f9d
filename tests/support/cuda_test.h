// What the real-GPU test files share (tests/tensor/test_cuda_*.cpp): OKD_REQUIRE_GPU() skips a
// test, saying why, when okd was built without CUDA, the machine has no GPU, or cuda:0 is emulated.
#pragma once
#include <gtest/gtest.h>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/test_support.h"

#define OKD_REQUIRE_GPU()                                                                    \
  do {                                                                                       \
    if (!::okd::cuda_built()) GTEST_SKIP() << "okd was built without CUDA (-DOKD_CUDA=OFF)"; \
    if (::okd::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";      \
    if (::okd::cuda::emulating()) GTEST_SKIP() << "cuda:0 is emulated (OKD_CUDA_EMULATE)";   \
  } while (0)

namespace okd::test {

// Random normal values in dtype, seeded per call site.
inline Tensor randn_t(const Shape& s, DType dt, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, dt);
}

// The CUDA result lives on the GPU and matches the CPU reference in dtype, shape and values
// (|a - b| <= atol + rtol |b|).
inline ::testing::AssertionResult matches_on_gpu(const Tensor& on_gpu, const Tensor& ref,
                                                 double rtol, double atol) {
  if (!on_gpu.device().is_cuda())
    return ::testing::AssertionFailure() << "result is on " << on_gpu.device().str();
  if (on_gpu.dtype() != ref.dtype())
    return ::testing::AssertionFailure()
           << "dtype " << dtype_name(on_gpu.dtype()) << " vs " << dtype_name(ref.dtype());
  return allclose(on_gpu, ref, rtol, atol);
}

}  // namespace okd::test
