// Error checks for the CUDA runtime, cuBLAS and cuDNN: a failure is an okd::Error that names the
// okd op, the library call, the library's own message and the source line, e.g.
//   "matmul: cuBLAS error CUBLAS_STATUS_INVALID_VALUE (an invalid value was used as an argument)
//    in cublasSgemmStridedBatched(...) [tensor/ops/matmul_cuda.cu:88]".
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "tensor/error.h"

namespace okd::cuda {

[[noreturn]] inline void fail_cuda(const char* op, const char* call, cudaError_t e,
                                   const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the process can go on after the exception
  OKD_FAIL(op, ": CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ", call,
           " [", file, ":", line, "]");
}

[[noreturn]] inline void fail_cublas(const char* op, const char* call, cublasStatus_t s,
                                     const char* file, int line) {
  OKD_FAIL(op, ": cuBLAS error ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ") in ",
           call, " [", file, ":", line, "]");
}

}  // namespace okd::cuda

// OKD_CUDA_CHECK("op", cudaMemcpyAsync(...)): throws okd::Error naming op and the CUDA error.
#define OKD_CUDA_CHECK(OP, ...)                                               \
  do {                                                                        \
    cudaError_t okd_e_ = (__VA_ARGS__);                                       \
    if (okd_e_ != cudaSuccess)                                                \
      ::okd::cuda::fail_cuda((OP), #__VA_ARGS__, okd_e_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration (the kernel's own faults surface at
// the next synchronising call, which is checked too).
#define OKD_CUDA_CHECK_LAUNCH(OP) OKD_CUDA_CHECK((OP), cudaGetLastError())

#define OKD_CUBLAS_CHECK(OP, ...)                                               \
  do {                                                                          \
    cublasStatus_t okd_s_ = (__VA_ARGS__);                                      \
    if (okd_s_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::okd::cuda::fail_cublas((OP), #__VA_ARGS__, okd_s_, __FILE__, __LINE__); \
  } while (0)

// cuDNN is checked the same way where it is used (convolution, batch norm): include <cudnn.h>
// before this header to get OKD_CUDNN_CHECK.
#ifdef CUDNN_MAJOR
namespace okd::cuda {
[[noreturn]] inline void fail_cudnn(const char* op, const char* call, cudnnStatus_t s,
                                    const char* file, int line) {
  OKD_FAIL(op, ": cuDNN error ", cudnnGetErrorString(s), " in ", call, " [", file, ":", line, "]");
}
}  // namespace okd::cuda
#define OKD_CUDNN_CHECK(OP, ...)                                               \
  do {                                                                         \
    cudnnStatus_t okd_s_ = (__VA_ARGS__);                                      \
    if (okd_s_ != CUDNN_STATUS_SUCCESS)                                        \
      ::okd::cuda::fail_cudnn((OP), #__VA_ARGS__, okd_s_, __FILE__, __LINE__); \
  } while (0)
#endif
