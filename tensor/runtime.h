// What this build and this process run with: BLAS, OpenMP threads, CUDA. Apps print it at start.
#pragma once
#include <string>

namespace okd {

// Number of threads CPU kernels use; set_num_threads(0) restores the default.
int num_threads();
void set_num_threads(int n);
bool cuda_built();        // compiled with the CUDA backend
int cuda_device_count();  // 0 without a GPU or without the backend
std::string blas_name();  // "OpenBLAS 0.3.21" or "built-in blocked GEMM"
// A warning when OpenBLAS runs generic kernels on a CPU it could serve better, else "".
std::string blas_kernel_hint();
// One line: "okd 0.1.0 | BLAS: ... | OpenMP: 2 threads | CUDA: built, 0 devices"
std::string runtime_summary();

}  // namespace okd
