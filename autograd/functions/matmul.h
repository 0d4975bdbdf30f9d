// Differentiable matrix product. matmul follows NumPy: [M,K]x[K,N] -> [M,N], batch dims broadcast
// ([B,M,K]x[K,N] -> [B,M,N]), a 1-D left operand is a row vector and a 1-D right operand a column
// vector (the added dim is removed from the result). Backward in matmul.cpp.
#pragma once
#include "autograd/tape.h"

namespace okd {

// precision BFloat16 (mixed precision, tensor/dtype.h): the forward and both gradient products
// use bfloat16-rounded operands with float32 sums, as cuBLAS does with bf16 operands.
Tensor matmul(const Tensor& a, const Tensor& b, Precision precision = Precision::Float32);

}  // namespace okd
