// The SIMT simulator's cuBLAS and cuDNN stand-ins (tensor/cuda/sim): GEMMs against hand-written
// column-major loops, convolutions against okd's CPU ops in float64 (NCHW and NHWC, float, double
// and bfloat16, groups, depthwise, stride, padding, dilation, both convolution modes), alpha/beta
// accumulation, beta = 0 not reading the output, work captured by value into a CUDA graph, the
// heuristics' answers, and the error statuses of the real libraries.
#include <cublas_v2.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/ops/conv.h"

using namespace okd;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Deterministic values in [-1, 1).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 2654435761u + 1) {}
  double next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(s >> 11) / static_cast<double>(1ULL << 53) * 2.0 - 1.0;
  }
  std::vector<double> vec(size_t n) {
    std::vector<double> v(n);
    for (double& x : v) x = next();
    return v;
  }
};

::testing::AssertionResult close(const std::vector<double>& got, const std::vector<double>& want,
                                 double rtol, double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i])))
      return ::testing::AssertionFailure()
             << "at " << i << ": got " << got[i] << ", want " << want[i];
  return ::testing::AssertionSuccess();
}

// ---- cuBLAS ----------------------------------------------------------------------------------

struct Blas {
  cublasHandle_t h = nullptr;
  Blas() { EXPECT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS); }
  ~Blas() { cublasDestroy(h); }
};

// C_b = alpha op(A_b) op(B_b) + beta C_b (column-major), on the whole C buffer; beta == 0 ignores
// C's old values.
std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha,
                             const std::vector<double>& A, int lda, long long sa,
                             const std::vector<double>& B, int ldb, long long sb, double beta,
                             std::vector<double> C, int ldc, long long sc, int batch) {
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double acc = 0;
        for (int l = 0; l < k; ++l) {
          const double a = ta ? A[b * sa + l + static_cast<long long>(i) * lda]
                              : A[b * sa + i + static_cast<long long>(l) * lda];
          const double bb = tb ? B[b * sb + j + static_cast<long long>(l) * ldb]
                               : B[b * sb + l + static_cast<long long>(j) * ldb];
          acc += a * bb;
        }
        double& c = C[b * sc + i + static_cast<long long>(j) * ldc];
        c = alpha * acc + (beta == 0 ? 0.0 : beta * c);
      }
  return C;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

TEST(SimCublas, SgemmTransposesLeadingDimensionsBatchesAndAccumulates) {
  Blas blas;
  const int m = 5, n = 4, k = 3, batch = 3;
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      const bool ta_ = ta != CUBLAS_OP_N, tb_ = tb != CUBLAS_OP_N;
      const int lda = (ta_ ? k : m) + 2, ldb = (tb_ ? n : k) + 1, ldc = m + 3;
      const long long sa = lda * (ta_ ? m : k) + 5, sb = ldb * (tb_ ? k : n) + 2, sc = ldc * n + 1;
      Rng rng(ta * 10 + tb);
      const std::vector<float> A = cast<float>(rng.vec(sa * batch)),
                               B = cast<float>(rng.vec(sb * batch));
      std::vector<float> C = cast<float>(rng.vec(sc * batch));
      const float alpha = 1.5f, beta = -0.5f;
      const std::vector<double> want = ref_gemm(ta_, tb_, m, n, k, alpha, widen(A), lda, sa,
                                                widen(B), ldb, sb, beta, widen(C), ldc, sc, batch);
      ASSERT_EQ(cublasSgemmStridedBatched(blas.h, ta, tb, m, n, k, &alpha, A.data(), lda, sa,
                                          B.data(), ldb, sb, &beta, C.data(), ldc, sc, batch),
                CUBLAS_STATUS_SUCCESS);
      EXPECT_TRUE(close(widen(C), want, 1e-6, 1e-6)) << "transa " << ta << " transb " << tb;
    }
}

