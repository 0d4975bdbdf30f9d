// Differentiable reductions. dims: the dims reduced (negative count from the end; empty = all);
// keepdim keeps them as size 1. Forward kernels are in tensor/ops/reduce.h; backward formulas are
// under each forward in reduce.cpp and listed in docs/autograd.md.
#pragma once
#include <utility>

#include "autograd/tape.h"

namespace okd {

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// unbiased: divide by n - 1 (Bessel's correction) instead of n.
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
Tensor std(const Tensor& a, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
// The gradient is split evenly among tied extrema, as PyTorch does for amax/amin.
Tensor amax(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Values (differentiable) and int64 indices of the max/min along dim. The gradient flows to the
// element at the returned index only (the first occurrence on ties).
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
// (sum |a|^p)^(1/p). The gradient at a zero norm is taken as 0 (PyTorch's choice for p = 2).
Tensor norm(const Tensor& a, double p = 2.0, const std::vector<int64_t>& dims = {},
            bool keepdim = false);

}  // namespace okd
