// Differentiable elementwise functions: unary math, broadcasting binary ops, ops with a scalar,
// where(), and the arithmetic operators on Tensor. Each computes the raw op (tensor/ops/
// elementwise.h) and, when an input requires grad, records a tape entry whose backward sits
// under the forward in elementwise.cpp. Gradients of broadcast inputs are summed back to the
// input's shape (the reverse of broadcasting).
#pragma once
#include "autograd/tape.h"

namespace okd {

// --- unary ---
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
// Gradient 1 inside [lo, hi] (bounds included, as PyTorch), 0 outside. +-infinity for one side.
Tensor clamp(const Tensor& a, double lo, double hi);

// --- binary, broadcasting (same dtype required) ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// a^b; d/db = a^b log a (taken as 0 where a == 0, as PyTorch does).
Tensor pow(const Tensor& a, const Tensor& b);
// Where a == b the gradient is split half/half between a and b (PyTorch >= 1.12 semantics).
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// --- with a scalar ---
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);  // records add_scalar(-s)
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);   // records mul_scalar(1/s)
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a

// cond ? a : b with all three broadcast together; cond is a uint8 mask and gets no gradient.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// --- operators ---
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double s);
Tensor operator-(const Tensor& a, double s);
Tensor operator*(const Tensor& a, double s);
Tensor operator/(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(double s, const Tensor& a);

}  // namespace okd
