// matmul on CUDA through cuBLAS (host code only): the CPU op's NumPy rules (1-D operands, batch
// dims broadcast), one cublas{S,D}gemmStridedBatched call per product. cuBLAS is column-major, so
// the row-major C[M,N] = op(A) op(B) is computed as its transpose C^T = op(B)^T op(A)^T, which
// reads the row-major buffers as they are. float32 stays float32 (no TF32) unless
// set_allow_tf32(true): the math mode is set on the handle before every call (context).
// Precision::BFloat16 (float32 operands): cublasGemmStridedBatchedEx reads bfloat16 copies of
// the operands (bf16_staging.h), accumulates in float32 on tensor cores and writes float32, which
// is then rounded to bfloat16 in place, as matmul.h specifies.
#include <climits>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

// How cuBLAS reads a row-major matrix view [r, c] with strides [s0, s1]: rows contiguous (ld = s0,
// no transpose in the C^T formulation) or columns contiguous (ld = s1, transposed). Other layouts
// are copied. Same rules as gemm_layout in matmul_cpu.cpp.
struct Layout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};
Layout layout_of(int64_t r, int64_t c, int64_t s0, int64_t s1) {
  if ((c <= 1 || s1 == 1) && (r <= 1 || s0 >= std::max<int64_t>(c, 1)))
    return {true, false, r <= 1 ? std::max<int64_t>(c, 1) : s0};
  if ((r <= 1 || s0 == 1) && (c <= 1 || s1 >= std::max<int64_t>(r, 1)))
    return {true, true, c <= 1 ? std::max<int64_t>(r, 1) : s1};
  return {};
}
Tensor operand(const Tensor& t, Layout& l) {
  l = layout_of(t.size(-2), t.size(-1), t.stride(-2), t.stride(-1));
  if (l.ok) return t;
  Tensor c = ops::contiguous(t);
  l = layout_of(c.size(-2), c.size(-1), c.stride(-2), c.stride(-1));
  return c;
}

