// Raw reductions over any set of dims. An empty dims list means every dim. keepdim keeps the
// reduced dims as size 1. Accumulation is in double for float32 inputs' sums (pairwise-free
// but exact enough: a float32 sum of 1e7 elements is within 1e-5 relative of float64).
#pragma once
#include <utility>

#include "tensor/tensor.h"

namespace okd::ops {

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel's correction when unbiased (divides by n-1).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
Tensor std(const Tensor& a, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
Tensor amax(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// log(sum(exp(a))) computed stably (max subtracted).
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
// (sum |a|^p)^(1/p); p = 2 by default.
Tensor norm(const Tensor& a, double p = 2.0, const std::vector<int64_t>& dims = {},
            bool keepdim = false);

// Values and int64 indices of the max/min along one dim (first occurrence wins ties).
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);

// Reduction dims normalised against rank: sorted, unique, non-negative; empty means all dims.
// Throws naming op for a repeated or out-of-range dim.
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t rank, const char* op);

// Sums a (broadcast) gradient back to shape: the reverse of broadcasting.
Tensor sum_to(const Tensor& a, const Shape& shape);

}  // namespace okd::ops
