// Reduction CUDA kernels: sum, mean, var, std, amax, amin over any set of dims, deterministic.
// As on the CPU, the input is viewed with the kept dims first and the reduced dims last and made
// contiguous, so output o reduces the contiguous row o of R elements. Each row is cut into a fixed
// number of chunks that depends only on (O, R): one block reduces one chunk with a fixed tree
// (launch.cuh's block_reduce), a second launch reduces each row's chunk partials the same way.
// No floating-point atomics: the result is bit-identical from run to run and on any GPU with the
// same block size. Accumulation is in double for float32 and float64 (the CPU's choice too).
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

// What a pass accumulates: x, (x - center[row])^2, max or min (NaN propagating).
enum class Acc : uint8_t { Sum, SquaredDeviation, Max, Min };

constexpr int kReduceThreads = 256;
constexpr int64_t kMinChunk = 4096;      // elements per block below which a row is not split
constexpr int64_t kTargetBlocks = 1024;  // enough blocks to fill a large GPU

// Block b reduces chunk (b % chunks) of row (b / chunks): elements [c chunk, (c+1) chunk) of R.
template <class T>
__global__ void reduce_chunks_kernel(const T* in, int64_t O, int64_t R, int64_t chunk,
                                     int64_t chunks, Acc acc, const double* center, double* out) {
  __shared__ double smem[32];
  const double identity = acc == Acc::Max ? -INFINITY : acc == Acc::Min ? INFINITY : 0.0;
  for (int64_t b = blockIdx.x; b < O * chunks; b += gridDim.x) {
    const int64_t o = b / chunks, c = b - o * chunks;
    const int64_t begin = c * chunk, end = min(R, begin + chunk);
    const T* row = in + o * R;
    const double m = acc == Acc::SquaredDeviation ? center[o] : 0.0;
    double v = identity;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const double x = static_cast<double>(row[i]);
      switch (acc) {
        case Acc::Sum:
          v += x;
          break;
        case Acc::SquaredDeviation:
          v += (x - m) * (x - m);
          break;
        case Acc::Max:
          v = MaxOp{}(v, x);
          break;
        case Acc::Min:
          v = MinOp{}(v, x);
          break;
      }
    }
    double total;
    if (acc == Acc::Max)
      total = block_reduce(v, MaxOp{}, smem);
    else if (acc == Acc::Min)
      total = block_reduce(v, MinOp{}, smem);
    else
      total = block_reduce(v, SumOp{}, smem);
    if (threadIdx.x == 0) out[b] = total;
  }
}

// What the last step does with a row's double total before storing it as T.
enum class Post : uint8_t { Identity, Divide, DivideSqrt };

template <class T>
__global__ void finalize_kernel(const double* acc, T* out, int64_t O, Post post, double divisor) {
  OKD_GRID_STRIDE(o, O) {
    switch (post) {
      case Post::Identity:
        out[o] = static_cast<T>(acc[o]);
        break;
      case Post::Divide:
        out[o] = static_cast<T>(acc[o] / divisor);
        break;
      case Post::DivideSqrt:  // std = sqrt of the variance rounded to T, as the CPU does
        out[o] = static_cast<T>(::sqrt(static_cast<double>(static_cast<T>(acc[o] / divisor))));
        break;
    }
  }
}

// rows [O, R] contiguous on the device -> totals [O] in double (two deterministic passes).
template <class T>
Tensor row_totals(const T* rows, int64_t O, int64_t R, Acc acc, const double* center,
                  Device device) {
  Tensor totals = empty({O}, DType::Float64, device);
  if (O == 0) return totals;
  // chunks: a function of O and R only, so the summation order never depends on the GPU.
  const int64_t want = std::max<int64_t>(1, (kTargetBlocks + O - 1) / O);
  const int64_t chunks = std::clamp<int64_t>((R + kMinChunk - 1) / kMinChunk, 1, want);
  const int64_t chunk = (R + chunks - 1) / chunks;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(O * chunks, 65535));
  if (chunks == 1) {
    reduce_chunks_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(
        rows, O, R, std::max<int64_t>(R, 1), 1, acc, center, totals.device_data<double>());
    OKD_CUDA_CHECK_LAUNCH("reduce");
    return totals;
  }
  Tensor partial = empty({O, chunks}, DType::Float64, device);
  reduce_chunks_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(
      rows, O, R, chunk, chunks, acc, center, partial.device_data<double>());
  OKD_CUDA_CHECK_LAUNCH("reduce");
  // Second pass: squared deviations are plain sums by now.
  const Acc acc2 = acc == Acc::SquaredDeviation ? Acc::Sum : acc;
  reduce_chunks_kernel<double>
      <<<static_cast<unsigned>(std::min<int64_t>(O, 65535)), kReduceThreads, 0, stream()>>>(
          partial.device_data<double>(), O, chunks, chunks, 1, acc2, nullptr,
          totals.device_data<double>());
  OKD_CUDA_CHECK_LAUNCH("reduce");
  return totals;
}

