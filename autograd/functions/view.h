// Differentiable views and copies: reshape/view/flatten, transpose, permute, slice/narrow, select,
// expand, squeeze/unsqueeze, contiguous, clone and dtype conversion. Views share storage with
// their input (tensor/ops/view.h); their backward puts dout back into the input's geometry.
#pragma once
#include "autograd/tape.h"

namespace okd {

// -1 in shape is inferred. view() throws when the layout needs a copy; reshape() copies then.
// Both record Op::reshape (the gradient does not care whether a copy was made).
Tensor reshape(const Tensor& t, const Shape& shape);
Tensor view(const Tensor& t, const Shape& shape);
// Composes reshape: dims start..end (inclusive) merged into one.
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
// Python's t[start:end:step] along dim (Op::slice). narrow composes it: start .. start+length-1.
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
// t[..., index, ...], removing dim.
Tensor select(const Tensor& t, int64_t dim, int64_t index);
// Size-1 dims (or -1: keep) broadcast to shape without a copy.
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
// dtype conversion (Op::to_dtype); the gradient is converted back to the input's dtype. Only a
// conversion to a floating dtype is recorded (integers carry no gradient).
Tensor to(const Tensor& t, DType dtype);

}  // namespace okd
