// Differentiable reductions. Every backward starts the same way: the output gradient dout is
// reshaped to the keepdim shape so it broadcasts against the input (as_keepdim), then multiplied
// by the local derivative d out / d x_i. Saved tensors are the input and/or the output, whichever
// the formula reads.
#include "autograd/functions/reduce.h"

#include <cmath>

#include "autograd/functions/common.h"
#include "tensor/ops/index.h"
#include "tensor/ops/reduce.h"

namespace okd {

using autograd_detail::as_keepdim;
using autograd_detail::expand_back;
using autograd_detail::mask_as;
using autograd_detail::normalize_dims;
using autograd_detail::reduced_count;
using autograd_detail::zero_scalar;

namespace {
using Needs = std::vector<bool>;
}

// d sum / d x_i = 1: every input element receives the gradient of the output it was summed into.
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = ops::sum(a, dims, keepdim);
  if (needs_record(a)) {
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "sum");
    record(Op::sum, {a}, {out}, [in_shape, nd](const TensorList& g, const Needs&) -> TensorList {
      return {expand_back(g[0], in_shape, nd)};
    });
  }
  return out;
}

// d mean / d x_i = 1/n, n the number of elements reduced into one output.
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = ops::mean(a, dims, keepdim);
  if (needs_record(a)) {
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "mean");
    double n = static_cast<double>(reduced_count(in_shape, nd));
    record(Op::mean, {a}, {out},
           [in_shape, nd, n](const TensorList& g, const Needs&) -> TensorList {
             return {ops::mul(expand_back(g[0], in_shape, nd), 1.0 / n)};
           });
  }
  return out;
}

// var = sum (x_i - m)^2 / (n - u), u = 1 when unbiased: d var / d x_i = 2 (x_i - m) / (n - u)
// (the terms through m cancel because sum (x_i - m) = 0).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  Tensor out = ops::var(a, dims, unbiased, keepdim);
  if (needs_record(a)) {
    Saved save_a(a);
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "var");
    double denom = static_cast<double>(reduced_count(in_shape, nd)) - (unbiased ? 1.0 : 0.0);
    record(Op::var, {a}, {out},
           [save_a, in_shape, nd, denom](const TensorList& g, const Needs&) -> TensorList {
             const Tensor& x = save_a.get(Op::var);
             Tensor centered = ops::sub(x, ops::mean(x, nd, true));
             return {ops::mul(ops::mul(centered, as_keepdim(g[0], in_shape, nd)), 2.0 / denom)};
           },
           {a});
  }
  return out;
}

// std = sqrt(var): d std / d x_i = (x_i - m) / ((n - u) std). Where std = 0 (all elements
// equal) the gradient is taken as 0 instead of 0/0.
Tensor std(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  Tensor out = ops::std(a, dims, unbiased, keepdim);
  if (needs_record(a)) {
    Saved save_a(a), save_out(out);
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "std");
    double denom = static_cast<double>(reduced_count(in_shape, nd)) - (unbiased ? 1.0 : 0.0);
    record(
        Op::std, {a}, {out},
        [save_a, save_out, in_shape, nd, denom](const TensorList& g, const Needs&) -> TensorList {
          const Tensor& x = save_a.get(Op::std);
          Tensor s = as_keepdim(save_out.get(Op::std), in_shape, nd);
          Tensor centered = ops::sub(x, ops::mean(x, nd, true));
          Tensor scale = ops::div(as_keepdim(g[0], in_shape, nd), ops::mul(s, denom));
          scale = ops::where(ops::eq(s, 0.0), zero_scalar(scale), scale);
          return {ops::mul(centered, scale)};
        },
        {a, out});
  }
  return out;
}

namespace {
// amax/amin: the gradient goes to every element equal to the extremum, split evenly among them
// (PyTorch's amax rule): d/dx_i = [x_i == y] / #{j : x_j == y}.
Tensor extremum_all(Op op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
                    bool is_max) {
  Tensor out = is_max ? ops::amax(a, dims, keepdim) : ops::amin(a, dims, keepdim);
  if (needs_record(a)) {
    Saved save_a(a), save_out(out);
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), op_name(op));
    record(op, {a}, {out},
           [op, save_a, save_out, in_shape, nd](const TensorList& g, const Needs&) -> TensorList {
             const Tensor& x = save_a.get(op);
             Tensor hit = mask_as(ops::eq(x, as_keepdim(save_out.get(op), in_shape, nd)), x);
             Tensor count = ops::sum(hit, nd, true);
             return {ops::mul(hit, ops::div(as_keepdim(g[0], in_shape, nd), count))};
           },
           {a, out});
  }
  return out;
}

