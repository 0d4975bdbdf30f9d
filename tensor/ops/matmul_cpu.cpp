// Matrix products on the CPU. gemm calls OpenBLAS (cblas_sgemm / cblas_dgemm) when okd is built
// with it and the built-in cache-blocked kernel below otherwise; matmul maps 1-D/2-D/batched
// operands onto gemm, passing transposed views as transpose flags instead of copying.
//
// Threads: okd parallelises around the BLAS, which runs single-threaded (runtime.cpp), so a
// gemm called from inside a parallel region (conv over the batch, matmul over a batch) never
// oversubscribes the cores. A lone large matmul is split by okd into blocks of rows (or columns)
// of C, one single-threaded gemm per thread.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <vector>

#include "okd/build_config.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/view.h"
#include "tensor/parallel.h"
#if OKD_HAVE_BLAS
#include <cblas.h>
#endif

namespace okd::ops {

// C = alpha * op(A) op(B) + beta * C with op(A)[i][k] = ta ? A[k][i] : A[i][k]. With beta == 0,
// C is not read (it may hold NaN), as in BLAS.
void gemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                    const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                    double* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[i * ldc + j]);
    }
}

namespace {

// ---- built-in GEMM ---------------------------------------------------------------------------
// The GotoBLAS/BLIS loop order. For each block of kKc values of k:
//   pack alpha * op(A)[rows, k-block] into panels of kMr rows, k-major:  apack[panel][k][kMr]
//   pack op(B)[k-block, cols]        into panels of kNr columns, k-major: bpack[panel][k][kNr]
//   for each (kMc x kNc) tile of C, in parallel: for each B panel (kc x kNr, stays in L1),
//     for each A panel (kc x kMr, streams from L2): the micro-kernel accumulates a kMr x kNr
//     block of C in registers, c[i][j] += sum_k a[k][i] * b[k][j], and adds it to C.
// Packing zero-pads the ragged edges, so the micro-kernel always runs full size and only the
// write-back is clipped. beta is applied by the first k-block (C = beta*C + acc), later blocks
// add (C += acc). The outer loops over kRowsOuter x kColsOuter bound the packed buffers.
//
// The micro-tile is kMr rows x two vectors of VB bytes: 12 vector accumulators, two B loads and
// one broadcast of A per step fit the 16 vector registers. It is written with GCC/Clang vector
// extensions (plain C++ arithmetic on vector types, no intrinsics). On x86-64 two builds of the
// tile loop exist: AVX2+FMA with 32-byte vectors (6 x 16 floats), chosen at run time when the CPU
// has them, and the baseline ISA with 16-byte SSE vectors (6 x 8 floats).
constexpr int64_t kMr = 6;
template <class T, int VB>
constexpr int64_t kNr = 2 * VB / sizeof(T);  // two vectors
constexpr int64_t kKc = 256;                 // a float B panel: 256 * 16 * 4 bytes = 16 KiB (L1)
constexpr int64_t kMc = 96, kNc = 256;       // a parallel tile of C (multiples of kMr and kNr)
constexpr int64_t kRowsOuter = 1536, kColsOuter = 4096;

template <class T, int VB>
[[gnu::always_inline]] inline void micro_kernel(int64_t kc, const T* __restrict a,
                                                const T* __restrict b, T* __restrict c, int64_t ldc,
                                                int64_t m, int64_t n, bool first, T beta) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int64_t kV = VB / sizeof(T), kN = 2 * kV;
  V acc[kMr][2] = {};
  for (int64_t k = 0; k < kc; ++k) {
    V b0, b1;
    std::memcpy(&b0, b + k * kN, sizeof(V));
    std::memcpy(&b1, b + k * kN + kV, sizeof(V));
    const T* ak = a + k * kMr;
    for (int64_t i = 0; i < kMr; ++i) {
      acc[i][0] += ak[i] * b0;
      acc[i][1] += ak[i] * b1;
    }
  }
  if (m == kMr && n == kN) {
    for (int64_t i = 0; i < kMr; ++i) {
      T* ci = c + i * ldc;
      for (int64_t h = 0; h < 2; ++h) {
        V old;
        std::memcpy(&old, ci + h * kV, sizeof(V));
        V v = !first ? old + acc[i][h] : beta == T(0) ? acc[i][h] : beta * old + acc[i][h];
        std::memcpy(ci + h * kV, &v, sizeof(V));
      }
    }
    return;
  }
  T tmp[kMr][kN];
  std::memcpy(tmp, acc, sizeof(tmp));
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) {
      if (!first)
        ci[j] += tmp[i][j];
      else
        ci[j] = beta == T(0) ? tmp[i][j] : beta * ci[j] + tmp[i][j];
    }
  }
}

