// CUDA runtime queries. Compiled only when okd is built with CUDA; safe on a machine with no GPU.
#include <cuda_runtime.h>

namespace okd {

int cuda_device_count_impl() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

}  // namespace okd
