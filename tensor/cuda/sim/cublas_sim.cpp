// The SIMT simulator's cuBLAS: the GEMMs okd calls, computed on the host (device memory is host
// memory) in double and rounded to the output type, validated like the real library and queued on
// the handle's stream (okd::sim::enqueue) with every argument captured by value, so that a GEMM
// recorded during graph capture runs correctly on each replay.
#include <cublas_v2.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/cuda/sim/sim.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

// How an operand's elements are stored.
enum class Elem { F32, F64, BF16 };

double load(const void* p, Elem e, long long i) {
  switch (e) {
    case Elem::F32:
      return static_cast<const float*>(p)[i];
    case Elem::F64:
      return static_cast<const double*>(p)[i];
    case Elem::BF16:
      return okd::bf16::to_float(static_cast<const uint16_t*>(p)[i]);
  }
  return 0;
}

void store(void* p, Elem e, long long i, double v) {
  switch (e) {
    case Elem::F32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case Elem::F64:
      static_cast<double*>(p)[i] = v;
      break;
    case Elem::BF16:
      static_cast<uint16_t*>(p)[i] = okd::bf16::from_float(static_cast<float>(v));
      break;
  }
}

bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

// One strided-batched GEMM, everything by value: C_b = alpha op(A_b) op(B_b) + beta C_b for
// b < batch, column-major, with X_b = X + b * strideX.
struct Gemm {
  bool ta = false, tb = false;
  int m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0, batch = 0;
  long long sa = 0, sb = 0, sc = 0;
  const void* A = nullptr;
  const void* B = nullptr;
  void* C = nullptr;
  Elem ea = Elem::F32, eb = Elem::F32, ec = Elem::F32;
  double alpha = 1, beta = 0;

  void run() const {
    // op(A) as m rows of k (row i contiguous), op(B) as n columns of k (column j contiguous).
    std::vector<double> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k);
    const bool product = k > 0 && alpha != 0;  // otherwise A and B are not read (reference BLAS)
    for (int batch_i = 0; batch_i < batch; ++batch_i) {
      const long long oa = batch_i * sa, ob = batch_i * sb, oc = batch_i * sc;
      if (product) {
        for (int i = 0; i < m; ++i)
          for (int l = 0; l < k; ++l)
            a[static_cast<size_t>(i) * k + l] =
                load(A, ea,
                     oa + (ta ? l + static_cast<long long>(i) * lda
                              : i + static_cast<long long>(l) * lda));
        for (int j = 0; j < n; ++j)
          for (int l = 0; l < k; ++l)
            b[static_cast<size_t>(j) * k + l] =
                load(B, eb,
                     ob + (tb ? j + static_cast<long long>(l) * ldb
                              : l + static_cast<long long>(j) * ldb));
      }
      for (int j = 0; j < n; ++j) {
        for (int i = 0; i < m; ++i) {
          double acc = 0;
          if (product) {
            const double* ai = &a[static_cast<size_t>(i) * k];
            const double* bj = &b[static_cast<size_t>(j) * k];
            for (int l = 0; l < k; ++l) acc += ai[l] * bj[l];
          }
          const long long ci = oc + i + static_cast<long long>(j) * ldc;
          double v = alpha * acc;
          if (beta != 0) v += beta * load(C, ec, ci);  // beta == 0: C is not read
          store(C, ec, ci, v);
        }
      }
    }
  }
};

// The argument checks of the real cublas<t>gemmStridedBatched.
cublasStatus_t check(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                     int m, int n, int k, const void* alpha, const void* beta, int lda, int ldb,
                     int ldc, int batchCount) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const int rows_a = transa == CUBLAS_OP_N ? m : k;
  const int rows_b = transb == CUBLAS_OP_N ? k : n;
  if (lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t launch(cublasHandle_t handle, Gemm g, const char* what) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;  // nothing to do
  if (!g.C || (g.k > 0 && g.alpha != 0 && (!g.A || !g.B))) return CUBLAS_STATUS_INVALID_VALUE;
  okd::sim::enqueue(
      handle->stream, [g] { g.run(); }, what);
  return CUBLAS_STATUS_SUCCESS;
}

