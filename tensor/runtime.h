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
// Called first in an app's main(argv): when OpenBLAS picked generic kernels on a CPU with
// AVX2/AVX-512 and OPENBLAS_CORETYPE is unset, restarts the program (execv of /proc/self/exe,
// same arguments) with OPENBLAS_CORETYPE set to the best supported core. Returns when nothing
// needs doing, when OKD_BLAS_REEXEC=0, or when the restart fails.
void select_fast_blas_kernel(char** argv);
// One line: "okd 0.1.0 | BLAS: ... | OpenMP: 2 threads | CUDA: built, 0 devices"
std::string runtime_summary();

}  // namespace okd