TEST(SimCublas, DgemmBroadcastsAStrideZeroAndIgnoresCWhenBetaIsZero) {
  Blas blas;
  const int m = 3, n = 6, k = 4, batch = 4;
  Rng rng(7);
  const std::vector<double> A = rng.vec(m * k), B = rng.vec(k * n * batch);
  std::vector<double> C(m * n * batch, kNaN);
  const double alpha = 1.0, beta = 0.0;
  const std::vector<double> want =
      ref_gemm(false, false, m, n, k, 1.0, A, m, 0, B, k, k * n, 0.0, C, m, m * n, batch);
  ASSERT_EQ(cublasDgemmStridedBatched(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A.data(),
                                      m, 0, B.data(), k, k * n, &beta, C.data(), m, m * n, batch),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_TRUE(close(C, want, 1e-13, 1e-13));
}

TEST(SimCublas, GemmExBFloat16InputsFloatOrBFloat16Output) {
  Blas blas;
  const int m = 6, n = 5, k = 7, batch = 2;
  Rng rng(3);
  std::vector<uint16_t> A(m * k * batch), B(k * n);
  for (uint16_t& a : A) a = bf16::from_float(static_cast<float>(rng.next()));
  for (uint16_t& b : B) b = bf16::from_float(static_cast<float>(rng.next()));
  std::vector<double> Ad, Bd;
  for (uint16_t a : A) Ad.push_back(bf16::to_float(a));
  for (uint16_t b : B) Bd.push_back(bf16::to_float(b));
  const float alpha = 2.0f, beta = 0.0f;
  // A transposed (lda = k), B broadcast over the batch (stride 0), as matmul's bf16 path can.
  std::vector<float> C(m * n * batch, std::numeric_limits<float>::quiet_NaN());
  const std::vector<double> want =
      ref_gemm(true, false, m, n, k, 2.0, Ad, k, m * k, Bd, k, 0, 0.0, widen(C), m, m * n, batch);
  ASSERT_EQ(cublasGemmStridedBatchedEx(blas.h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.data(),
                                       CUDA_R_16BF, k, m * k, B.data(), CUDA_R_16BF, k, 0, &beta,
                                       C.data(), CUDA_R_32F, m, m * n, batch, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_TRUE(close(widen(C), want, 1e-6, 1e-6));

  std::vector<uint16_t> Cb(m * n * batch, 0x7fc0);  // NaN
  ASSERT_EQ(cublasGemmStridedBatchedEx(blas.h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.data(),
                                       CUDA_R_16BF, k, m * k, B.data(), CUDA_R_16BF, k, 0, &beta,
                                       Cb.data(), CUDA_R_16BF, m, m * n, batch, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT_TENSOR_OP),
            CUBLAS_STATUS_SUCCESS);
  for (size_t i = 0; i < Cb.size(); ++i)
    EXPECT_EQ(Cb[i], bf16::from_float(static_cast<float>(want[i]))) << i;
}

TEST(SimCublas, InvalidArgumentsGiveTheRealStatuses) {
  Blas blas;
  const int m = 5, n = 4, k = 3;
  std::vector<float> A(64, 1.0f), B(64, 1.0f), C(64, 7.0f);
  const float one = 1.0f, zero = 0.0f;
  auto sgemm = [&](cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int mm, int nn,
                   int kk, int lda, int ldb, int ldc, int batch) {
    return cublasSgemmStridedBatched(h, ta, tb, mm, nn, kk, &one, A.data(), lda, 0, B.data(), ldb,
                                     0, &zero, C.data(), ldc, 0, batch);
  };
  const auto N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m, k, m, 1), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(sgemm(nullptr, N, N, m, n, k, m, k, m, 1), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_EQ(sgemm(blas.h, N, N, -1, n, k, m, k, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, N, N, m, -1, k, m, k, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, -1, m, k, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m, k, m, -1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, static_cast<cublasOperation_t>(5), N, m, n, k, m, k, m, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  // lda >= rows of A as stored: m untransposed, k transposed (m > k tells them apart).
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m - 1, k, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, T, N, m, n, k, k, k, m, 1), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(sgemm(blas.h, T, N, m, n, k, k - 1, k, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  // ldb >= k untransposed, n transposed; ldc >= m.
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m, k - 1, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, N, T, m, n, k, m, n, m, 1), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(sgemm(blas.h, N, T, m, n, k, m, n - 1, m, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m, k, m - 1, 1), CUBLAS_STATUS_INVALID_VALUE);
  // ld >= 1 even for empty matrices; an empty product succeeds without touching C.
  EXPECT_EQ(sgemm(blas.h, N, N, 0, n, k, 0, k, 1, 1), CUBLAS_STATUS_INVALID_VALUE);
  std::fill(C.begin(), C.end(), 7.0f);
  EXPECT_EQ(sgemm(blas.h, N, N, 0, n, k, 1, k, 1, 1), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, k, m, k, m, 0), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(C[0], 7.0f);
  // k == 0: C = beta C, A and B unread.
  EXPECT_EQ(sgemm(blas.h, N, N, m, n, 0, m, 1, m, 1), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(C[0], 0.0f);

  // GemmEx: unsupported type combinations and algorithms.
  auto ex = [&](cudaDataType a, cudaDataType b, cudaDataType c, cublasComputeType_t ct,
                cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(blas.h, N, N, m, n, k, &one, A.data(), a, m, 0, B.data(), b,
                                      k, 0, &zero, C.data(), c, m, 0, 1, ct, algo);
  };
  EXPECT_EQ(ex(CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(ex(CUDA_R_32F, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(ex(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_64F, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(ex(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(ex(CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F,
               static_cast<cublasGemmAlgo_t>(50)),
            CUBLAS_STATUS_NOT_SUPPORTED);
}

TEST(SimCublas, HandleSettingsNamesAndVersion) {
  Blas blas;
  EXPECT_EQ(cublasSetMathMode(blas.h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSetMathMode(blas.h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSetMathMode(blas.h, static_cast<cublasMath_t>(7)), CUBLAS_STATUS_INVALID_VALUE);
  alignas(256) static unsigned char workspace[1024];
  EXPECT_EQ(cublasSetWorkspace(blas.h, workspace, sizeof workspace), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSetWorkspace(blas.h, workspace + 16, 512), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasSetWorkspace(blas.h, nullptr, 0), CUBLAS_STATUS_SUCCESS);
  int major = 0, minor = -1;
  EXPECT_EQ(cublasGetProperty(MAJOR_VERSION, &major), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasGetProperty(MINOR_VERSION, &minor), CUBLAS_STATUS_SUCCESS);
  EXPECT_GE(major, 12);
  EXPECT_GE(minor, 0);
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_STREQ(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE),
               "an invalid value was used as an argument");
}

// Captured on a stream, the GEMM runs on the graph's launch with the scalars and pointers of the
// call, even after the caller's alpha has changed.
TEST(SimCublas, CapturedGemmRunsOnLaunchWithTheCallsArguments) {
  Blas blas;
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  ASSERT_EQ(cublasSetStream(blas.h, s), CUBLAS_STATUS_SUCCESS);
  const int m = 2, n = 3, k = 4;
  Rng rng(11);
  const std::vector<float> A = cast<float>(rng.vec(m * k)), B = cast<float>(rng.vec(k * n));
  std::vector<float> C(m * n, -1.0f);
  float alpha = 2.0f, beta = 0.0f;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ASSERT_EQ(cublasSgemmStridedBatched(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A.data(),
                                      m, 0, B.data(), k, 0, &beta, C.data(), m, 0, 1),
            CUBLAS_STATUS_SUCCESS);
  alpha = 100.0f;
  beta = 1.0f;
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(C[0], -1.0f);  // not run yet
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  const std::vector<double> want = ref_gemm(false, false, m, n, k, 2.0, widen(A), m, 0, widen(B), k,
                                            0, 0.0, std::vector<double>(m * n), m, 0, 1);
  EXPECT_TRUE(close(widen(C), want, 1e-6, 1e-6));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cublasSetStream(blas.h, nullptr);
  cudaStreamDestroy(s);
}

// ---- cuDNN -----------------------------------------------------------------------------------

struct Dnn {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Dnn() {
    EXPECT_EQ(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateTensorDescriptor(&x), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateTensorDescriptor(&y), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateFilterDescriptor(&w), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateConvolutionDescriptor(&conv), CUDNN_STATUS_SUCCESS);
  }
  ~Dnn() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroy(h);
  }
};

struct ConvCase {
  int N, C, H, W, K, R, S, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, G;
  int P() const { return (H + 2 * pad_h - dil_h * (R - 1) - 1) / stride_h + 1; }
  int Q() const { return (W + 2 * pad_w - dil_w * (S - 1) - 1) / stride_w + 1; }
  ops::Conv2dParams params() const {
    ops::Conv2dParams p;
    p.stride_h = stride_h, p.stride_w = stride_w, p.pad_h = pad_h, p.pad_w = pad_w;
    p.dil_h = dil_h, p.dil_w = dil_w, p.groups = G;
    return p;
  }
};

// Values of type t as stored on the device: float, double or bfloat16 bits.
struct Buffer {
  cudnnDataType_t t;
  std::vector<unsigned char> bytes;
  Buffer(cudnnDataType_t type, size_t n)
      : t(type),
        bytes(n * (t == CUDNN_DATA_DOUBLE  ? 8
                   : t == CUDNN_DATA_FLOAT ? 4
                                           : 2)) {}
  size_t size() const {
    return bytes.size() / (t == CUDNN_DATA_DOUBLE ? 8 : t == CUDNN_DATA_FLOAT ? 4 : 2);
  }
  void set(size_t i, double v) {
    if (t == CUDNN_DATA_DOUBLE)
      reinterpret_cast<double*>(bytes.data())[i] = v;
    else if (t == CUDNN_DATA_FLOAT)
      reinterpret_cast<float*>(bytes.data())[i] = static_cast<float>(v);
    else
      reinterpret_cast<uint16_t*>(bytes.data())[i] = bf16::from_float(static_cast<float>(v));
  }
  double get(size_t i) const {
    if (t == CUDNN_DATA_DOUBLE) return reinterpret_cast<const double*>(bytes.data())[i];
    if (t == CUDNN_DATA_FLOAT) return reinterpret_cast<const float*>(bytes.data())[i];
    return bf16::to_float(reinterpret_cast<const uint16_t*>(bytes.data())[i]);
  }
  void* data() { return bytes.data(); }
};

// The value v as type t stores it.
double representable(cudnnDataType_t t, double v) {
  if (t == CUDNN_DATA_DOUBLE) return v;
  if (t == CUDNN_DATA_FLOAT) return static_cast<float>(v);
  return bf16::round(static_cast<float>(v));
}

// Offsets of logical [d0, d1, d2, d3] (NCHW or KCRS) in the stored layout: as is, or with the
// channel (d1) last (NHWC, KRSC).
size_t offset(bool channels_last, const int d[4], int a, int b, int c, int e) {
  if (channels_last) return ((static_cast<size_t>(a) * d[2] + c) * d[3] + e) * d[1] + b;
  return ((static_cast<size_t>(a) * d[1] + b) * d[2] + c) * d[3] + e;
}
Buffer pack(cudnnDataType_t t, bool channels_last, const int d[4], const std::vector<double>& v) {
  Buffer b(t, v.size());
  size_t i = 0;
  for (int a = 0; a < d[0]; ++a)
    for (int c1 = 0; c1 < d[1]; ++c1)
      for (int c2 = 0; c2 < d[2]; ++c2)
        for (int c3 = 0; c3 < d[3]; ++c3) b.set(offset(channels_last, d, a, c1, c2, c3), v[i++]);
  return b;
}
std::vector<double> unpack(const Buffer& b, bool channels_last, const int d[4]) {
  std::vector<double> v;
  for (int a = 0; a < d[0]; ++a)
    for (int c1 = 0; c1 < d[1]; ++c1)
      for (int c2 = 0; c2 < d[2]; ++c2)
        for (int c3 = 0; c3 < d[3]; ++c3)
          v.push_back(b.get(offset(channels_last, d, a, c1, c2, c3)));
  return v;
}
// The filter [K, Cg, R, S] with each R x S window flipped (CUDNN_CONVOLUTION vs correlation).
std::vector<double> flip(const std::vector<double>& w, int KC, int R, int S) {
  std::vector<double> f(w.size());
  for (int kc = 0; kc < KC; ++kc)
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s)
        f[(static_cast<size_t>(kc) * R + r) * S + s] =
            w[(static_cast<size_t>(kc) * R + (R - 1 - r)) * S + (S - 1 - s)];
  return f;
}

Tensor to_tensor(const std::vector<double>& v, const int d[4]) {
  return from_vector<double>(v, Shape{d[0], d[1], d[2], d[3]});
}

// Every direction of one convolution, with each algorithm the heuristics offer, against okd's
// CPU ops: alpha = 1, beta = 0 into an output full of NaN, then alpha = 2, beta = 0.5 onto
// known values.
void check_conv(const ConvCase& cc, cudnnDataType_t t, cudnnTensorFormat_t format,
                cudnnConvolutionMode_t mode) {
  SCOPED_TRACE(::testing::Message()
               << "N" << cc.N << " C" << cc.C << " H" << cc.H << " W" << cc.W << " K" << cc.K
               << " R" << cc.R << " S" << cc.S << " pad " << cc.pad_h << "," << cc.pad_w
               << " stride " << cc.stride_h << "," << cc.stride_w << " dil " << cc.dil_h << ","
               << cc.dil_w << " G" << cc.G << " type " << t << " format " << format << " mode "
               << mode);
  const bool nhwc = format == CUDNN_TENSOR_NHWC;
  const int P = cc.P(), Q = cc.Q(), Cg = cc.C / cc.G;
  const int xd[4] = {cc.N, cc.C, cc.H, cc.W}, wd[4] = {cc.K, Cg, cc.R, cc.S},
            yd[4] = {cc.N, cc.K, P, Q};
  const size_t xn = static_cast<size_t>(cc.N) * cc.C * cc.H * cc.W,
               wn = static_cast<size_t>(cc.K) * Cg * cc.R * cc.S,
               yn = static_cast<size_t>(cc.N) * cc.K * P * Q;
  Rng rng(static_cast<uint64_t>(cc.C * 131 + cc.H * 7 + cc.G + t * 1000 + format * 77 + mode));
  std::vector<double> x = rng.vec(xn), w = rng.vec(wn), dy = rng.vec(yn);
  for (double& v : x) v = representable(t, v);
  for (double& v : w) v = representable(t, v);
  for (double& v : dy) v = representable(t, v);

  // References: cuDNN's CUDNN_CONVOLUTION is the correlation with the flipped filter.
  const bool flipped = mode == CUDNN_CONVOLUTION;
  const std::vector<double> w_corr = flipped ? flip(w, cc.K * Cg, cc.R, cc.S) : w;
  const ops::Conv2dParams p = cc.params();
  const std::vector<double> y_ref =
      to_vector<double>(ops::conv2d_forward(to_tensor(x, xd), to_tensor(w_corr, wd), Tensor(), p));
  const std::vector<double> dx_ref = to_vector<double>(ops::conv2d_backward_input(
      to_tensor(dy, yd), to_tensor(w_corr, wd), Shape{xd[0], xd[1], xd[2], xd[3]}, p));
  std::vector<double> dw_ref = to_vector<double>(ops::conv2d_backward_weight(
      to_tensor(dy, yd), to_tensor(x, xd), Shape{wd[0], wd[1], wd[2], wd[3]}, p));
  if (flipped) dw_ref = flip(dw_ref, cc.K * Cg, cc.R, cc.S);

  Dnn d;
  const cudnnDataType_t compute = t == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.x, format, t, cc.N, cc.C, cc.H, cc.W),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, format, t, cc.N, cc.K, P, Q), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, t, format, cc.K, Cg, cc.R, cc.S), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(d.conv, cc.pad_h, cc.pad_w, cc.stride_h, cc.stride_w,
                                            cc.dil_h, cc.dil_w, mode, compute),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolutionGroupCount(d.conv, cc.G), CUDNN_STATUS_SUCCESS);
  const cudnnMathType_t math = t == CUDNN_DATA_BFLOAT16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
  ASSERT_EQ(cudnnSetConvolutionMathType(d.conv, math), CUDNN_STATUS_SUCCESS);
  int on = 0, oc = 0, oh = 0, ow = 0;
  ASSERT_EQ(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &on, &oc, &oh, &ow),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(on, cc.N);
  EXPECT_EQ(oc, cc.K);
  EXPECT_EQ(oh, P);
  EXPECT_EQ(ow, Q);

  const Buffer xb = pack(t, nhwc, xd, x), wb = pack(t, nhwc, wd, w), dyb = pack(t, nhwc, yd, dy);
  // bfloat16 results are rounded once from an exact sum: within half a bfloat16 step.
  const double rtol = t == CUDNN_DATA_DOUBLE ? 1e-12 : t == CUDNN_DATA_FLOAT ? 1e-5 : 1.0 / 256;
  const double atol = t == CUDNN_DATA_DOUBLE ? 1e-12 : t == CUDNN_DATA_FLOAT ? 1e-5 : 1e-6;
  const float one_f = 1, zero_f = 0, two_f = 2, half_f = 0.5f;
  const double one_d = 1, zero_d = 0, two_d = 2, half_d = 0.5;
  const bool dbl = t == CUDNN_DATA_DOUBLE;
  const void* alphas[2] = {dbl ? static_cast<const void*>(&one_d) : &one_f,
                           dbl ? static_cast<const void*>(&two_d) : &two_f};
  const void* betas[2] = {dbl ? static_cast<const void*>(&zero_d) : &zero_f,
                          dbl ? static_cast<const void*>(&half_d) : &half_f};

  // Runs one direction into an output of logical dims od, in the tensors' format, against ref.
  auto check_direction = [&](const char* name, const int od[4], const std::vector<double>& ref,
                             auto&& run) {
    const bool out_nhwc = nhwc;
    for (int pass = 0; pass < 2; ++pass) {
      SCOPED_TRACE(::testing::Message() << name << " pass " << pass);
      std::vector<double> prev(ref.size(), kNaN), want(ref.size());
      if (pass == 1) prev = rng.vec(ref.size());
      for (double& v : prev) v = pass == 1 ? representable(t, v) : v;
      for (size_t i = 0; i < ref.size(); ++i)
        want[i] = pass == 0 ? ref[i] : 2.0 * ref[i] + 0.5 * prev[i];
      Buffer out = pack(t, out_nhwc, od, prev);
      ASSERT_EQ(run(alphas[pass], betas[pass], out.data()), CUDNN_STATUS_SUCCESS);
      EXPECT_TRUE(close(unpack(out, out_nhwc, od), want, rtol, atol));
    }
  };

  // Forward, with every algorithm the heuristics rank as usable.
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fwd),
            CUDNN_STATUS_SUCCESS);
  int usable = 0;
  for (int i = 0; i < n; ++i) {
    if (fwd[i].status != CUDNN_STATUS_SUCCESS) continue;
    ++usable;
    EXPECT_EQ(fwd[i].mathType, math);
    size_t bytes = 0;
    ASSERT_EQ(
        cudnnGetConvolutionForwardWorkspaceSize(d.h, d.x, d.w, d.conv, d.y, fwd[i].algo, &bytes),
        CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(bytes, fwd[i].memory);
    std::vector<unsigned char> ws(bytes);
    check_direction("forward", yd, y_ref, [&](const void* a, const void* b, void* out) {
      return cudnnConvolutionForward(d.h, a, d.x, xb.bytes.data(), d.w, wb.bytes.data(), d.conv,
                                     fwd[i].algo, bytes ? ws.data() : nullptr, bytes, b, d.y, out);
    });
  }
  EXPECT_GE(usable, 1);

  cudnnConvolutionBwdDataAlgoPerf_t bwd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  ASSERT_EQ(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                d.h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, bwd),
            CUDNN_STATUS_SUCCESS);
  for (int i = 0; i < n; ++i) {
    if (bwd[i].status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 0;
    ASSERT_EQ(cudnnGetConvolutionBackwardDataWorkspaceSize(d.h, d.w, d.y, d.conv, d.x, bwd[i].algo,
                                                           &bytes),
              CUDNN_STATUS_SUCCESS);
    std::vector<unsigned char> ws(bytes);
    check_direction("backward data", xd, dx_ref, [&](const void* a, const void* b, void* out) {
      return cudnnConvolutionBackwardData(d.h, a, d.w, wb.bytes.data(), d.y, dyb.bytes.data(),
                                          d.conv, bwd[i].algo, bytes ? ws.data() : nullptr, bytes,
                                          b, d.x, out);
    });
  }

  cudnnConvolutionBwdFilterAlgoPerf_t bwf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                d.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, bwf),
            CUDNN_STATUS_SUCCESS);
  for (int i = 0; i < n; ++i) {
    if (bwf[i].status != CUDNN_STATUS_SUCCESS) continue;
    size_t bytes = 0;
    ASSERT_EQ(cudnnGetConvolutionBackwardFilterWorkspaceSize(d.h, d.x, d.y, d.conv, d.w,
                                                             bwf[i].algo, &bytes),
              CUDNN_STATUS_SUCCESS);
    std::vector<unsigned char> ws(bytes);
    check_direction("backward filter", wd, dw_ref, [&](const void* a, const void* b, void* out) {
      return cudnnConvolutionBackwardFilter(d.h, a, d.x, xb.bytes.data(), d.y, dyb.bytes.data(),
                                            d.conv, bwf[i].algo, bytes ? ws.data() : nullptr, bytes,
                                            b, d.w, out);
    });
  }
}

// N C H W K R S pad_h pad_w stride_h stride_w dil_h dil_w G
const ConvCase kCases[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // 3x3, padding 1
    {2, 4, 9, 8, 6, 3, 3, 1, 1, 2, 2, 1, 1, 1},    // stride 2
    {1, 2, 8, 9, 3, 3, 2, 2, 1, 1, 1, 2, 2, 1},    // dilation 2, rectangular filter and padding
    {2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2},    // 2 groups
    {2, 4, 6, 5, 8, 3, 3, 1, 1, 2, 1, 1, 1, 4},    // depthwise, channel multiplier 2
    {3, 5, 7, 7, 4, 1, 1, 0, 0, 2, 2, 1, 1, 1},    // 1x1 stride 2 (a ResNet shortcut)
    {1, 6, 11, 10, 3, 3, 3, 2, 2, 2, 2, 2, 2, 3},  // groups, stride, dilation, padding at once
};

TEST(SimCudnn, FloatAndDoubleNchwMatchTheCpuOps) {
  for (const ConvCase& cc : kCases) {
    check_conv(cc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, CUDNN_CROSS_CORRELATION);
    check_conv(cc, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, CUDNN_CROSS_CORRELATION);
  }
}

TEST(SimCudnn, NhwcMatchesTheCpuOps) {
  for (const ConvCase& cc : kCases) {
    check_conv(cc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, CUDNN_CROSS_CORRELATION);
    check_conv(cc, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NHWC, CUDNN_CROSS_CORRELATION);
  }
}

TEST(SimCudnn, ConvolutionModeFlipsTheFilter) {
  for (const ConvCase& cc : {kCases[2], kCases[3], kCases[6]}) {
    check_conv(cc, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, CUDNN_CONVOLUTION);
    check_conv(cc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, CUDNN_CONVOLUTION);
  }
}

TEST(SimCudnn, BFloat16NchwAndNhwc) {
  for (const ConvCase& cc : kCases) {
    check_conv(cc, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NCHW, CUDNN_CROSS_CORRELATION);
    check_conv(cc, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, CUDNN_CROSS_CORRELATION);
  }
}

// Sets up x [2,4,8,8] * w [6,2,3,3] (2 groups, padding 1) -> y [2,6,8,8] in float.
void set_valid(Dnn& d) {
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 4, 8, 8),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 6, 8, 8),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, 2, 3, 3),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolutionGroupCount(d.conv, 2), CUDNN_STATUS_SUCCESS);
}

TEST(SimCudnn, InconsistentDescriptorsAndArgumentsGiveTheRealStatuses) {
  Dnn d;
  set_valid(d);
  std::vector<float> x(2 * 4 * 8 * 8, 1.0f), w(6 * 2 * 9, 1.0f), y(2 * 6 * 8 * 8, 0.0f);
  std::vector<unsigned char> ws(1 << 16);
  const float one = 1, zero = 0;
  auto forward = [&](cudnnConvolutionFwdAlgo_t algo, void* workspace, size_t bytes,
                     const void* alpha = nullptr) {
    return cudnnConvolutionForward(d.h, alpha ? alpha : &one, d.x, x.data(), d.w, w.data(), d.conv,
                                   algo, workspace, bytes, &zero, d.y, y.data());
  };
  const auto gemm = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(y[0], 8.0f);  // a corner: 2 channels x 2 x 2 taps
  size_t need = 0;
  ASSERT_EQ(
      cudnnGetConvolutionForwardWorkspaceSize(
          d.h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, &need),
      CUDNN_STATUS_SUCCESS);
  ASSERT_GT(need, 0u);
  ASSERT_LE(need, ws.size());
  const auto precomp = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  EXPECT_EQ(forward(precomp, ws.data(), need), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(precomp, nullptr, 0), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(forward(precomp, ws.data(), need - 1), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(
      forward(static_cast<cudnnConvolutionFwdAlgo_t>(CUDNN_CONVOLUTION_FWD_ALGO_COUNT), nullptr, 0),
      CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(forward(static_cast<cudnnConvolutionFwdAlgo_t>(-1), nullptr, 0),
            CUDNN_STATUS_BAD_PARAM);
  size_t bytes = 0;
  EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(
                d.h, d.x, d.w, d.conv, d.y, static_cast<cudnnConvolutionFwdAlgo_t>(42), &bytes),
            CUDNN_STATUS_BAD_PARAM);

  // Output dims that are not the forward formula's.
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 6, 7, 8),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_BAD_PARAM);
  int n = 0;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  EXPECT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf),
            CUDNN_STATUS_BAD_PARAM);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 5, 8, 8),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_BAD_PARAM);  // y channels != K
  set_valid(d);

  // Filter channels x groups != input channels; output channels not divisible by groups.
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, 4, 3, 3),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_BAD_PARAM);
  int on, oc, oh, ow;
  EXPECT_EQ(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &on, &oc, &oh, &ow),
            CUDNN_STATUS_BAD_PARAM);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 5, 2, 3, 3),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 5, 8, 8),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_BAD_PARAM);
  set_valid(d);

  // Mismatched data types; float data with double compute.
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, 6, 2, 3, 3),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_BAD_PARAM);
  set_valid(d);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_DOUBLE),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(forward(gemm, nullptr, 0), CUDNN_STATUS_NOT_SUPPORTED);
  set_valid(d);

  // Null scaling factor; invalid descriptor settings.
  EXPECT_EQ(cudnnConvolutionForward(d.h, nullptr, d.x, x.data(), d.w, w.data(), d.conv, gemm,
                                    nullptr, 0, &zero, d.y, y.data()),
            CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 4, 8, 8),
            CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT),
            CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(d.conv, -1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT),
            CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolutionGroupCount(d.conv, 0), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnSetConvolutionMathType(d.conv, static_cast<cudnnMathType_t>(9)),
            CUDNN_STATUS_BAD_PARAM);
  // A descriptor created but never set.
  cudnnTensorDescriptor_t fresh = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&fresh), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionForward(d.h, &one, fresh, x.data(), d.w, w.data(), d.conv, gemm,
                                    nullptr, 0, &zero, d.y, y.data()),
            CUDNN_STATUS_BAD_PARAM);
  cudnnDestroyTensorDescriptor(fresh);

  EXPECT_STREQ(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
  EXPECT_EQ(cudnnGetVersion() / 10000, static_cast<size_t>(CUDNN_MAJOR));
}