// One tile of C: rows [0, mc) x cols [0, nc) of the packed block (apack/bpack point at the
// tile's first panels).
template <class T, int VB>
[[gnu::always_inline]] inline void tile_impl(int64_t mc, int64_t nc, int64_t kc, const T* apack,
                                             const T* bpack, T* c, int64_t ldc, bool first,
                                             T beta) {
  for (int64_t j = 0; j < nc; j += kNr<T, VB>) {
    const T* bp = bpack + (j / kNr<T, VB>)*kc * kNr<T, VB>;
    for (int64_t i = 0; i < mc; i += kMr)
      micro_kernel<T, VB>(kc, apack + (i / kMr) * kc * kMr, bp, c + i * ldc + j, ldc,
                          std::min(kMr, mc - i), std::min(kNr<T, VB>, nc - j), first, beta);
  }
}

// The tile loop per ISA. fp-contract lets GCC fuse a*b+c into one FMA (ISO C++ mode turns that
// off by default).
#if defined(__GNUC__) && defined(__x86_64__)
#define OKD_GEMM_AVX2 1
[[gnu::target("avx2,fma"), gnu::optimize("fp-contract=fast")]] void tile_avx2(
    int64_t mc, int64_t nc, int64_t kc, const float* apack, const float* bpack, float* c,
    int64_t ldc, bool first, float beta) {
  tile_impl<float, 32>(mc, nc, kc, apack, bpack, c, ldc, first, beta);
}
[[gnu::target("avx2,fma"), gnu::optimize("fp-contract=fast")]] void tile_avx2(
    int64_t mc, int64_t nc, int64_t kc, const double* apack, const double* bpack, double* c,
    int64_t ldc, bool first, double beta) {
  tile_impl<double, 32>(mc, nc, kc, apack, bpack, c, ldc, first, beta);
}
std::atomic<bool> g_force_baseline{false};
bool use_avx2_fma() {
  static const bool cpu_has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu_has && !g_force_baseline.load(std::memory_order_relaxed);
}
#else
#define OKD_GEMM_AVX2 0
#endif
template <class T>
[[gnu::optimize("fp-contract=fast")]] void tile_baseline(int64_t mc, int64_t nc, int64_t kc,
                                                         const T* apack, const T* bpack, T* c,
                                                         int64_t ldc, bool first, T beta) {
  tile_impl<T, 16>(mc, nc, kc, apack, bpack, c, ldc, first, beta);
}

template <class T, int VB>
void builtin_gemm_blocked(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t rows_outer = std::min(M, kRowsOuter), cols_outer = std::min(N, kColsOuter);
  const int64_t kc_max = std::min(K, kKc);
  std::vector<T> apack(static_cast<size_t>((rows_outer + kMr - 1) / kMr * kMr * kc_max));
  std::vector<T> bpack(
      static_cast<size_t>((cols_outer + kNr<T, VB> - 1) / kNr<T, VB> * kNr<T, VB> * kc_max));
  for (int64_t i0 = 0; i0 < M; i0 += kRowsOuter) {
    const int64_t mo = std::min(kRowsOuter, M - i0), a_panels = (mo + kMr - 1) / kMr;
    for (int64_t j0 = 0; j0 < N; j0 += kColsOuter) {
      const int64_t no = std::min(kColsOuter, N - j0),
                    b_panels = (no + kNr<T, VB> - 1) / kNr<T, VB>;
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        const bool first = k0 == 0;
        // Pack both operands (in parallel over panels), then compute the tiles in parallel.
        parallel_for(0, a_panels + b_panels, 4, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            if (p < a_panels) {
              T* dst = apack.data() + p * kc * kMr;
              for (int64_t ii = 0; ii < kMr; ++ii) {
                const int64_t i = i0 + p * kMr + ii;
                if (i >= i0 + mo) {
                  for (int64_t k = 0; k < kc; ++k) dst[k * kMr + ii] = T(0);
                } else if (ta) {  // op(A)[i][k] = A[k][i]
                  for (int64_t k = 0; k < kc; ++k)
                    dst[k * kMr + ii] = alpha * A[(k0 + k) * lda + i];
                } else {
                  const T* src = A + i * lda + k0;
                  for (int64_t k = 0; k < kc; ++k) dst[k * kMr + ii] = alpha * src[k];
                }
              }
            } else {
              const int64_t q = p - a_panels;
              T* dst = bpack.data() + q * kc * kNr<T, VB>;
              const int64_t jb = j0 + q * kNr<T, VB>, nj = std::min(kNr<T, VB>, j0 + no - jb);
              for (int64_t k = 0; k < kc; ++k) {
                T* d = dst + k * kNr<T, VB>;
                if (tb) {  // op(B)[k][j] = B[j][k]
                  for (int64_t jj = 0; jj < nj; ++jj) d[jj] = B[(jb + jj) * ldb + k0 + k];
                } else {
                  const T* src = B + (k0 + k) * ldb + jb;
                  for (int64_t jj = 0; jj < nj; ++jj) d[jj] = src[jj];
                }
                for (int64_t jj = nj; jj < kNr<T, VB>; ++jj) d[jj] = T(0);
              }
            }
          }
        });
        const int64_t tiles_m = (mo + kMc - 1) / kMc, tiles_n = (no + kNc - 1) / kNc;
        parallel_for(0, tiles_m * tiles_n, 1, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t ti = (t / tiles_n) * kMc, tj = (t % tiles_n) * kNc;
            const int64_t mc = std::min(kMc, mo - ti), nc = std::min(kNc, no - tj);
            const T* ap = apack.data() + (ti / kMr) * kc * kMr;
            const T* bp = bpack.data() + (tj / kNr<T, VB>)*kc * kNr<T, VB>;
            T* c = C + (i0 + ti) * ldc + j0 + tj;
#if OKD_GEMM_AVX2
            if constexpr (VB == 32)
              tile_avx2(mc, nc, kc, ap, bp, c, ldc, first, beta);
            else
#endif
              tile_baseline<T>(mc, nc, kc, ap, bp, c, ldc, first, beta);
          }
        });
      }
    }
  }
}

