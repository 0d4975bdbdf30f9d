// Raw joining, splitting, indexing and selection ops. Index tensors are int64 and every index
// must lie in [0, size of the indexed dim) (no negative indices, as in PyTorch); a bad one is an
// okd::Error naming the op, the index and the size. All four dtypes are supported.
#pragma once
#include <utility>

#include "tensor/tensor.h"

namespace okd::ops {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Views of consecutive pieces of split_size (the last may be smaller).
std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim);
std::vector<Tensor> split_sizes(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim);

// out = t indexed by index (1-D, repeats allowed) along dim.
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
// out[i][j] = t[index[i][j]][j] for dim 0 (and so on): index has t's rank.
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
// out = t with out[index[i][j]][j] += src[i][j] for dim 0 (and so on). t is not modified.
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
// Positions drawn without replacement, K per row, from given uniforms (Robert Floyd's algorithm):
// u float64 [B, K] in [0, 1) (values outside are clamped into it), counts int64 [B], each in
// [1, max_count] (max_count, known on the host, sizes a device's scratch). Row b holds K positions
// in [0, M = counts[b]): distinct, a uniformly random K-subset, when K <= M; K independent draws
// floor(u M) when K > M (replacement only where needed). Floyd: for j = 0..K-1 and n = M - K + j,
// t = floor(u_j (n + 1)); take t, or n when t was taken before. Int64 [B, K]; deterministic in u,
// the same on every device.
Tensor sample_distinct(const Tensor& u, const Tensor& counts, int64_t max_count);
// [N] int64 labels -> [N, num_classes] in dtype (float32 by default).
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::Float32);

// The k largest (or smallest) values along dim and their int64 indices, always sorted by value;
// equal values come lower index first, NaN counts as larger than any number (as in PyTorch).
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim = -1, bool largest = true,
                               bool sorted = true);
// The k-th smallest value (k from 1) along dim and its index (the k-th of topk's ascending order).
std::pair<Tensor, Tensor> kthvalue(const Tensor& t, int64_t k, int64_t dim = -1,
                                   bool keepdim = false);

}  // namespace okd::ops
