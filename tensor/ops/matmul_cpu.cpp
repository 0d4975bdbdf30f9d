// Matrix products on the CPU. gemm calls OpenBLAS (cblas_sgemm / cblas_dgemm) when okd is built
// with it and a built-in cache-blocked kernel otherwise; matmul maps 1-D/2-D/batched operands onto
// gemm, passing transposed views as transpose flags instead of copying.
#include "tensor/ops/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "okd/build_config.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"
#include "tensor/parallel.h"
#if OKD_HAVE_BLAS
#include <cblas.h>
#endif

namespace okd::ops {

void gemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                    int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[i * ldc + j]);
    }
}

namespace {

// Built-in GEMM: B is packed in panels of kNr columns and A in panels of kMr rows per KC block;
// a kMr x kNr micro-tile of C is accumulated in registers (plain loops GCC vectorises).
constexpr int64_t kMr = 4, kNr = 16, kKc = 256, kMc = 64;

template <class T>
void builtin_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  auto a_at = [&](int64_t i, int64_t k) { return ta ? A[k * lda + i] : A[i * lda + k]; };
  auto b_at = [&](int64_t k, int64_t j) { return tb ? B[j * ldb + k] : B[k * ldb + j]; };
  // C = beta * C first, then accumulate alpha * A B block by block.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
  if (K == 0 || M == 0 || N == 0) return;
  const int64_t n_panels = (N + kNr - 1) / kNr;
  std::vector<T> bpack(static_cast<size_t>(kKc * n_panels * kNr));
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    // pack B[k0:k0+kc, :] as panels [panel][k][kNr], zero-padded
    for (int64_t p = 0; p < n_panels; ++p)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t jj = 0; jj < kNr; ++jj) {
          int64_t j = p * kNr + jj;
          bpack[(p * kc + k) * kNr + jj] = j < N ? b_at(k0 + k, j) : T(0);
        }
    const int64_t m_blocks = (M + kMc - 1) / kMc;
    parallel_for(0, m_blocks, 1, [&](int64_t mb0, int64_t mb1) {
      std::vector<T> apack(static_cast<size_t>(kMc * kc));
      for (int64_t mb = mb0; mb < mb1; ++mb) {
        const int64_t i0 = mb * kMc, mc = std::min(kMc, M - i0);
        const int64_t m_panels = (mc + kMr - 1) / kMr;
        for (int64_t p = 0; p < m_panels; ++p)
          for (int64_t k = 0; k < kc; ++k)
            for (int64_t ii = 0; ii < kMr; ++ii) {
              int64_t i = p * kMr + ii;
              apack[(p * kc + k) * kMr + ii] = i < mc ? a_at(i0 + i, k0 + k) : T(0);
            }
        for (int64_t mp = 0; mp < m_panels; ++mp)
          for (int64_t np = 0; np < n_panels; ++np) {
            T acc[kMr][kNr] = {};
            const T* ap = &apack[static_cast<size_t>(mp * kc * kMr)];
            const T* bp = &bpack[static_cast<size_t>(np * kc * kNr)];
            for (int64_t k = 0; k < kc; ++k) {
              for (int64_t ii = 0; ii < kMr; ++ii) {
                const T av = ap[k * kMr + ii];
                for (int64_t jj = 0; jj < kNr; ++jj) acc[ii][jj] += av * bp[k * kNr + jj];
              }
            }
            for (int64_t ii = 0; ii < kMr; ++ii) {
              int64_t i = i0 + mp * kMr + ii;
              if (i >= M) break;
              for (int64_t jj = 0; jj < kNr; ++jj) {
                int64_t j = np * kNr + jj;
                if (j >= N) break;
                C[i * ldc + j] += alpha * acc[ii][jj];
              }
            }
          }
      }
    });
  }
}

}  // namespace

void gemm_builtin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  builtin_gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#if OKD_HAVE_BLAS
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
#else
  builtin_gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#if OKD_HAVE_BLAS
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0. ? 0. : beta * C[i * ldc + j];
    return;
  }
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
#else
  builtin_gemm<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

