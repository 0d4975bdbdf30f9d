// Differentiable matrix product. matmul follows NumPy: [M,K]x[K,N] -> [M,N], batch dims broadcast
// ([B,M,K]x[K,N] -> [B,M,N]), a 1-D left operand is a row vector and a 1-D right operand a column
// vector (the added dim is removed from the result). Backward in matmul.cpp.
#pragma once
#include "autograd/tape.h"

namespace okd {

Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace okd
