// Reduction CUDA kernels: sum, mean, var, std, amax, amin over any set of dims, deterministic.
// As on the CPU, the input is viewed with the kept dims first and the reduced dims last and made
// contiguous, so output o reduces the contiguous row o of R elements. Each row is cut into a fixed
// number of chunks that depends only on (O, R): one block reduces one chunk with a fixed tree
// (launch.cuh's block_reduce), a second launch reduces each row's chunk partials the same way.
// No floating-point atomics: the result is bit-identical from run to run and on any GPU with the
// same block size. Accumulation is in double for float32 and float64 (the CPU's choice too).
#include <cmath>
#include <limits>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"
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
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < O;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
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
        rows, O, R, std::max<int64_t>(R, 1), 1, acc, center, totals.data<double>());
    OKD_CUDA_CHECK_LAUNCH("reduce");
    return totals;
  }
  Tensor partial = empty({O, chunks}, DType::Float64, device);
  reduce_chunks_kernel<T><<<grid, kReduceThreads, 0, stream()>>>(rows, O, R, chunk, chunks, acc,
                                                                 center, partial.data<double>());
  OKD_CUDA_CHECK_LAUNCH("reduce");
  // Second pass: squared deviations are plain sums by now.
  const Acc acc2 = acc == Acc::SquaredDeviation ? Acc::Sum : acc;
  reduce_chunks_kernel<double>
      <<<static_cast<unsigned>(std::min<int64_t>(O, 65535)), kReduceThreads, 0, stream()>>>(
          partial.data<double>(), O, chunks, chunks, 1, acc2, nullptr, totals.data<double>());
  OKD_CUDA_CHECK_LAUNCH("reduce");
  return totals;
}

const char* reduce_name(Reduce op) {
  static const char* names[] = {"sum", "mean", "var", "std", "amax", "amin"};
  return names[static_cast<int>(op)];
}

}  // namespace

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
  OKD_CHECK(is_floating(a.dtype()), "op ", name, " has no CUDA kernel for ", dtype_name(a.dtype()),
            " yet (float32 and float64 only)");

  // [kept dims..., reduced dims...] contiguous: output o reduces row o.
  const std::vector<int64_t> rd = ops::normalize_dims(dims, a.dim(), name);
  std::vector<bool> reduced(a.dim(), false);
  for (int64_t d : rd) reduced[d] = true;
  std::vector<int64_t> perm;
  Shape out_shape;
  int64_t O = 1, R = 1;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (!reduced[d]) {
      perm.push_back(d);
      O *= a.shape()[d];
      out_shape.push_back(a.shape()[d]);
    } else if (keepdim) {
      out_shape.push_back(1);
    }
  }
  for (int64_t d : rd) {
    perm.push_back(d);
    R *= a.shape()[d];
  }
  if (keepdim) {
    out_shape.clear();
    for (int64_t d = 0; d < a.dim(); ++d) out_shape.push_back(reduced[d] ? 1 : a.shape()[d]);
  }
  if (op == Reduce::Amax || op == Reduce::Amin)
    OKD_CHECK(R > 0, name, ": cannot reduce an empty dimension (input ", shape_str(a.shape()), ")");

  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (O == 0) return out;
  if (R == 0) {  // sum of nothing is 0; mean and variance of nothing are NaN (as on the CPU)
    ops::fill_(out, op == Reduce::Sum ? 0.0 : std::numeric_limits<double>::quiet_NaN());
    return out;
  }
  const Tensor rows = a.dim() == 0 ? a : ops::contiguous(ops::permute(a, perm));
  const Device dev = a.device();
  const unsigned grid = grid_for(O);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* p = rows.data<T>();
    T* po = out.data<T>();
    switch (op) {
      case Reduce::Sum:
      case Reduce::Mean: {
        Tensor s = row_totals<T>(p, O, R, Acc::Sum, nullptr, dev);
        finalize_kernel<T><<<grid, kThreads, 0, stream()>>>(
            s.data<double>(), po, O, op == Reduce::Sum ? Post::Identity : Post::Divide,
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
        finalize_kernel<double><<<grid, kThreads, 0, stream()>>>(
            s.data<double>(), mean.data<double>(), O, Post::Divide, static_cast<double>(R));
        OKD_CUDA_CHECK_LAUNCH(name);
        Tensor ss = row_totals<T>(p, O, R, Acc::SquaredDeviation, mean.data<double>(), dev);
        finalize_kernel<T><<<grid, kThreads, 0, stream()>>>(
            ss.data<double>(), po, O, op == Reduce::Var ? Post::Divide : Post::DivideSqrt,
            static_cast<double>(denom));
        break;
      }
      case Reduce::Amax:
      case Reduce::Amin: {
        Tensor m = row_totals<T>(p, O, R, op == Reduce::Amax ? Acc::Max : Acc::Min, nullptr, dev);
        finalize_kernel<T>
            <<<grid, kThreads, 0, stream()>>>(m.data<double>(), po, O, Post::Identity, 1.0);
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

}  // namespace okd::cuda
