// The two implementations behind the CUDA entry points of cuda_ops.h: cuda::gpu (the kernels of
// tensor/ops/*_cuda.cu, or throwing stubs in a build without CUDA) and cuda::emu (the CPU
// emulator of emulator.cpp). tensor/cuda/dispatch.cpp picks one per call.
#pragma once
#include "tensor/cuda/cuda_ops.h"

namespace okd::cuda::gpu {
#include "tensor/cuda/cuda_kernels.inc"
}  // namespace okd::cuda::gpu

namespace okd::cuda::emu {
#include "tensor/cuda/cuda_kernels.inc"
}  // namespace okd::cuda::emu