// (a, ia) comes before (b, ib) in the order max/min select by: NaN first (the first NaN wins, as
// on the CPU), then the larger (max) or smaller (min) value, then the lower index. A strict total
// order, so the block's tree finds the CPU's answer whatever the order of comparisons.
template <class T>
__device__ __forceinline__ bool arg_before(bool is_max, T a, int64_t ia, T b, int64_t ib) {
  const bool na = a != a, nb = b != b;
  if (na || nb) return na && nb ? ia < ib : na;
  if (a != b) return is_max ? a > b : a < b;
  return ia < ib;
}

// One block per row: values[o] and indices[o] of the max (or min) of row o.
template <class T>
__global__ void arg_reduce_kernel(const T* rows, int64_t O, int64_t R, bool is_max, T* values,
                                  int64_t* indices) {
  __shared__ T sv[kReduceThreads];
  __shared__ int64_t si[kReduceThreads];
  const int t = threadIdx.x;
  for (int64_t o = blockIdx.x; o < O; o += gridDim.x) {
    const T* row = rows + o * R;
    T bv = T(0);
    int64_t bi = -1;
    for (int64_t i = t; i < R; i += blockDim.x)
      if (bi < 0 || arg_before(is_max, row[i], i, bv, bi)) bv = row[i], bi = i;
    sv[t] = bv;
    si[t] = bi;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
      if (t < stride && si[t + stride] >= 0 &&
          (si[t] < 0 || arg_before(is_max, sv[t + stride], si[t + stride], sv[t], si[t]))) {
        sv[t] = sv[t + stride];
        si[t] = si[t + stride];
      }
      __syncthreads();
    }
    if (t == 0) {
      values[o] = sv[0];
      indices[o] = si[0];
    }
    __syncthreads();
  }
}

// The input viewed as [O, R] contiguous rows: kept dims first, reduced dims last.
struct Rows {
  Tensor data;
  int64_t O = 1, R = 1;
  Shape out_shape;   // with or without keepdim
  Shape keep_shape;  // with keepdim
};

Rows to_rows(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  std::vector<int64_t> rd = ops::normalize_dims(dims, a.dim(), op);
  if (a.dim() == 0) rd.clear();  // a scalar "reduces" to itself
  std::vector<bool> reduced(a.dim(), false);
  for (int64_t d : rd) reduced[d] = true;
  std::vector<int64_t> perm;
  Rows r;
  for (int64_t d = 0; d < a.dim(); ++d) {
    r.keep_shape.push_back(reduced[d] ? 1 : a.shape()[d]);
    if (!reduced[d]) {
      perm.push_back(d);
      r.O *= a.shape()[d];
      r.out_shape.push_back(a.shape()[d]);
    }
  }
  for (int64_t d : rd) {
    perm.push_back(d);
    r.R *= a.shape()[d];
  }
  if (keepdim) r.out_shape = r.keep_shape;
  r.data = a.dim() == 0 ? a : ops::contiguous(ops::permute(a, perm));
  return r;
}

// Integer sums, exact in int64 (integer addition is associative: any order gives the same
// result). One block per row.
template <class T>
__global__ void int_sum_kernel(const T* rows, int64_t O, int64_t R, int64_t* out) {
  __shared__ int64_t partial[kReduceThreads];
  const int t = threadIdx.x;
  for (int64_t o = blockIdx.x; o < O; o += gridDim.x) {
    int64_t v = 0;
    for (int64_t i = t; i < R; i += blockDim.x) v += static_cast<int64_t>(rows[o * R + i]);
    partial[t] = v;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
      if (t < stride) partial[t] += partial[t + stride];
      __syncthreads();
    }
    if (t == 0) out[o] = partial[0];
    __syncthreads();
  }
}

// sum (int64 result), amax and amin of int64/uint8 tensors, as the CPU computes them.
Tensor reduce_integer(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
                      const char* name);

const char* reduce_name(Reduce op) {
  static const char* names[] = {"sum", "mean", "var", "std", "amax", "amin"};
  return names[static_cast<int>(op)];
}

}  // namespace