namespace {
// A 2-D matrix operand for gemm: data pointer, leading dim and transpose flag, copying only when
// the view is neither row- nor column-contiguous.
struct MatArg {
  Tensor keep;
  bool trans = false;
  int64_t ld = 0;
};
MatArg as_gemm_operand(const Tensor& m) {
  const int64_t r = m.size(0), c = m.size(1);
  if (m.stride(1) == 1 && (r <= 1 || m.stride(0) >= std::max<int64_t>(c, 1)))
    return {m, false, std::max<int64_t>(m.stride(0), std::max<int64_t>(c, 1))};
  if (m.stride(0) == 1 && (c <= 1 || m.stride(1) >= std::max<int64_t>(r, 1)))
    return {m, true, std::max<int64_t>(m.stride(1), std::max<int64_t>(r, 1))};
  Tensor cm = contiguous(m);
  return {cm, false, std::max<int64_t>(c, 1)};
}

void mm(const Tensor& a, const Tensor& b, const Tensor& out) {
  MatArg A = as_gemm_operand(a), B = as_gemm_operand(b);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  // The BLAS runs single-threaded (runtime.cpp); a large product is split into row blocks of C,
  // one gemm each (rows of op(A) start at A + i0 * lda, or A + i0 when A is transposed).
  const int64_t flops = M * N * K;
  const int64_t blocks = flops >= (1 << 21) ? std::min<int64_t>(num_threads(), std::max<int64_t>(M / 16, 1)) : 1;
  const int64_t rows = (M + blocks - 1) / blocks;
  OKD_DISPATCH_FLOAT(a.dtype(), "matmul", [&]<class T>() {
    const T* pa = A.keep.data<T>();
    const T* pb = B.keep.data<T>();
    T* pc = out.data<T>();
    const int64_t ldc = std::max<int64_t>(N, 1);
    parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t i0 = b * rows, m = std::min(M, i0 + rows) - i0;
        if (m <= 0) continue;
        gemm(A.trans, B.trans, m, N, K, T(1), pa + (A.trans ? i0 : i0 * A.ld), A.ld, pb, B.ld, T(0),
             pc + i0 * ldc, ldc);
      }
    });
  });
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  OKD_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got ",
            shape_str(a.shape()), " @ ", shape_str(b.shape()));
  OKD_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ (", dtype_name(a.dtype()), " vs ",
            dtype_name(b.dtype()), ")");
  OKD_CHECK(a.device().is_cpu() && b.device().is_cpu(), "matmul: the CPU kernel got ",
            a.device().str(), " and ", b.device().str());
  OKD_CHECK(is_floating(a.dtype()), "matmul: expected float32 or float64, got ", dtype_name(a.dtype()));
  // NumPy rules: a 1-D left operand is a row vector, a 1-D right operand a column vector; the
  // added dim is removed from the result.
  Tensor A = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor B = b.dim() == 1 ? unsqueeze(b, 1) : b;
  const int64_t K = A.size(-1);
  OKD_CHECK(K == B.size(-2), "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
            ": inner dimensions ", K, " and ", B.size(-2), " differ");
  const int64_t M = A.size(-2), N = B.size(-1);
  Shape batch_a(A.shape().begin(), A.shape().end() - 2), batch_b(B.shape().begin(), B.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, a.dtype());
  const int64_t nb = shape_numel(batch);
  if (nb == 1) {
    mm(reshape(A, {M, K}), reshape(B, {K, N}), reshape(out, {M, N}));
  } else if (out.numel() > 0) {
    Shape ea = batch, eb = batch;
    ea.push_back(M); ea.push_back(K);
    eb.push_back(K); eb.push_back(N);
    Tensor A3 = reshape(expand(A, ea), {nb, M, K});
    Tensor B3 = reshape(expand(B, eb), {nb, K, N});
    Tensor O3 = reshape(out, {nb, M, N});
    for (int64_t i = 0; i < nb; ++i) mm(select(A3, 0, i), select(B3, 0, i), select(O3, 0, i));
  } else if (K == 0) {
    fill_(out, 0.0);
  }
  if (a.dim() == 1 && b.dim() == 1) return reshape(out, {});
  if (a.dim() == 1) return squeeze(out, -2);
  if (b.dim() == 1) return squeeze(out, -1);
  return out;
}

}  // namespace okd::ops
