// Raw (non-differentiable) view and layout ops: they share storage where PyTorch's do.
// autograd/functions/view.cpp wraps each of them with its gradient.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

// One dim of shape may be -1 (inferred). view() requires a layout that can be viewed without a
// copy and throws otherwise; reshape() copies when it must.
Tensor view(const Tensor& t, const Shape& shape);
Tensor reshape(const Tensor& t, const Shape& shape);
// Flattens dims start..end (inclusive) into one.
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
// Elements start .. start+length-1 along dim.
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
// Python's t[start:end:step] along dim (negative start/end count from the end; step > 0).
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// t[..., index, ...]: removes dim.
Tensor select(const Tensor& t, int64_t dim, int64_t index);
// Size-1 dims (or -1 to keep) broadcast to shape without copying (stride 0).
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t);               // all size-1 dims
Tensor squeeze(const Tensor& t, int64_t dim);  // that dim, if size 1
Tensor unsqueeze(const Tensor& t, int64_t dim);

}  // namespace okd::ops