template <class T>
cublasStatus_t gemm_typed(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                          int m, int n, int k, const T* alpha, const T* A, int lda, long long sa,
                          const T* B, int ldb, long long sb, const T* beta, T* C, int ldc,
                          long long sc, int batchCount, Elem e, const char* what) {
  const cublasStatus_t s =
      check(handle, transa, transb, m, n, k, alpha, beta, lda, ldb, ldc, batchCount);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  Gemm g;
  g.ta = transa != CUBLAS_OP_N;
  g.tb = transb != CUBLAS_OP_N;
  g.m = m, g.n = n, g.k = k, g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.batch = batchCount;
  g.sa = sa, g.sb = sb, g.sc = sc;
  g.A = A, g.B = B, g.C = C;
  g.ea = g.eb = g.ec = e;
  g.alpha = static_cast<double>(*alpha);  // host pointer mode: the values at call time
  g.beta = static_cast<double>(*beta);
  return launch(handle, g, what);
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  // Like the real library: setting a stream resets the workspace to the default pool.
  handle->workspace = nullptr;
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace,
                                  size_t workspaceSizeInBytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  // The real library wants the workspace aligned to at least 256 bytes.
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (!workspace && workspaceSizeInBytes > 0) return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int base = static_cast<int>(mode) & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH &&
      base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  if (!value) return CUBLAS_STATUS_INVALID_VALUE;
  switch (type) {
    case MAJOR_VERSION:
      *value = CUBLAS_VER_MAJOR;
      return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION:
      *value = CUBLAS_VER_MINOR;
      return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL:
      *value = CUBLAS_VER_PATCH;
      return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "the architecture is not supported";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the requested functionality is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "error detected trying to check the license";
  }
  return "unknown error";
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb,
                                         long long int strideB, const float* beta, float* C,
                                         int ldc, long long int strideC, int batchCount) {
  return gemm_typed(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta,
                    C, ldc, strideC, batchCount, Elem::F32, "cublasSgemmStridedBatched");
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda,
                                         long long int strideA, const double* B, int ldb,
                                         long long int strideB, const double* beta, double* C,
                                         int ldc, long long int strideC, int batchCount) {
  return gemm_typed(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta,
                    C, ldc, strideC, batchCount, Elem::F64, "cublasDgemmStridedBatched");
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType Atype,
                                          int lda, long long int strideA, const void* B,
                                          cudaDataType Btype, int ldb, long long int strideB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  const cublasStatus_t s =
      check(handle, transa, transb, m, n, k, alpha, beta, lda, ldb, ldc, batchCount);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  const int a = static_cast<int>(algo);
  if (!(a >= CUBLAS_GEMM_DEFAULT && a <= CUBLAS_GEMM_ALGO23) &&
      !(a >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && a <= CUBLAS_GEMM_ALGO15_TENSOR_OP))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  // The supported (compute, A, B, C) combinations: float32 compute over bfloat16 or float32
  // inputs, float64 compute over float64. Scalars are float for 32F compute, double for 64F.
  Gemm g;
  const bool c32 =
      computeType == CUBLAS_COMPUTE_32F || computeType == CUBLAS_COMPUTE_32F_PEDANTIC ||
      computeType == CUBLAS_COMPUTE_32F_FAST_16BF || computeType == CUBLAS_COMPUTE_32F_FAST_16F ||
      computeType == CUBLAS_COMPUTE_32F_FAST_TF32;
  const bool c64 = computeType == CUBLAS_COMPUTE_64F || computeType == CUBLAS_COMPUTE_64F_PEDANTIC;
  if (c32 && Atype == CUDA_R_16BF && Btype == CUDA_R_16BF &&
      (Ctype == CUDA_R_16BF || Ctype == CUDA_R_32F)) {
    g.ea = g.eb = Elem::BF16;
    g.ec = Ctype == CUDA_R_16BF ? Elem::BF16 : Elem::F32;
  } else if (c32 && Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F) {
    g.ea = g.eb = g.ec = Elem::F32;
  } else if (c64 && Atype == CUDA_R_64F && Btype == CUDA_R_64F && Ctype == CUDA_R_64F) {
    g.ea = g.eb = g.ec = Elem::F64;
  } else {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (c64) {
    g.alpha = *static_cast<const double*>(alpha);
    g.beta = *static_cast<const double*>(beta);
  } else {
    g.alpha = *static_cast<const float*>(alpha);
    g.beta = *static_cast<const float*>(beta);
  }
  g.ta = transa != CUBLAS_OP_N;
  g.tb = transb != CUBLAS_OP_N;
  g.m = m, g.n = n, g.k = k, g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.batch = batchCount;
  g.sa = strideA, g.sb = strideB, g.sc = strideC;
  g.A = A, g.B = B, g.C = C;
  return launch(handle, g, "cublasGemmStridedBatchedEx");
}

}  // extern "C"
