// Elementwise CPU kernels: unary, binary with NumPy broadcasting, scalar, comparison, where and
// in-place updates. Contiguous same-shape operands take a flat loop the compiler vectorises;
// everything else goes through the strided row walker of strided.h (coalesced dims, stride-0
// broadcasting). Large loops run in parallel; elementwise results never depend on the split.
// Each op hands CUDA tensors to elementwise_cuda.cu in its first line (see docs/cuda.md).
#include <cmath>

#include "tensor/bf16.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/strided.h"

namespace okd::ops {

namespace {

constexpr int64_t kGrain = 32768;

void check_cpu(const Tensor& t, const char* op) {
  OKD_CHECK(t.device().is_cpu(), op, ": the CPU kernel got a tensor on ", t.device().str());
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  OKD_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ",
            shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()),
            "); convert one with to()");
  OKD_CHECK(a.device() == b.device(), op, ": devices differ (", a.device().str(), " vs ",
            b.device().str(), ")");
  check_cpu(a, op);
}

// out[i] = f(a[i]) with out of dtype O.
template <class T, class O, class F>
Tensor map_unary(const Tensor& a, DType out_dtype, F f) {
  Tensor out = empty(a.shape(), out_dtype, a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  O* po = out.data<O>();
  if (a.is_contiguous()) {
    const T* pa = a.data<T>();
    parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = f(pa[i]);
    });
    return out;
  }
  auto L = detail::make_loop<2>(a.shape(), {out.strides(), a.strides()});
  const T* pa = a.data<T>();
  detail::for_each_row<2>(
      L, [&](const std::array<int64_t, 2>& off, int64_t len, const std::array<int64_t, 2>& st) {
        O* o = po + off[0];
        const T* x = pa + off[1];
        for (int64_t i = 0; i < len; ++i) o[i * st[0]] = f(x[i * st[1]]);
      });
  return out;
}

template <class F>
Tensor unary_float(const Tensor& a, const char* op, F f) {
  check_cpu(a, op);
  return OKD_DISPATCH_FLOAT(a.dtype(), op, [&]<class T>() {
    return map_unary<T, T>(a, a.dtype(), [&](T x) { return static_cast<T>(f(x)); });
  });
}

template <class F>
Tensor unary_all(const Tensor& a, const char* op, F f) {
  check_cpu(a, op);
  return OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    return map_unary<T, T>(a, a.dtype(), [&](T x) { return static_cast<T>(f(x)); });
  });
}

// out = f(a, b) broadcast, out dtype O.
template <class T, class O, class F>
Tensor map_binary(const Tensor& a, const Tensor& b, DType out_dtype, const char* op, F f) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = empty(shape, out_dtype, a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  O* po = out.data<O>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    parallel_for(0, n, kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
    });
    return out;
  }
  auto L = detail::make_loop<3>(shape, {out.strides(), detail::broadcast_strides(a, shape),
                                        detail::broadcast_strides(b, shape)});
  detail::for_each_row<3>(
      L, [&](const std::array<int64_t, 3>& off, int64_t len, const std::array<int64_t, 3>& st) {
        O* o = po + off[0];
        const T* x = pa + off[1];
        const T* y = pb + off[2];
        if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
          for (int64_t i = 0; i < len; ++i) o[i] = f(x[i], y[i]);
        } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
          const T yv = *y;
          for (int64_t i = 0; i < len; ++i) o[i] = f(x[i], yv);
        } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
          const T xv = *x;
          for (int64_t i = 0; i < len; ++i) o[i] = f(xv, y[i]);
        } else {
          for (int64_t i = 0; i < len; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
        }
      });
  return out;
}

template <class F>
Tensor binary_all(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same(a, b, op);
  return OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    return map_binary<T, T>(a, b, a.dtype(), op, [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
}

template <class F>
Tensor binary_float(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same(a, b, op);
  return OKD_DISPATCH_FLOAT(a.dtype(), op, [&]<class T>() {
    return map_binary<T, T>(a, b, a.dtype(), op, [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
}

template <class F>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_same(a, b, op);
  return OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    return map_binary<T, uint8_t>(a, b, DType::UInt8, op,
                                  [&](T x, T y) { return static_cast<uint8_t>(f(x, y) ? 1 : 0); });
  });
}

template <class F>
Tensor compare_scalar(const Tensor& a, double s, const char* op, F f) {
  check_cpu(a, op);
  return OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    return map_unary<T, uint8_t>(a, DType::UInt8, [&](T x) {
      return static_cast<uint8_t>(f(static_cast<double>(x), s) ? 1 : 0);
    });
  });
}

}  // namespace