namespace gpu {

std::pair<Tensor, Tensor> max_min(bool is_max, const Tensor& a, int64_t dim, bool keepdim) {
  const char* name = is_max ? "max" : "min";
  check_device(a, name);
  const int64_t d = wrap_dim(dim, a.dim(), name);
  const Rows r = to_rows(a, {d}, keepdim, name);
  OKD_CHECK(r.R > 0, name, ": cannot reduce an empty dimension (input ", shape_str(a.shape()), ")");
  Tensor values = empty(r.out_shape, a.dtype(), a.device());
  Tensor indices = empty(r.out_shape, DType::Int64, a.device());
  if (r.O == 0) return {values, indices};
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(r.O, 65535));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    arg_reduce_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(r.data.device_data<T>(), r.O, r.R,
                                                                is_max, values.device_data<T>(),
                                                                indices.device_data<int64_t>());
  };
  dispatch_all(a.dtype(), run);
  OKD_CUDA_CHECK_LAUNCH(name);
  return {values, indices};
}

// logsumexp = m + log sum exp(x - m), m the row max, composed in double like the CPU's loop
// (x - m in the input dtype, the exponentials and the sum in double); rows whose max is infinite
// give that max, empty rows -inf.
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_device(a, "logsumexp");
  OKD_CHECK(is_floating(a.dtype()), "logsumexp: expected a float32 or float64 tensor, got ",
            dtype_name(a.dtype()));
  std::vector<int64_t> rd = ops::normalize_dims(dims, a.dim(), "logsumexp");
  if (a.dim() == 0) rd.clear();
  std::vector<bool> reduced(a.dim(), false);
  for (int64_t d : rd) reduced[d] = true;
  Shape keep, out;
  int64_t R = 1;
  for (int64_t d = 0; d < a.dim(); ++d) {
    keep.push_back(reduced[d] ? 1 : a.shape()[d]);
    if (reduced[d])
      R *= a.shape()[d];
    else
      out.push_back(a.shape()[d]);
  }
  if (keepdim) out = keep;
  if (R == 0 || a.numel() == 0)
    return full(out, -std::numeric_limits<double>::infinity(), a.dtype(), a.device());
  const Tensor m = gpu::reduce(Reduce::Amax, a, rd, /*keepdim=*/true);
  const Tensor s =
      gpu::reduce(Reduce::Sum, gpu::unary(Unary::Exp, ops::to(ops::sub(a, m), DType::Float64)), rd,
                  /*keepdim=*/true);
  const Tensor lse =
      ops::to(ops::add(ops::to(m, DType::Float64), gpu::unary(Unary::Log, s)), a.dtype());
  const Tensor inf_max = gpu::compare_scalar(Compare::Eq, gpu::unary(Unary::Abs, m),
                                             std::numeric_limits<double>::infinity());
  return ops::reshape(where(inf_max, m, lse), out);
}

// (sum |x|^p)^(1/p) in double as on the CPU: p = 2 sums x * x, p = 1 sums |x|, p = inf is max |x|.
Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  OKD_CHECK(p > 0, "norm: p must be positive, got ", p);
  check_device(a, "norm");
  OKD_CHECK(is_floating(a.dtype()), "norm: expected a float32 or float64 tensor, got ",
            dtype_name(a.dtype()));
  const Tensor x = ops::to(a, DType::Float64);
  Tensor r;
  if (std::isinf(p))
    r = gpu::reduce(Reduce::Amax, gpu::unary(Unary::Abs, x), dims, keepdim);
  else if (p == 2.0)
    r = gpu::unary(Unary::Sqrt,
                   gpu::reduce(Reduce::Sum, gpu::binary(Binary::Mul, x, x), dims, keepdim));
  else if (p == 1.0)
    r = gpu::reduce(Reduce::Sum, gpu::unary(Unary::Abs, x), dims, keepdim);
  else
    r = gpu::unary(Unary::Pow,
                   gpu::reduce(Reduce::Sum, gpu::unary(Unary::Pow, gpu::unary(Unary::Abs, x), p),
                               dims, keepdim),
                   1.0 / p);
  return ops::to(r, a.dtype());
}

