// Differentiable views and copies. A view's backward is the inverse geometry applied to dout:
// reshape back, transpose back, the inverse permutation, or dout written into a zero tensor at
// the place the slice/select took its elements from (the gradient of "take a part" is "put it
// back, zeros elsewhere"). expand sums dout over the broadcast dims.
#include "autograd/functions/view.h"

#include "autograd/functions/common.h"
#include "tensor/ops/reduce.h"

namespace okd {

using autograd_detail::distinct_output;

namespace {
using Needs = std::vector<bool>;

// Records an op whose gradient is dout reshaped to the input's shape (reshape, view, squeeze,
// unsqueeze: they only add, drop or regroup dims, never reorder elements).
Tensor record_reshape_like(Op op, const Tensor& t, Tensor out) {
  out = distinct_output(out, t);
  if (needs_record(t)) {
    Shape in_shape = t.shape();
    record(op, {t}, {out}, [in_shape](const TensorList& g, const Needs&) -> TensorList {
      return {ops::reshape(g[0], in_shape)};
    });
  }
  return out;
}
}  // namespace

Tensor reshape(const Tensor& t, const Shape& shape) {
  return record_reshape_like(Op::reshape, t, ops::reshape(t, shape));
}
Tensor view(const Tensor& t, const Shape& shape) {
  return record_reshape_like(Op::reshape, t, ops::view(t, shape));
}
Tensor squeeze(const Tensor& t) { return record_reshape_like(Op::squeeze, t, ops::squeeze(t)); }
Tensor squeeze(const Tensor& t, int64_t dim) {
  return record_reshape_like(Op::squeeze, t, ops::squeeze(t, dim));
}
Tensor unsqueeze(const Tensor& t, int64_t dim) {
  return record_reshape_like(Op::unsqueeze, t, ops::unsqueeze(t, dim));
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  if (t.dim() == 0) return reshape(t, {1});
  int64_t s = wrap_dim(start_dim, t.dim(), "flatten"), e = wrap_dim(end_dim, t.dim(), "flatten");
  OKD_CHECK(s <= e, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim, " for ",
            shape_str(t.shape()));
  Shape out(t.shape().begin(), t.shape().begin() + s);
  out.push_back(-1);
  out.insert(out.end(), t.shape().begin() + e + 1, t.shape().end());
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) merged *= t.shape()[i];
  out[s] = merged;
  return reshape(t, out);
}

// d transpose(t, i, j) = transpose(dout, i, j): a swap is its own inverse.
Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1) {
  Tensor out = distinct_output(ops::transpose(t, dim0, dim1), t);
  if (needs_record(t))
    record(Op::transpose, {t}, {out},
           [dim0, dim1](const TensorList& g, const Needs&) -> TensorList {
             return {ops::transpose(g[0], dim0, dim1)};
           });
  return out;
}

// out dim i is input dim dims[i], so dout is permuted by the inverse: inverse[dims[i]] = i.
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  Tensor out = distinct_output(ops::permute(t, dims), t);
  if (needs_record(t)) {
    std::vector<int64_t> inverse(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
      inverse[wrap_dim(dims[i], t.dim(), "permute")] = static_cast<int64_t>(i);
    record(Op::permute, {t}, {out}, [inverse](const TensorList& g, const Needs&) -> TensorList {
      return {ops::permute(g[0], inverse)};
    });
  }
  return out;
}

// dt = zeros with dt[start:end:step] = dout along dim.
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = distinct_output(ops::slice(t, dim, start, end, step), t);
  if (needs_record(t)) {
    Shape in_shape = t.shape();
    record(Op::slice, {t}, {out},
           [in_shape, dim, start, end, step](const TensorList& g, const Needs&) -> TensorList {
             Tensor dt = zeros(in_shape, g[0].dtype(), g[0].device());
             ops::copy_(ops::slice(dt, dim, start, end, step), g[0]);
             return {dt};
           });
  }
  return out;
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, t.dim(), "narrow");
  int64_t n = t.shape()[d];
  int64_t s = start < 0 ? start + n : start;
  OKD_CHECK(s >= 0 && length >= 0 && s + length <= n, "narrow: [", s, ", ", s + length,
            ") is out of range for dim ", d, " of size ", n, " (input ", shape_str(t.shape()), ")");
  return slice(t, d, s, s + length, 1);
}

// dt = zeros with dt[..., index, ...] = dout.
Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  Tensor out = ops::select(t, dim, index);
  if (needs_record(t)) {
    Shape in_shape = t.shape();
    record(Op::select, {t}, {out},
           [in_shape, dim, index](const TensorList& g, const Needs&) -> TensorList {
             Tensor dt = zeros(in_shape, g[0].dtype(), g[0].device());
             ops::copy_(ops::select(dt, dim, index), g[0]);
             return {dt};
           });
  }
  return out;
}

// Each input element is read by every output element it was broadcast to: dt = sum_to(dout).
Tensor expand(const Tensor& t, const Shape& shape) {
  Tensor out = distinct_output(ops::expand(t, shape), t);
  if (needs_record(t)) {
    Shape in_shape = t.shape();
    record(Op::expand, {t}, {out}, [in_shape](const TensorList& g, const Needs&) -> TensorList {
      return {ops::sum_to(g[0], in_shape)};
    });
  }
  return out;
}

// Copies are the identity on values: dt = dout.
Tensor contiguous(const Tensor& t) {
  Tensor out = distinct_output(ops::contiguous(t), t);
  if (needs_record(t))
    record(Op::contiguous, {t}, {out},
           [](const TensorList& g, const Needs&) -> TensorList { return {g[0]}; });
  return out;
}

Tensor clone(const Tensor& t) {
  Tensor out = ops::clone(t);
  if (needs_record(t))
    record(Op::clone, {t}, {out},
           [](const TensorList& g, const Needs&) -> TensorList { return {g[0]}; });
  return out;
}

// dt = dout converted back to t's dtype.
Tensor to(const Tensor& t, DType dtype) {
  Tensor out = distinct_output(ops::to(t, dtype), t);
  if (is_floating(dtype) && needs_record(t)) {
    DType in_dtype = t.dtype();
    record(Op::to_dtype, {t}, {out}, [in_dtype](const TensorList& g, const Needs&) -> TensorList {
      return {ops::to(g[0], in_dtype)};
    });
  }
  return out;
}

}  // namespace okd
