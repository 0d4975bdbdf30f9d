// What the real-GPU test files share (tests/tensor/test_cuda_*.cpp): OKD_REQUIRE_GPU() skips a
// test, saying why, when okd was built without CUDA, the machine has no GPU, or cuda:0 is emulated.
#pragma once
#include <gtest/gtest.h>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/runtime.h"

#define OKD_REQUIRE_GPU()                                                                    \
  do {                                                                                       \
    if (!::okd::cuda_built()) GTEST_SKIP() << "okd was built without CUDA (-DOKD_CUDA=OFF)"; \
    if (::okd::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine";      \
    if (::okd::cuda::emulating()) GTEST_SKIP() << "cuda:0 is emulated (OKD_CUDA_EMULATE)";   \
  } while (0)