int to_int(int64_t v, const char* what) {
  OKD_CHECK(v <= INT_MAX, "matmul: ", what, " ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

// C^T[N,M] = op(B)^T[N,K] op(A)^T[K,M], batched over nb with batch strides sa, sb (0 broadcasts).
void gemm_batched(const float* A, Layout la, int64_t sa, const float* B, Layout lb, int64_t sb,
                  float* C, int64_t M, int64_t N, int64_t K, int64_t nb) {
  const float one = 1.0f, zero = 0.0f;
  OKD_CUBLAS_CHECK("matmul",
                   cublasSgemmStridedBatched(cublas_handle(), lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                                             la.trans ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(N, "N"),
                                             to_int(M, "M"), to_int(K, "K"), &one, B,
                                             to_int(lb.ld, "ld"), sb, A, to_int(la.ld, "ld"), sa,
                                             &zero, C, to_int(N, "N"), M * N, to_int(nb, "batch")));
}
void gemm_batched(const double* A, Layout la, int64_t sa, const double* B, Layout lb, int64_t sb,
                  double* C, int64_t M, int64_t N, int64_t K, int64_t nb) {
  const double one = 1.0, zero = 0.0;
  OKD_CUBLAS_CHECK("matmul",
                   cublasDgemmStridedBatched(cublas_handle(), lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                                             la.trans ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(N, "N"),
                                             to_int(M, "M"), to_int(K, "K"), &one, B,
                                             to_int(lb.ld, "ld"), sb, A, to_int(la.ld, "ld"), sa,
                                             &zero, C, to_int(N, "N"), M * N, to_int(nb, "batch")));
}

// The bfloat16 product: A3 [nb, M, K] and B3 [nb, K, N] contiguous (batch stride 0 when nb = 1).
void gemm_batched_bf16(const Tensor& A3, const Tensor& B3, float* C, int64_t M, int64_t N,
                       int64_t K, int64_t nb) {
  const Tensor Ab = gpu::to_bf16_reused(A3, false), Bb = gpu::to_bf16_reused(B3, false);
  const float one = 1.0f, zero = 0.0f;
  OKD_CUBLAS_CHECK("matmul",
                   cublasGemmStridedBatchedEx(
                       cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, to_int(N, "N"), to_int(M, "M"),
                       to_int(K, "K"), &one, Bb.device_raw_data(), CUDA_R_16BF, to_int(N, "ld"),
                       nb > 1 ? K * N : 0, Ab.device_raw_data(), CUDA_R_16BF, to_int(K, "ld"),
                       nb > 1 ? M * K : 0, &zero, C, CUDA_R_32F, to_int(N, "N"), M * N,
                       to_int(nb, "batch"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

namespace gpu {

Tensor matmul(const Tensor& a, const Tensor& b, Precision precision) {
  OKD_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got ",
            shape_str(a.shape()), " @ ", shape_str(b.shape()));
  OKD_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ (", shape_str(a.shape()), " ",
            dtype_name(a.dtype()), " @ ", shape_str(b.shape()), " ", dtype_name(b.dtype()), ")");
  OKD_CHECK(a.device() == b.device(), "matmul: devices differ (", a.device().str(), " vs ",
            b.device().str(), ")");
  check_device(a, "matmul");
  OKD_CHECK(is_floating(a.dtype()), "matmul: expected float32 or float64, got ",
            dtype_name(a.dtype()), " (", shape_str(a.shape()), " @ ", shape_str(b.shape()), ")");
  const Tensor A = a.dim() == 1 ? ops::unsqueeze(a, 0) : a;
  const Tensor B = b.dim() == 1 ? ops::unsqueeze(b, 1) : b;
  const int64_t K = A.size(-1);
  OKD_CHECK(K == B.size(-2), "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
            ": inner dimensions ", K, " and ", B.size(-2), " differ");
  const int64_t M = A.size(-2), N = B.size(-1);
  const Shape batch_a(A.shape().begin(), A.shape().end() - 2),
      batch_b(B.shape().begin(), B.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, a.dtype(), a.device());
  const int64_t nb = shape_numel(batch);
  if (out.numel() > 0 && K == 0) {
    ops::fill_(out, 0.0);  // an empty sum
  } else if (out.numel() > 0) {
    Shape ea = batch, eb = batch;
    ea.push_back(M);
    ea.push_back(K);
    eb.push_back(K);
    eb.push_back(N);
    Layout la, lb;
    const Tensor A3 = operand(ops::reshape(ops::expand(A, ea), {nb, M, K}), la);
    const Tensor B3 = operand(ops::reshape(ops::expand(B, eb), {nb, K, N}), lb);
    const int64_t sa = nb > 1 ? A3.stride(0) : 0, sb = nb > 1 ? B3.stride(0) : 0;
    if (precision == Precision::BFloat16 && a.dtype() == DType::Float32) {
      // The staging copies are contiguous, so cuBLAS reads them untransposed.
      gemm_batched_bf16(ops::contiguous(A3), ops::contiguous(B3), out.device_data<float>(), M, N, K,
                        nb);
      gpu::round_bf16_(out);
    } else if (a.dtype() == DType::Float32)
      gemm_batched(A3.device_data<float>(), la, sa, B3.device_data<float>(), lb, sb,
                   out.device_data<float>(), M, N, K, nb);
    else
      gemm_batched(A3.device_data<double>(), la, sa, B3.device_data<double>(), lb, sb,
                   out.device_data<double>(), M, N, K, nb);
  }
  if (a.dim() == 1 && b.dim() == 1) return ops::reshape(out, {});
  if (a.dim() == 1) return ops::squeeze(out, -2);
  if (b.dim() == 1) return ops::squeeze(out, -1);
  return out;
}

}  // namespace gpu

}  // namespace okd::cuda
