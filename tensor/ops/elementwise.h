// Raw elementwise ops with NumPy broadcasting. Binary ops require both inputs to have the same
// dtype and device (no silent promotion); scalar overloads use the tensor's dtype. Comparisons
// return uint8 masks (1 true, 0 false). Math ops (exp, log, ...) require a floating dtype.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

// --- unary ---
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);  // -1, 0, 1
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor clamp(const Tensor& a, double lo, double hi);  // use +-infinity for one-sided
// float32 only: each value rounded to the nearest bfloat16, ties to even (tensor/bf16.h), kept in
// float32. The rounding of mixed-precision convolution and matmul (Precision::BFloat16).
Tensor round_bf16(const Tensor& a);

// --- binary, broadcasting ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// --- with a scalar ---
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a

// --- comparisons (uint8 result) ---
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor eq(const Tensor& a, double s);

// cond ? a : b, all three broadcast together; cond is uint8 (nonzero = true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// --- in place (dst keeps its shape; src broadcasts to it). Bump dst's version. ---
void add_(const Tensor& dst, const Tensor& src);                // dst += src
void add_(const Tensor& dst, const Tensor& src, double alpha);  // dst += alpha * src
void mul_(const Tensor& dst, double s);                         // dst *= s
void mul_(const Tensor& dst, const Tensor& src);                // dst *= src

}  // namespace okd::ops
