// Differentiable joining, splitting and indexing: cat, stack, split/chunk (composed of slice),
// index_select, gather, scatter_add, topk and kthvalue. Index tensors are int64 and carry no
// gradient. Raw kernels in tensor/ops/index.h; backward formulas in index.cpp.
#pragma once
#include <utility>

#include "autograd/tape.h"

namespace okd {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Consecutive pieces of split_size along dim (the last may be smaller); each a slice.
std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim);
std::vector<Tensor> split_sizes(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim);
// chunks pieces of ceil(n / chunks) (PyTorch's rule; there may be fewer pieces).
std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim);

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
// t with out[index[i][j]][j] += src[i][j] (dim 0); t and src both get gradients.
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
// Values are differentiable (the gradient goes to the selected elements), indices are int64.
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim = -1, bool largest = true,
                               bool sorted = true);
std::pair<Tensor, Tensor> kthvalue(const Tensor& t, int64_t k, int64_t dim = -1,
                                   bool keepdim = false);

}  // namespace okd