template <class T>
void builtin_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {  // C = beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
#if OKD_GEMM_AVX2
  if (use_avx2_fma()) {
    builtin_gemm_blocked<T, 32>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  builtin_gemm_blocked<T, 16>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#if OKD_HAVE_BLAS
void check_blas_range(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  OKD_CHECK(std::max({M, N, K, lda, ldb, ldc}) <= INT_MAX, "gemm: sizes M=", M, " N=", N, " K=", K,
            " (lda ", lda, ", ldb ", ldb, ", ldc ", ldc, ") exceed the BLAS's 32-bit int range");
}
#endif

}  // namespace

const char* gemm_builtin_isa() {
#if OKD_GEMM_AVX2
  if (use_avx2_fma()) return "avx2+fma";
#endif
  return "baseline";
}

void gemm_builtin_force_baseline([[maybe_unused]] bool force) {
#if OKD_GEMM_AVX2
  g_force_baseline = force;
#endif
}

void gemm_builtin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  builtin_gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#if OKD_HAVE_BLAS
  if (M <= 0 || N <= 0 || K <= 0) {  // degenerate sizes some BLAS builds reject
    builtin_gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  check_blas_range(M, N, K, lda, ldb, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
#else
  builtin_gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
#if OKD_HAVE_BLAS
  if (M <= 0 || N <= 0 || K <= 0) {
    builtin_gemm<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  check_blas_range(M, N, K, lda, ldb, ldc);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
#else
  builtin_gemm<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

namespace {
// How gemm reads a 2-D view with sizes [r, c] and strides [s0, s1]: rows contiguous (as it is,
// ld = s0) or columns contiguous (as its transpose, ld = s1). Other layouts must be copied.
struct GemmLayout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};
GemmLayout gemm_layout(int64_t r, int64_t c, int64_t s0, int64_t s1) {
  if ((c <= 1 || s1 == 1) && (r <= 1 || s0 >= std::max<int64_t>(c, 1)))
    return {true, false, r <= 1 ? std::max<int64_t>(c, 1) : s0};
  if ((r <= 1 || s0 == 1) && (c <= 1 || s1 >= std::max<int64_t>(r, 1)))
    return {true, true, c <= 1 ? std::max<int64_t>(r, 1) : s1};
  return {};
}
// t (rank >= 2) itself when its trailing matrix dims are gemm-readable, else a contiguous copy.
Tensor gemm_operand(const Tensor& t, GemmLayout& layout) {
  layout = gemm_layout(t.size(-2), t.size(-1), t.stride(-2), t.stride(-1));
  if (layout.ok) return t;
  Tensor c = contiguous(t);
  layout = gemm_layout(c.size(-2), c.size(-1), c.stride(-2), c.stride(-1));
  return c;
}

// c[M,N] (contiguous) = op(a)[M,K] @ op(b)[K,N]. With split, a product big enough to be worth it
// is cut into one block of rows (or of columns, when N > M) per thread.
template <class T>
void mm(const T* pa, GemmLayout la, const T* pb, GemmLayout lb, T* pc, int64_t M, int64_t N,
        int64_t K, bool split) {
  const int64_t ldc = std::max<int64_t>(N, 1);
#if OKD_HAVE_BLAS
  const bool by_rows = M >= N;
  const int64_t extent = by_rows ? M : N;
  int64_t blocks = 1;
  if (split && M * N * K >= (int64_t{1} << 18))
    blocks = std::min<int64_t>(num_threads(), std::max<int64_t>(extent / 16, 1));
#else
  (void)split;  // the built-in kernel parallelises over tiles of C itself
  const bool by_rows = true;
  const int64_t extent = M, blocks = 1;
#endif
  const int64_t step = (extent + blocks - 1) / blocks;
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t s = blk * step, len = std::min(extent, s + step) - s;
      if (len <= 0) continue;
      if (by_rows)  // rows s.. of op(A) start at A + s * lda, or at A + s when A is transposed
        gemm(la.trans, lb.trans, len, N, K, T(1), pa + (la.trans ? s : s * la.ld), la.ld, pb, lb.ld,
             T(0), pc + s * ldc, ldc);
      else  // columns s.. of op(B) and of C
        gemm(la.trans, lb.trans, M, len, K, T(1), pa, la.ld, pb + (lb.trans ? s * lb.ld : s), lb.ld,
             T(0), pc + s, ldc);
    }
  });
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, Precision precision) {
  if (cuda::on_cuda(a, b)) return cuda::matmul(a, b, precision);
  OKD_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got ",
            shape_str(a.shape()), " @ ", shape_str(b.shape()));
  OKD_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ (", shape_str(a.shape()), " ",
            dtype_name(a.dtype()), " @ ", shape_str(b.shape()), " ", dtype_name(b.dtype()), ")");
  // Mixed precision: the float32 product of bfloat16-rounded operands, rounded (exact products,
  // float32 sums, as cuBLAS computes with bf16 operands).
  if (precision == Precision::BFloat16 && a.dtype() == DType::Float32)
    return round_bf16(matmul(round_bf16(a), round_bf16(b)));
  OKD_CHECK(a.device().is_cpu() && b.device().is_cpu(), "matmul: the CPU kernel got ",
            a.device().str(), " and ", b.device().str());
  OKD_CHECK(is_floating(a.dtype()), "matmul: expected float32 or float64, got ",
            dtype_name(a.dtype()), " (", shape_str(a.shape()), " @ ", shape_str(b.shape()), ")");
  // NumPy rules: a 1-D left operand is a row vector, a 1-D right operand a column vector; the
  // added dim is removed from the result.
  Tensor A = a.dim() == 1 ? unsqueeze(a, 0) : a;
  Tensor B = b.dim() == 1 ? unsqueeze(b, 1) : b;
  const int64_t K = A.size(-1);
  OKD_CHECK(K == B.size(-2), "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
            ": inner dimensions ", K, " and ", B.size(-2), " differ");
  const int64_t M = A.size(-2), N = B.size(-1);
  Shape batch_a(A.shape().begin(), A.shape().end() - 2),
      batch_b(B.shape().begin(), B.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, a.dtype());
  const int64_t nb = shape_numel(batch);
  if (out.numel() > 0) {
    // Batch dims broadcast by expanding (stride 0) and flattening to [nb, ., .]; reshape keeps a
    // view where it can, so a broadcast operand is usually read in place by every product.
    Shape ea = batch, eb = batch;
    ea.push_back(M);
    ea.push_back(K);
    eb.push_back(K);
    eb.push_back(N);
    GemmLayout la, lb;
    Tensor A3 = gemm_operand(reshape(expand(A, ea), {nb, M, K}), la);
    Tensor B3 = gemm_operand(reshape(expand(B, eb), {nb, K, N}), lb);
    OKD_DISPATCH_FLOAT(a.dtype(), "matmul", [&]<class T>() {
      const T* pa = A3.data<T>();
      const T* pb = B3.data<T>();
      T* pc = out.data<T>();
      const int64_t sa = A3.stride(0), sb = B3.stride(0);
      // Many products: one per thread, each single-threaded; few: each one split over threads.
      if (nb > 1 && nb >= num_threads()) {
        parallel_for(0, nb, 1, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i)
            mm<T>(pa + i * sa, la, pb + i * sb, lb, pc + i * M * N, M, N, K, false);
        });
      } else {
        for (int64_t i = 0; i < nb; ++i)
          mm<T>(pa + i * sa, la, pb + i * sb, lb, pc + i * M * N, M, N, K, true);
      }
    });
  }
  if (a.dim() == 1 && b.dim() == 1) return reshape(out, {});
  if (a.dim() == 1) return squeeze(out, -2);
  if (b.dim() == 1) return squeeze(out, -1);
  return out;
}

}  // namespace okd::ops
