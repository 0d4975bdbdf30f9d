// Small helpers shared by the differentiable functions in autograd/functions/ (internal: not part
// of the public API and not included by functions.h). They keep each backward to the formula.
#pragma once
#include <algorithm>
#include <vector>

#include "autograd/tape.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd::autograd_detail {

// Some raw ops return their input itself when there is nothing to do (contiguous() of a
// contiguous tensor, to() the same dtype, squeeze of a non-1 dim). Recording that handle as the
// op's output would relabel the input as its own product, so the output gets its own handle.
inline Tensor distinct_output(const Tensor& out, const Tensor& in) {
  if (!out.is_same(in)) return out;
  return make_view(in, in.shape(), in.strides(), in.offset());
}

// A 0-d zero of t's dtype and device, the "else" branch of where() in masked gradients.
inline Tensor zero_scalar(const Tensor& t) { return scalar_tensor(0.0, t.dtype(), t.device()); }

// A uint8 mask as 0/1 values of like's dtype, to multiply a gradient with.
inline Tensor mask_as(const Tensor& mask, const Tensor& like) {
  return ops::to(mask, like.dtype());
}

// Reduction dims normalised against rank (sorted, unique, non-negative): the raw layer's helper.
using ops::normalize_dims;

// The shape a reduction over dims has with keepdim = true.
inline Shape keepdim_shape(const Shape& in_shape, const std::vector<int64_t>& norm_dims) {
  Shape s = in_shape;
  for (int64_t d : norm_dims) s[d] = 1;
  return s;
}

// A reduction's output (or its gradient) reshaped to the keepdim shape, so that it broadcasts
// against the input: the first step of every reduction backward.
inline Tensor as_keepdim(const Tensor& t, const Shape& in_shape,
                         const std::vector<int64_t>& norm_dims) {
  return ops::reshape(t, keepdim_shape(in_shape, norm_dims));
}

// g (the gradient of a reduction's output) broadcast back over the reduced dims and materialised:
// d(sum x)/dx_i = 1, so each input element receives the gradient of the output it went into.
inline Tensor expand_back(const Tensor& g, const Shape& in_shape,
                          const std::vector<int64_t>& norm_dims) {
  return ops::contiguous(ops::expand(as_keepdim(g, in_shape, norm_dims), in_shape));
}

// Number of input elements reduced into each output element.
inline int64_t reduced_count(const Shape& in_shape, const std::vector<int64_t>& norm_dims) {
  int64_t n = 1;
  for (int64_t d : norm_dims) n *= in_shape[d];
  return n;
}

}  // namespace okd::autograd_detail
