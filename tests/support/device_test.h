// What the device test files (tests/device/) share: cuda:0 is emulated on the CPU unless a real GPU
// is there (then the tests run on it), set up before any test runs, and the copies to and fro.
#pragma once
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/runtime.h"
#include "tests/support/test_support.h"  // kCuda

namespace okd::test {

// True when cuda:0 is emulated (enabling twice is a no-op), evaluated at start-up.
inline const bool g_emulated = [] {
  if (cuda_device_count() > 0) return false;
  cuda::enable_emulation();
  return true;
}();

inline Tensor cpu(const Tensor& t) { return ops::to(t, kCPU); }
inline Tensor dev(const Tensor& t) { return ops::to(t, kCuda); }

}  // namespace okd::test
