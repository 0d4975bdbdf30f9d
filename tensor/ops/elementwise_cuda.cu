// Elementwise CUDA kernels: unary, binary with NumPy broadcasting, scalar, comparisons, where,
// in-place updates, copy_ (any dtype pair), fill_ and relu_backward. One generic strided kernel
// per operand count (launch.cuh's Indexer): any shape, strides and broadcasting, one thread per
// output element in a grid-stride loop. The op is a runtime switch inside the kernel (uniform
// across a launch, so it costs no divergence) rather than a template parameter: one kernel per
// dtype keeps the compile time of two GPU architectures small. The arithmetic mirrors
// elementwise_cpu.cpp exactly (same formulas, same double-precision scalar arithmetic), so the
// results agree with the CPU to the last bit or, for exp/log/tanh/pow, within a few ulp.
#include <cmath>

#include "tensor/bf16.h"
#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"

namespace okd::cuda {

namespace {

// ---- device math, float and double ----------------------------------------------------------
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return ::log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return ::pow(x, y); }

template <class T>
__device__ T apply_unary(Unary op, T x, double s0, double s1) {
  switch (op) {
    case Unary::Neg:
      return -x;
    case Unary::Exp:
      return d_exp(x);
    case Unary::Log:
      return d_log(x);
    case Unary::Sqrt:
      return d_sqrt(x);
    case Unary::Rsqrt:
      return T(1) / d_sqrt(x);
    case Unary::Abs:
      return x < T(0) ? -x : x;
    case Unary::Sign:
      return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case Unary::Relu:
      return x > T(0) ? x : T(0);
    case Unary::Sigmoid: {  // stable for both signs
      if (x >= T(0)) return T(1) / (T(1) + d_exp(-x));
      const T e = d_exp(x);
      return e / (T(1) + e);
    }
    case Unary::Tanh:
      return d_tanh(x);
    case Unary::Pow:  // the CPU's special cases, so x^2 is exactly x * x
      if (s0 == 2.0) return x * x;
      if (s0 == 0.5) return d_sqrt(x);
      if (s0 == 1.0) return x;
      return d_pow(x, static_cast<T>(s0));
    case Unary::Clamp: {
      const double v = static_cast<double>(x);
      return static_cast<T>(v < s0 ? s0 : (v > s1 ? s1 : v));
    }
    case Unary::AddScalar:
      return static_cast<T>(x + s0);
    case Unary::MulScalar:
      return static_cast<T>(x * s0);
    case Unary::RsubScalar:
      return static_cast<T>(s0 - x);
    case Unary::RdivScalar:
      return static_cast<T>(s0 / x);
    case Unary::RoundBf16:  // the host refuses float64 (elementwise_cpu.cpp)
      return static_cast<T>(bf16::round(static_cast<float>(x)));
  }
  return x;
}

// Binary ops: the public ones plus two internal fused forms.
enum class Bin : uint8_t {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,
  AddScaled,     // x + alpha * y, in double (add_ with alpha)
  ReluBackward,  // operands (dy, y): y > 0 ? dy : 0
};

Bin to_bin(Binary op) { return static_cast<Bin>(op); }  // same order for the public ones

template <class T>
__device__ T apply_binary(Bin op, T x, T y, double alpha) {
  switch (op) {
    case Bin::Add:
      return x + y;
    case Bin::Sub:
      return x - y;
    case Bin::Mul:
      return x * y;
    case Bin::Div:
      return x / y;
    case Bin::Pow:
      return d_pow(x, y);
    case Bin::Maximum:
      if (x != x) return x;  // NaN propagates, as in PyTorch
      if (y != y) return y;
      return x > y ? x : y;
    case Bin::Minimum:
      if (x != x) return x;
      if (y != y) return y;
      return x < y ? x : y;
    case Bin::AddScaled:
      return static_cast<T>(x + alpha * y);
    case Bin::ReluBackward:
      return y > T(0) ? x : T(0);
  }
  return x;
}

template <class T>
__device__ __forceinline__ bool apply_compare(Compare op, T x, T y) {
  switch (op) {
    case Compare::Eq:
      return x == y;
    case Compare::Ne:
      return x != y;
    case Compare::Lt:
      return x < y;
    case Compare::Le:
      return x <= y;
    case Compare::Gt:
      return x > y;
    case Compare::Ge:
      return x >= y;
  }
  return false;
}

// ---- the generic strided kernels -------------------------------------------------------------
template <class T>
__global__ void unary_kernel(int64_t n, Indexer<2> ix, T* out, const T* a, Unary op, double s0,
                             double s1) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[off[0]] = apply_unary(op, a[off[1]], s0, s1);
  }
}

