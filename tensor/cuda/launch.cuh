// Launch helpers shared by the CUDA kernel files: the strided indexer of the generic elementwise
// kernels and deterministic block reductions. Included only by .cu files.
//   Indexer<K>: K operands share one (broadcast) shape, each with its own element strides. Dims
//   are coalesced on the host first (as the CPU's strided.h does), so a contiguous tensor is one
//   dim and its offsets need no division; thread i then finds operand k at
//   sum_d idx_d(i) * strides[k][d].
//   block_reduce: a fixed shuffle tree inside each warp, then over the warps of the block; the
//   order of additions depends only on blockDim, so results are bit-identical run to run (no
//   floating-point atomics anywhere).
#pragma once
#include <array>
#include <cstdint>

#include "tensor/cuda/context.h"

namespace okd::cuda {

constexpr int kMaxDims = 8;

// for (int64_t i = global thread index; i < n; i += all threads): a grid-stride loop, so any grid
// size (grid_for caps it at 65535 blocks) covers any n.
#define OKD_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <int K>
struct Indexer {
  int ndim = 1;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[K][kMaxDims] = {};

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d > 0; --d) {
      const int64_t q = i / sizes[d], r = i - q * sizes[d];
      i = q;
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += r * strides[k][d];
    }
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] += i * strides[k][0];
  }
};

// Strides of t broadcast to shape (0 along broadcast dims).
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  const size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

// Drops size-1 dims and merges dim d into d-1 wherever every operand allows it.
template <int K>
Indexer<K> make_indexer(const Shape& shape, const std::array<Shape, K>& strides, const char* op) {
  Shape sizes;
  std::array<Shape, K> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sizes.empty();
    for (int k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sizes.back() *= shape[d];
      for (int k = 0; k < K; ++k) st[k].back() = strides[k][d];
    } else {
      sizes.push_back(shape[d]);
      for (int k = 0; k < K; ++k) st[k].push_back(strides[k][d]);
    }
  }
  OKD_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims), op, ": the CUDA kernel handles at most ",
            kMaxDims, " non-mergeable dims, got shape ", shape_str(shape),
            "; make the operands contiguous first");
  Indexer<K> ix;
  ix.ndim = sizes.empty() ? 1 : static_cast<int>(sizes.size());
  if (sizes.empty()) {
    ix.sizes[0] = 1;
    return ix;
  }
  for (size_t d = 0; d < sizes.size(); ++d) {
    ix.sizes[d] = sizes[d];
    for (int k = 0; k < K; ++k) ix.strides[k][d] = st[k][d];
  }
  return ix;
}

// ---- deterministic block reductions (blockDim.x a multiple of 32, at most 1024)
// -------------------
struct SumOp {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};
// max/min that propagate NaN (as the CPU kernels do).
struct MaxOp {
  __device__ __forceinline__ double operator()(double a, double b) const {
    return a != a ? a : (b != b ? b : (a < b ? b : a));
  }
};
struct MinOp {
  __device__ __forceinline__ double operator()(double a, double b) const {
    return a != a ? a : (b != b ? b : (b < a ? b : a));
  }
};

// Calls f(T{}) with T the C++ type of a float dtype, for kernels written for float32 and
// float64; throws naming op for other dtypes.
template <class F>
void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      OKD_FAIL("op ", op, " has no CUDA kernel for ", dtype_name(dt),
               " yet (float32 and float64 only)");
  }
}

// Calls f(T{}) with T the C++ type of dt (any of the four dtypes), for kernels of every dtype.
template <class F>
void dispatch_all(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    case DType::Int64:
      return f(int64_t{});
    case DType::UInt8:
      return f(uint8_t{});
  }
  OKD_FAIL("unknown dtype ", static_cast<int>(dt));
}

// Records an out-of-range index found by a kernel in the deferred-error record (cuda_ops.h): the
// first reporter wins the atomicCAS on `kind` and fills in the rest; the host reads the record
// only after the kernel has finished.
__device__ __forceinline__ void report_device_error(DeviceErrorRecord* r, DeviceErrorKind kind,
                                                    int dim, int64_t position, int64_t value,
                                                    int64_t bound) {
  if (atomicCAS(reinterpret_cast<int*>(&r->kind), 0, static_cast<int>(kind)) == 0) {
    r->dim = dim;
    r->position = position;
    r->value = value;
    r->bound = bound;
    __threadfence_system();
  }
}

// Every thread passes its partial value; every thread gets the block's total. `smem` holds 32
// doubles. Ends with a barrier, so the caller can call it again right away.
template <class Op>
__device__ double block_reduce(double v, Op op, double* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? smem[lane] : 0.0;  // lanes >= warps never contribute (lane + o < warps)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const double other = __shfl_down_sync(0xffffffffu, v, o);
      if (lane + o < warps) v = op(v, other);
    }
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  const double total = smem[0];
  __syncthreads();
  return total;
}

}  // namespace okd::cuda