Tensor reduce(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
              bool unbiased) {
  const char* name = reduce_name(op);
  check_device(a, name);
  if (op == Reduce::Mean)
    OKD_CHECK(is_floating(a.dtype()), "mean: expected a floating tensor, got ",
              dtype_name(a.dtype()), " (convert with to(float32) first)");
  if (op == Reduce::Var || op == Reduce::Std)
    OKD_CHECK(is_floating(a.dtype()), name, ": expected a floating tensor, got ",
              dtype_name(a.dtype()));
  if (!is_floating(a.dtype())) return reduce_integer(op, a, dims, keepdim, name);

  // [kept dims..., reduced dims...] contiguous: output o reduces row o.
  const Rows r = to_rows(a, dims, keepdim, name);
  const int64_t O = r.O, R = r.R;
  if (op == Reduce::Amax || op == Reduce::Amin)
    OKD_CHECK(R > 0, name, ": cannot reduce an empty dimension (input ", shape_str(a.shape()), ")");

  Tensor out = empty(r.out_shape, a.dtype(), a.device());
  if (O == 0) return out;
  if (R == 0) {  // sum of nothing is 0; mean and variance of nothing are NaN (as on the CPU)
    ops::fill_(out, op == Reduce::Sum ? 0.0 : std::numeric_limits<double>::quiet_NaN());
    return out;
  }
  const Tensor& rows = r.data;
  const Device dev = a.device();
  const unsigned grid = grid_for(O);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* p = rows.device_data<T>();
    T* po = out.device_data<T>();
    switch (op) {
      case Reduce::Sum:
      case Reduce::Mean: {
        Tensor s = row_totals<T>(p, O, R, Acc::Sum, nullptr, dev);
        finalize_kernel<T><<<grid, kThreads, 0, stream()>>>(
            s.device_data<double>(), po, O, op == Reduce::Sum ? Post::Identity : Post::Divide,
            static_cast<double>(R));
        break;
      }
      case Reduce::Var:
      case Reduce::Std: {
        // Two passes, as on the CPU: the mean m (in double), then sum (x - m)^2 / (R - unbiased).
        const int64_t denom = R - (unbiased ? 1 : 0);
        if (denom <= 0) {
          ops::fill_(out, std::numeric_limits<double>::quiet_NaN());
          return;
        }
        Tensor s = row_totals<T>(p, O, R, Acc::Sum, nullptr, dev);
        Tensor mean = empty({O}, DType::Float64, dev);
        finalize_kernel<double>
            <<<grid, kThreads, 0, stream()>>>(s.device_data<double>(), mean.device_data<double>(),
                                              O, Post::Divide, static_cast<double>(R));
        OKD_CUDA_CHECK_LAUNCH(name);
        Tensor ss = row_totals<T>(p, O, R, Acc::SquaredDeviation, mean.device_data<double>(), dev);
        finalize_kernel<T><<<grid, kThreads, 0, stream()>>>(
            ss.device_data<double>(), po, O, op == Reduce::Var ? Post::Divide : Post::DivideSqrt,
            static_cast<double>(denom));
        break;
      }
      case Reduce::Amax:
      case Reduce::Amin: {
        Tensor m = row_totals<T>(p, O, R, op == Reduce::Amax ? Acc::Max : Acc::Min, nullptr, dev);
        finalize_kernel<T>
            <<<grid, kThreads, 0, stream()>>>(m.device_data<double>(), po, O, Post::Identity, 1.0);
        break;
      }
    }
    OKD_CUDA_CHECK_LAUNCH(name);
  };
  if (a.dtype() == DType::Float32)
    run(float{});
  else
    run(double{});
  return out;
}

}  // namespace gpu

namespace {
Tensor reduce_integer(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
                      const char* name) {
  const Rows r = to_rows(a, dims, keepdim, name);
  const bool sum = op == Reduce::Sum;
  if (!sum)
    OKD_CHECK(r.R > 0, name, ": cannot reduce an empty dimension (input ", shape_str(a.shape()),
              ")");
  Tensor out = empty(r.out_shape, sum ? DType::Int64 : a.dtype(), a.device());
  if (r.O == 0) return out;
  if (r.R == 0) {
    ops::fill_(out, 0.0);
    return out;
  }
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(r.O, 65535));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (sum) {
      int_sum_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(r.data.device_data<T>(), r.O, r.R,
                                                               out.device_data<int64_t>());
    } else {  // the max/min selection kernel; its indices are not needed
      Tensor idx = empty({r.O}, DType::Int64, a.device());
      arg_reduce_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(
          r.data.device_data<T>(), r.O, r.R, op == Reduce::Amax, out.device_data<T>(),
          idx.device_data<int64_t>());
    }
  };
  if (a.dtype() == DType::Int64)
    run(int64_t{});
  else
    run(uint8_t{});
  OKD_CUDA_CHECK_LAUNCH(name);
  return out;
}
}  // namespace

}  // namespace okd::cuda