template <class T>
__global__ void binary_kernel(int64_t n, Indexer<3> ix, T* out, const T* a, const T* b, Bin op,
                              double alpha) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = apply_binary(op, a[off[1]], b[off[2]], alpha);
  }
}

template <class T>
__global__ void compare_kernel(int64_t n, Indexer<3> ix, uint8_t* out, const T* a, const T* b,
                               Compare op) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[3];
    ix.offsets(i, off);
    out[off[0]] = apply_compare(op, a[off[1]], b[off[2]]) ? 1 : 0;
  }
}

// Comparisons with a scalar are made in double, as on the CPU.
template <class T>
__global__ void compare_scalar_kernel(int64_t n, Indexer<2> ix, uint8_t* out, const T* a, double s,
                                      Compare op) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    out[off[0]] = apply_compare(op, static_cast<double>(a[off[1]]), s) ? 1 : 0;
  }
}

template <class T>
__global__ void where_kernel(int64_t n, Indexer<4> ix, T* out, const uint8_t* cond, const T* a,
                             const T* b) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[4];
    ix.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

template <class D, class S>
__global__ void copy_kernel(int64_t n, Indexer<2> ix, D* dst, const S* src) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[2];
    ix.offsets(i, off);
    dst[off[0]] = static_cast<D>(src[off[1]]);
  }
}

template <class T>
__global__ void fill_kernel(int64_t n, Indexer<1> ix, T* dst, T value) {
  OKD_GRID_STRIDE(i, n) {
    int64_t off[1];
    ix.offsets(i, off);
    dst[off[0]] = value;
  }
}

// ---- host side ---------------------------------------------------------------------------------
// The CPU ops' check_same, for CUDA operands.
void check_same(const Tensor& a, const Tensor& b, const char* op) {
  OKD_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ",
            shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()),
            "); convert one with to()");
  OKD_CHECK(a.device() == b.device(), op, ": devices differ (", a.device().str(), " vs ",
            b.device().str(), ")");
  check_device(a, op);
}

const char* unary_name(Unary op) {
  static const char* names[] = {"neg",     "exp",  "log", "sqrt",  "rsqrt", "abs", "sign", "relu",
                                "sigmoid", "tanh", "pow", "clamp", "add",   "mul", "rsub", "rdiv"};
  return names[static_cast<int>(op)];
}
const char* binary_name(Binary op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return names[static_cast<int>(op)];
}
const char* compare_name(Compare op) {
  static const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}

// out (shape of the broadcast of a and b, or dst itself in place) = a op b.
void launch_binary(const Tensor& out, const Tensor& a, const Tensor& b, Bin op, double alpha,
                   const char* name) {
  const Shape& shape = out.shape();
  const int64_t n = out.numel();
  if (n == 0) return;
  auto ix = make_indexer<3>(
      shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)}, name);
  dispatch_float(out.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    binary_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        n, ix, out.device_data<T>(), a.device_data<T>(), b.device_data<T>(), op, alpha);
  });
  OKD_CUDA_CHECK_LAUNCH(name);
}

void launch_unary(const Tensor& out, const Tensor& a, Unary op, double s0, double s1,
                  const char* name) {
  const int64_t n = out.numel();
  if (n == 0) return;
  auto ix = make_indexer<2>(out.shape(), {out.strides(), a.strides()}, name);
  dispatch_float(a.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, ix, out.device_data<T>(),
                                                            a.device_data<T>(), op, s0, s1);
  });
  OKD_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

namespace gpu {

Tensor unary(Unary op, const Tensor& a, double s0, double s1) {
  const char* name = unary_name(op);
  check_device(a, name);
  if (op == Unary::Clamp)
    OKD_CHECK(!(s0 > s1), "clamp: lower bound ", s0, " is above the upper bound ", s1);
  Tensor out = empty(a.shape(), a.dtype(), a.device());
  launch_unary(out, a, op, s0, s1, name);
  return out;
}

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  if (op == Binary::Div && !is_floating(a.dtype()) && a.dtype() == b.dtype())
    OKD_FAIL("div: integer division is not supported (", dtype_name(a.dtype()),
             "); convert to a floating dtype first");
  check_same(a, b, name);
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), a.dtype(), a.device());
  launch_binary(out, a, b, to_bin(op), 1.0, name);
  return out;
}

Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  const char* name = compare_name(op);
  check_same(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, DType::UInt8, a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  auto ix = make_indexer<3>(
      shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)}, name);
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    compare_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        n, ix, out.device_data<uint8_t>(), a.device_data<T>(), b.device_data<T>(), op);
  });
  OKD_CUDA_CHECK_LAUNCH(name);
  return out;
}