// ---- unary ----
Tensor neg(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Neg, a);
  return unary_all(a, "neg", [](auto x) { return -x; });
}
Tensor exp(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Exp, a);
  return unary_float(a, "exp", [](auto x) { return std::exp(x); });
}
Tensor log(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Log, a);
  return unary_float(a, "log", [](auto x) { return std::log(x); });
}
Tensor sqrt(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Sqrt, a);
  return unary_float(a, "sqrt", [](auto x) { return std::sqrt(x); });
}
Tensor rsqrt(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Rsqrt, a);
  return unary_float(a, "rsqrt", [](auto x) { return decltype(x)(1) / std::sqrt(x); });
}
Tensor abs(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Abs, a);
  return unary_all(a, "abs", [](auto x) { return x < decltype(x)(0) ? -x : x; });
}
Tensor sign(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Sign, a);
  return unary_all(a, "sign", [](auto x) {
    using T = decltype(x);
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  });
}
Tensor relu(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Relu, a);
  return unary_all(a, "relu", [](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); });
}
// Stable for both signs: for x < 0, exp(x) / (1 + exp(x)) avoids exp(-x) overflowing.
Tensor sigmoid(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Sigmoid, a);
  return unary_float(a, "sigmoid", [](auto x) {
    using T = decltype(x);
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  });
}
Tensor tanh(const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Tanh, a);
  return unary_float(a, "tanh", [](auto x) { return std::tanh(x); });
}
Tensor pow(const Tensor& a, double p) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Pow, a, p);
  if (p == 2.0) return unary_float(a, "pow", [](auto x) { return x * x; });
  if (p == 0.5) return unary_float(a, "pow", [](auto x) { return std::sqrt(x); });
  if (p == 1.0) return unary_float(a, "pow", [](auto x) { return x; });
  return unary_float(a, "pow", [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); });
}
Tensor clamp(const Tensor& a, double lo, double hi) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::Clamp, a, lo, hi);
  OKD_CHECK(!(lo > hi), "clamp: lower bound ", lo, " is above the upper bound ", hi);
  return unary_all(a, "clamp", [lo, hi](auto x) {
    double v = static_cast<double>(x);
    return static_cast<decltype(x)>(v < lo ? lo : (v > hi ? hi : v));
  });
}

// ---- binary ----
Tensor add(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Add, a, b);
  return binary_all(a, b, "add", [](auto x, auto y) { return x + y; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Sub, a, b);
  return binary_all(a, b, "sub", [](auto x, auto y) { return x - y; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Mul, a, b);
  return binary_all(a, b, "mul", [](auto x, auto y) { return x * y; });
}
Tensor div(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Div, a, b);
  if (!is_floating(a.dtype()) && a.dtype() == b.dtype()) {
    OKD_FAIL("div: integer division is not supported (", dtype_name(a.dtype()),
             "); convert to a floating dtype first");
  }
  return binary_float(a, b, "div", [](auto x, auto y) { return x / y; });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Pow, a, b);
  return binary_float(a, b, "pow", [](auto x, auto y) { return std::pow(x, y); });
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Maximum, a, b);
  return binary_all(a, b, "maximum", [](auto x, auto y) {
    if (x != x) return x;  // NaN propagates, as in PyTorch
    if (y != y) return y;
    return x > y ? x : y;
  });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::binary(cuda::Binary::Minimum, a, b);
  return binary_all(a, b, "minimum", [](auto x, auto y) {
    if (x != x) return x;
    if (y != y) return y;
    return x < y ? x : y;
  });
}

// ---- scalar ----
Tensor add(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::AddScalar, a, s);
  return unary_all(a, "add", [s](auto x) { return static_cast<decltype(x)>(x + s); });
}
Tensor mul(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::MulScalar, a, s);
  return unary_all(a, "mul", [s](auto x) { return static_cast<decltype(x)>(x * s); });
}
Tensor rsub(double s, const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::RsubScalar, a, s);
  return unary_all(a, "rsub", [s](auto x) { return static_cast<decltype(x)>(s - x); });
}
Tensor rdiv(double s, const Tensor& a) {
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::RdivScalar, a, s);
  return unary_float(a, "rdiv", [s](auto x) { return static_cast<decltype(x)>(s / x); });
}

Tensor round_bf16(const Tensor& a) {
  OKD_CHECK(a.dtype() == DType::Float32, "round_bf16: expected a float32 tensor, got ", a.desc());
  if (cuda::on_cuda(a)) return cuda::unary(cuda::Unary::RoundBf16, a);
  return unary_float(a, "round_bf16", [](auto x) { return bf16::round(static_cast<float>(x)); });
}

