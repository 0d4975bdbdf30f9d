// What every CUDA op shares: okd's stream (all kernels, copies and cuBLAS calls are queued on it,
// which is what makes the caching allocator safe), the cuBLAS handle, device checks and the launch
// geometry. Host code; included by the .cu kernel files and the host .cpp files of the backend.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/tensor.h"

namespace okd::cuda {

// okd's one non-blocking stream on device 0 (created on first use).
cudaStream_t stream();
// The cuBLAS handle bound to stream(), math mode set from allow_tf32().
cublasHandle_t cublas_handle();

// cudnnGetVersion() as text, or "not built" (conv_cuda.cu).
std::string cudnn_version();

// The backend drives cuda:0 only for now (the Allocator interface does not carry a device index).
// Throws naming op unless t lives on cuda:0.
void check_device(const Tensor& t, const char* op);

// The device address of the deferred-error record (cuda_ops.h, "errors found on the device"), for
// kernels that check index-valued inputs; see report_device_error in launch.cuh.
DeviceErrorRecord* device_error_record_for_kernels();

constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never more than needed.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535));
}

}  // namespace okd::cuda