// max/min along one dim: the gradient goes to the element at the returned index,
// dx = scatter_add(zeros, dim, index, dvalues).
std::pair<Tensor, Tensor> extremum_dim(Op op, const Tensor& a, int64_t dim, bool keepdim,
                                       bool is_max) {
  auto [values, indices] = is_max ? ops::max(a, dim, keepdim) : ops::min(a, dim, keepdim);
  if (needs_record(a)) {
    Saved save_idx(indices);
    Shape in_shape = a.shape();
    int64_t d = wrap_dim(dim, a.dim(), op_name(op));
    record(op, {a}, {values},
           [op, save_idx, in_shape, d, keepdim](const TensorList& g, const Needs&) -> TensorList {
             Tensor idx = save_idx.get(op), dv = g[0];
             if (!keepdim) {
               idx = ops::unsqueeze(idx, d);
               dv = ops::unsqueeze(dv, d);
             }
             return {ops::scatter_add(zeros(in_shape, dv.dtype(), dv.device()), d, idx, dv)};
           },
           {indices});
  }
  return {values, indices};
}
}  // namespace

Tensor amax(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum_all(Op::amax, a, dims, keepdim, true);
}
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum_all(Op::amin, a, dims, keepdim, false);
}
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) {
  return extremum_dim(Op::max_dim, a, dim, keepdim, true);
}
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) {
  return extremum_dim(Op::min_dim, a, dim, keepdim, false);
}

// y = log sum_j exp(x_j): d y / d x_i = exp(x_i - y), the softmax of x along the reduced dims.
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = ops::logsumexp(a, dims, keepdim);
  if (needs_record(a)) {
    Saved save_a(a), save_out(out);
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "logsumexp");
    record(Op::logsumexp, {a}, {out},
           [save_a, save_out, in_shape, nd](const TensorList& g, const Needs&) -> TensorList {
             Tensor y = as_keepdim(save_out.get(Op::logsumexp), in_shape, nd);
             Tensor softmax = ops::exp(ops::sub(save_a.get(Op::logsumexp), y));
             return {ops::mul(softmax, as_keepdim(g[0], in_shape, nd))};
           },
           {a, out});
  }
  return out;
}

// y = (sum |x|^p)^(1/p): d y / d x_i = sign(x_i) |x_i|^(p-1) / y^(p-1); for p = 2 that is x_i / y,
// for p = 1 sign(x_i), for p = inf the amax rule on |x| (split among ties). Where y = 0 the
// gradient is taken as 0 (a subgradient; PyTorch does the same for p = 2).
Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  OKD_CHECK(p > 0, "norm: p must be positive, got ", p);
  Tensor out = ops::norm(a, p, dims, keepdim);
  if (needs_record(a)) {
    Saved save_a(a), save_out(out);
    Shape in_shape = a.shape();
    std::vector<int64_t> nd = normalize_dims(dims, a.dim(), "norm");
    record(Op::norm, {a}, {out},
           [save_a, save_out, in_shape, nd, p](const TensorList& g, const Needs&) -> TensorList {
             const Tensor& x = save_a.get(Op::norm);
             Tensor y = as_keepdim(save_out.get(Op::norm), in_shape, nd);
             Tensor local;
             if (std::isinf(p)) {
               Tensor hit = mask_as(ops::eq(ops::abs(x), y), x);
               local = ops::div(ops::mul(hit, ops::sign(x)), ops::sum(hit, nd, true));
             } else if (p == 1.0) {
               local = ops::sign(x);
             } else if (p == 2.0) {
               local = ops::div(x, y);
             } else {
               local = ops::div(ops::mul(ops::sign(x), ops::pow(ops::abs(x), p - 1.0)),
                                ops::pow(y, p - 1.0));
             }
             Tensor dx = ops::mul(local, as_keepdim(g[0], in_shape, nd));
             return {ops::where(ops::eq(y, 0.0), zero_scalar(dx), dx)};
           },
           {a, out});
  }
  return out;
}

}  // namespace okd