// The heuristics rank usable algorithms first (some with a workspace, the backward ones' first
// choice non-deterministic, as in cuDNN), echo the descriptor's math type, and list the rest as
// not supported; they never return more than requested.
TEST(SimCudnn, HeuristicsAnswers) {
  Dnn d;
  set_valid(d);
  ASSERT_EQ(cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH), CUDNN_STATUS_SUCCESS);
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fwd),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(n, CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  EXPECT_EQ(fwd[0].status, CUDNN_STATUS_SUCCESS);
  EXPECT_GT(fwd[0].memory, 0u);
  EXPECT_EQ(fwd[n - 1].status, CUDNN_STATUS_NOT_SUPPORTED);
  for (int i = 0; i < n; ++i) EXPECT_EQ(fwd[i].mathType, CUDNN_FMA_MATH);
  ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y, 1, &n, fwd),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(d.h, d.x, d.w, d.conv, d.y, 0, &n, fwd),
            CUDNN_STATUS_BAD_PARAM);

  cudnnConvolutionBwdDataAlgoPerf_t bwd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  ASSERT_EQ(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                d.h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, bwd),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(bwd[0].algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
  EXPECT_EQ(bwd[0].determinism, CUDNN_NON_DETERMINISTIC);
  EXPECT_EQ(bwd[1].algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
  EXPECT_EQ(bwd[1].determinism, CUDNN_DETERMINISTIC);
  EXPECT_EQ(bwd[1].status, CUDNN_STATUS_SUCCESS);

  cudnnConvolutionBwdFilterAlgoPerf_t bwf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                d.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, bwf),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(bwf[0].determinism, CUDNN_NON_DETERMINISTIC);
  EXPECT_EQ(bwf[1].algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
  EXPECT_EQ(bwf[1].determinism, CUDNN_DETERMINISTIC);
  EXPECT_GT(bwf[1].memory, 0u);
}

// A convolution captured on a stream runs on the graph's launch, after its descriptors are gone.
TEST(SimCudnn, CapturedConvolutionOutlivesItsDescriptors) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  std::vector<float> x(2 * 4 * 8 * 8, 1.0f), w(6 * 2 * 9, 1.0f), y(2 * 6 * 8 * 8, -1.0f);
  cudaGraph_t graph = nullptr;
  {
    Dnn d;
    set_valid(d);
    ASSERT_EQ(cudnnSetStream(d.h, s), CUDNN_STATUS_SUCCESS);
    float alpha = 0.5f, beta = 0.0f;
    ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    ASSERT_EQ(cudnnConvolutionForward(d.h, &alpha, d.x, x.data(), d.w, w.data(), d.conv,
                                      CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &beta,
                                      d.y, y.data()),
              CUDNN_STATUS_SUCCESS);
    ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
    alpha = 100.0f;
    set_valid(d);
    ASSERT_EQ(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 1, 1, 1),
              CUDNN_STATUS_SUCCESS);
  }
  EXPECT_EQ(y[0], -1.0f);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(y[0], 4.0f);      // corner: 0.5 x 2 channels x 2 x 2 taps
  EXPECT_EQ(y[8 + 1], 9.0f);  // interior: 0.5 x 2 x 9
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

