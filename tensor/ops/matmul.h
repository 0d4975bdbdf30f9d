// Raw matrix products. matmul: [M,K]x[K,N] -> [M,N]; batched [B,M,K]x[B,K,N] -> [B,M,N] with the
// batch dims broadcast; a 1-D operand is treated as NumPy does. gemm is the row-major primitive
// (OpenBLAS sgemm/dgemm when built with it, a built-in blocked kernel otherwise) that conv uses.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

// precision BFloat16 (float32 operands): products of bfloat16-rounded operands, accumulated in
// float32, the result rounded to bfloat16 (dtype.h); float64 ignores it.
Tensor matmul(const Tensor& a, const Tensor& b, Precision precision = Precision::Float32);

// C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* is set.
// lda/ldb/ldc are row strides in elements.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
          const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
          int64_t ldc);
// The plain triple loop the fast paths are tested against.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                    const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                    double* C, int64_t ldc);
// Forces the built-in kernel even when BLAS is available (benchmarks and tests).
void gemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc);
// Which build of the built-in kernel's inner loop runs on this CPU: "avx2+fma" (32-byte vectors,
// chosen at run time when the CPU has both) or "baseline" (16-byte vectors, any x86-64/other).
const char* gemm_builtin_isa();
// Tests: force the baseline build even on an AVX2 CPU (false restores the automatic choice).
void gemm_builtin_force_baseline(bool force);

}  // namespace okd::ops