// ---- comparisons ----
Tensor eq(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Eq, a, b);
  return compare(a, b, "eq", [](auto x, auto y) { return x == y; });
}
Tensor ne(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Ne, a, b);
  return compare(a, b, "ne", [](auto x, auto y) { return x != y; });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Lt, a, b);
  return compare(a, b, "lt", [](auto x, auto y) { return x < y; });
}
Tensor le(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Le, a, b);
  return compare(a, b, "le", [](auto x, auto y) { return x <= y; });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Gt, a, b);
  return compare(a, b, "gt", [](auto x, auto y) { return x > y; });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(a, b)) return cuda::compare(cuda::Compare::Ge, a, b);
  return compare(a, b, "ge", [](auto x, auto y) { return x >= y; });
}
Tensor gt(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::compare_scalar(cuda::Compare::Gt, a, s);
  return compare_scalar(a, s, "gt", [](double x, double y) { return x > y; });
}
Tensor lt(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::compare_scalar(cuda::Compare::Lt, a, s);
  return compare_scalar(a, s, "lt", [](double x, double y) { return x < y; });
}
Tensor ge(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::compare_scalar(cuda::Compare::Ge, a, s);
  return compare_scalar(a, s, "ge", [](double x, double y) { return x >= y; });
}
Tensor le(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::compare_scalar(cuda::Compare::Le, a, s);
  return compare_scalar(a, s, "le", [](double x, double y) { return x <= y; });
}
Tensor eq(const Tensor& a, double s) {
  if (cuda::on_cuda(a)) return cuda::compare_scalar(cuda::Compare::Eq, a, s);
  return compare_scalar(a, s, "eq", [](double x, double y) { return x == y; });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (cuda::on_cuda(cond) || cuda::on_cuda(a, b)) return cuda::where(cond, a, b);
  OKD_CHECK(cond.dtype() == DType::UInt8, "where: the condition must be a uint8 mask, got ",
            dtype_name(cond.dtype()));
  check_same(a, b, "where");
  check_cpu(cond, "where");
  Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, a.dtype());
  if (out.numel() == 0) return out;
  auto L = detail::make_loop<4>(
      shape, {out.strides(), detail::broadcast_strides(cond, shape),
              detail::broadcast_strides(a, shape), detail::broadcast_strides(b, shape)});
  OKD_DISPATCH_ALL(a.dtype(), "where", [&]<class T>() {
    T* po = out.data<T>();
    const uint8_t* pc = cond.data<uint8_t>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    detail::for_each_row<4>(
        L, [&](const std::array<int64_t, 4>& off, int64_t len, const std::array<int64_t, 4>& st) {
          for (int64_t i = 0; i < len; ++i)
            po[off[0] + i * st[0]] =
                pc[off[1] + i * st[1]] ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
        });
  });
  return out;
}

// ---- in place ----
namespace {
template <class F>
void inplace(const Tensor& dst, const Tensor& src, const char* op, F f) {
  check_same(dst, src, op);
  Shape shape = broadcast_shapes(dst.shape(), src.shape(), op);
  OKD_CHECK(shape == dst.shape(), op, ": source of shape ", shape_str(src.shape()),
            " does not broadcast to the destination shape ", shape_str(dst.shape()));
  dst.impl()->storage->bump_version();
  if (dst.numel() == 0) return;
  OKD_DISPATCH_ALL(dst.dtype(), op, [&]<class T>() {
    T* pd = dst.data<T>();
    const T* ps = src.data<T>();
    if (dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
      parallel_for(0, dst.numel(), kGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) pd[i] = static_cast<T>(f(pd[i], ps[i]));
      });
      return;
    }
    auto L = detail::make_loop<2>(shape, {dst.strides(), detail::broadcast_strides(src, shape)});
    detail::for_each_row<2>(
        L, [&](const std::array<int64_t, 2>& off, int64_t len, const std::array<int64_t, 2>& st) {
          for (int64_t i = 0; i < len; ++i) {
            T& d = pd[off[0] + i * st[0]];
            d = static_cast<T>(f(d, ps[off[1] + i * st[1]]));
          }
        });
  });
}
}  // namespace

void add_(const Tensor& dst, const Tensor& src) {
  if (cuda::on_cuda(dst, src)) return cuda::binary_(cuda::Binary::Add, dst, src);
  inplace(dst, src, "add_", [](auto d, auto s) { return d + s; });
}
void add_(const Tensor& dst, const Tensor& src, double alpha) {
  if (cuda::on_cuda(dst, src)) return cuda::binary_(cuda::Binary::Add, dst, src, alpha);
  inplace(dst, src, "add_", [alpha](auto d, auto s) { return d + alpha * s; });
}
void mul_(const Tensor& dst, const Tensor& src) {
  if (cuda::on_cuda(dst, src)) return cuda::binary_(cuda::Binary::Mul, dst, src);
  inplace(dst, src, "mul_", [](auto d, auto s) { return d * s; });
}
void mul_(const Tensor& dst, double s) {
  if (cuda::on_cuda(dst)) return cuda::mul_scalar_(dst, s);
  check_cpu(dst, "mul_");
  dst.impl()->storage->bump_version();
  if (dst.numel() == 0) return;
  auto L = detail::make_loop<1>(dst.shape(), {dst.strides()});
  OKD_DISPATCH_ALL(dst.dtype(), "mul_", [&]<class T>() {
    T* p = dst.data<T>();
    detail::for_each_row<1>(
        L, [&](const std::array<int64_t, 1>& off, int64_t len, const std::array<int64_t, 1>& st) {
          for (int64_t i = 0; i < len; ++i)
            p[off[0] + i * st[0]] = static_cast<T>(p[off[0] + i * st[0]] * s);
        });
  });
}

}  // namespace okd::ops