// A ResNet-20 layer (batch 8, 16 channels, 32 x 32, 3 x 3) in all three directions: the simulator
// must keep such tests fast.
TEST(SimCudnn, ResNetLayerIsFast) {
  Dnn d;
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 8, 16, 32, 32),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 8, 16, 32, 32),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 16, 16, 3, 3),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                            CUDNN_DATA_FLOAT),
            CUDNN_STATUS_SUCCESS);
  Rng rng(5);
  const std::vector<float> x = cast<float>(rng.vec(8 * 16 * 32 * 32)),
                           w = cast<float>(rng.vec(16 * 16 * 9));
  std::vector<float> y(x.size()), dx(x.size()), dw(w.size());
  const float one = 1, zero = 0;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(cudnnConvolutionForward(d.h, &one, d.x, x.data(), d.w, w.data(), d.conv,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero,
                                    d.y, y.data()),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnConvolutionBackwardData(d.h, &one, d.w, w.data(), d.y, y.data(), d.conv,
                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, nullptr, 0, &zero, d.x,
                                         dx.data()),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnConvolutionBackwardFilter(d.h, &one, d.x, x.data(), d.y, y.data(), d.conv,
                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, nullptr, 0, &zero,
                                           d.w, dw.data()),
            CUDNN_STATUS_SUCCESS);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 3.0);
}

}  // namespace
