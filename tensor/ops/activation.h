// Raw fused backward kernels of activations, one pass over memory instead of a mask, a select
// and a multiply: relu_backward(dy, y) = dy where y > 0, else 0.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

Tensor relu_backward(const Tensor& dy, const Tensor& y);

}  // namespace okd::ops