Tensor compare_scalar(Compare op, const Tensor& a, double s) {
  const char* name = compare_name(op);
  check_device(a, name);
  Tensor out = empty(a.shape(), DType::UInt8, a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  auto ix = make_indexer<2>(a.shape(), {out.strides(), a.strides()}, name);
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    compare_scalar_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        n, ix, out.device_data<uint8_t>(), a.device_data<T>(), s, op);
  });
  OKD_CUDA_CHECK_LAUNCH(name);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  OKD_CHECK(cond.dtype() == DType::UInt8, "where: the condition must be a uint8 mask, got ",
            dtype_name(cond.dtype()));
  check_same(a, b, "where");
  OKD_CHECK(cond.device() == a.device(), "where: devices differ (condition on ",
            cond.device().str(), ", values on ", a.device().str(), ")");
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype(), a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  auto ix = make_indexer<4>(shape,
                            {out.strides(), broadcast_strides(cond, shape),
                             broadcast_strides(a, shape), broadcast_strides(b, shape)},
                            "where");
  dispatch_all(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    where_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, ix, out.device_data<T>(),
                                                            cond.device_data<uint8_t>(),
                                                            a.device_data<T>(), b.device_data<T>());
  });
  OKD_CUDA_CHECK_LAUNCH("where");
  return out;
}

void binary_(Binary op, const Tensor& dst, const Tensor& src, double alpha) {
  const char* name = op == Binary::Mul ? "mul_" : "add_";
  OKD_CHECK(op == Binary::Add || op == Binary::Mul, name, ": unsupported in-place op");
  check_same(dst, src, name);
  const Shape shape = broadcast_shapes(dst.shape(), src.shape(), name);
  OKD_CHECK(shape == dst.shape(), name, ": source of shape ", shape_str(src.shape()),
            " does not broadcast to the destination shape ", shape_str(dst.shape()));
  dst.impl()->storage->bump_version();
  // dst = dst op src, dst read and written at the same offset by the same thread.
  const Bin bin = op == Binary::Mul ? Bin::Mul : (alpha == 1.0 ? Bin::Add : Bin::AddScaled);
  launch_binary(dst, dst, src, bin, alpha, name);
}

void mul_scalar_(const Tensor& dst, double s) {
  check_device(dst, "mul_");
  dst.impl()->storage->bump_version();
  launch_unary(dst, dst, Unary::MulScalar, s, 0.0, "mul_");
}

Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  OKD_CHECK(dy.shape() == y.shape() && dy.dtype() == y.dtype(), "relu_backward: gradient ",
            dy.desc(), " does not match output ", y.desc());
  check_same(dy, y, "relu_backward");
  Tensor dx = empty(y.shape(), y.dtype(), y.device());
  launch_binary(dx, dy, y, Bin::ReluBackward, 1.0, "relu_backward");
  return dx;
}

void copy_(const Tensor& dst, const Tensor& src) {
  if (!dst.device().is_cuda()) {  // device -> host: bring src over, then the CPU copy_
    ops::copy_(dst, ops::to(src, dst.device()));
    return;
  }
  check_device(dst, "copy_");
  // host -> device (or another device): upload src in its own dtype first.
  const Tensor s = src.device() == dst.device() ? src : ops::to(src, dst.device());
  const Shape bshape = broadcast_shapes(dst.shape(), s.shape(), "copy_");
  OKD_CHECK(bshape == dst.shape(), "copy_: source of shape ", shape_str(s.shape()),
            " does not broadcast to destination shape ", shape_str(dst.shape()));
  dst.impl()->storage->bump_version();
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype() == s.dtype() && dst.is_contiguous() && s.is_contiguous() &&
      s.shape() == dst.shape()) {
    OKD_CUDA_CHECK("copy_", cudaMemcpyAsync(dst.device_raw_data(), s.device_raw_data(),
                                            dst.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  auto ix =
      make_indexer<2>(dst.shape(), {dst.strides(), broadcast_strides(s, dst.shape())}, "copy_");
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(s.dtype(), [&](auto stag) {
      using S = decltype(stag);
      copy_kernel<D, S>
          <<<grid_for(n), kThreads, 0, stream()>>>(n, ix, dst.device_data<D>(), s.device_data<S>());
    });
  });
  OKD_CUDA_CHECK_LAUNCH("copy_");
}

void fill_(const Tensor& dst, double value) {
  check_device(dst, "fill_");
  dst.impl()->storage->bump_version();
  const int64_t n = dst.numel();
  if (n == 0) return;
  auto ix = make_indexer<1>(dst.shape(), {dst.strides()}, "fill_");
  dispatch_all(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, ix, dst.device_data<T>(),
                                                           static_cast<T>(value));
  });
  OKD_CUDA_CHECK_LAUNCH("fill_");
}

}  // namespace gpu

}  // namespace okd::cuda
