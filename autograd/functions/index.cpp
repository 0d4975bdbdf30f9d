// Differentiable joining and indexing. The pattern throughout: an op that *reads* elements at
// indices (gather, index_select, topk, kthvalue) has a backward that *adds* dout back at the same
// indices (scatter_add into zeros), and an op that adds at indices (scatter_add) has a backward
// that reads there (gather). cat/stack hand each input its own part of dout.
#include "autograd/functions/index.h"

#include "autograd/functions/common.h"
#include "autograd/functions/view.h"
#include "tensor/ops/index.h"

namespace okd {

namespace {
using Needs = std::vector<bool>;

// dt = zeros(shape) with dt[index along dim] += dv; index and dv have the same shape.
Tensor scatter_into_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& dv) {
  return ops::scatter_add(zeros(shape, dv.dtype(), dv.device()), dim, index, dv);
}
}  // namespace

// d cat: input i gets the slice of dout it was copied into.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = ops::cat(tensors, dim);
  if (needs_record(tensors)) {
    int64_t d = wrap_dim(dim, out.dim(), "cat");
    std::vector<int64_t> sizes;
    for (const auto& t : tensors) sizes.push_back(t.shape()[d]);
    record(Op::cat, tensors, {out},
           [d, sizes](const TensorList& g, const Needs& needs) -> TensorList {
             TensorList dts(sizes.size());
             int64_t start = 0;
             for (size_t i = 0; i < sizes.size(); ++i) {
               if (needs[i]) dts[i] = ops::narrow(g[0], d, start, sizes[i]);
               start += sizes[i];
             }
             return dts;
           });
  }
  return out;
}

// d stack: input i gets dout[..., i, ...] along the new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = ops::stack(tensors, dim);
  if (needs_record(tensors)) {
    int64_t d = wrap_dim(dim, out.dim(), "stack");
    record(Op::stack, tensors, {out}, [d](const TensorList& g, const Needs& needs) -> TensorList {
      TensorList dts(needs.size());
      for (size_t i = 0; i < needs.size(); ++i)
        if (needs[i]) dts[i] = ops::select(g[0], d, static_cast<int64_t>(i));
      return dts;
    });
  }
  return out;
}

std::vector<Tensor> split_sizes(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    OKD_CHECK(s >= 0, "split: negative size in ", shape_str(sizes));
    total += s;
  }
  OKD_CHECK(total == t.shape()[d], "split: sizes ", shape_str(sizes), " sum to ", total,
            " but dim ", d, " of ", shape_str(t.shape()), " has ", t.shape()[d], " elements");
  std::vector<Tensor> pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(slice(t, d, start, start + s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  OKD_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  int64_t n = t.shape()[wrap_dim(dim, t.dim(), "split")];
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += split_size)
    sizes.push_back(std::min(split_size, n - start));
  if (sizes.empty()) sizes.push_back(0);
  return split_sizes(t, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  OKD_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  int64_t n = t.shape()[wrap_dim(dim, t.dim(), "chunk")];
  return split(t, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

// out = t[index] along dim: dt = zeros with dout added back at index. The 1-D index is broadcast
// to dout's shape so that scatter_add (which wants an index of dout's shape) can do it.
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  Tensor out = ops::index_select(t, dim, index);
  if (needs_record(t)) {
    Saved save_index(index);
    Shape in_shape = t.shape();
    int64_t d = wrap_dim(dim, t.dim(), "index_select");
    record(Op::index_select, {t}, {out},
           [save_index, in_shape, d](const TensorList& g, const Needs&) -> TensorList {
             const Tensor& idx = save_index.get(Op::index_select);
             Shape idx_shape(g[0].dim(), 1);
             idx_shape[d] = idx.numel();
             Tensor full_idx =
                 ops::contiguous(ops::expand(ops::reshape(idx, idx_shape), g[0].shape()));
             return {scatter_into_zeros(in_shape, d, full_idx, g[0])};
           },
           {index});
  }
  return out;
}

// out[i][j] = t[index[i][j]][j]: dt = scatter_add(zeros, dim, index, dout).
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  Tensor out = ops::gather(t, dim, index);
  if (needs_record(t)) {
    Saved save_index(index);
    Shape in_shape = t.shape();
    record(Op::gather, {t}, {out},
           [save_index, in_shape, dim](const TensorList& g, const Needs&) -> TensorList {
             return {scatter_into_zeros(in_shape, dim, save_index.get(Op::gather), g[0])};
           },
           {index});
  }
  return out;
}

// out = t + (src added at index): dt = dout, dsrc = gather(dout, dim, index).
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = ops::scatter_add(t, dim, index, src);
  if (needs_record({t, src})) {
    Saved save_index(index);
    record(Op::scatter_add, {t, src}, {out},
           [save_index, dim](const TensorList& g, const Needs& needs) -> TensorList {
             TensorList d(2);
             if (needs[0]) d[0] = g[0];
             if (needs[1]) d[1] = ops::gather(g[0], dim, save_index.get(Op::scatter_add));
             return d;
           },
           {index});
  }
  return out;
}

// The k selected values' gradients go back to where they were taken from.
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
  auto [values, indices] = ops::topk(t, k, dim, largest, sorted);
  if (needs_record(t)) {
    Saved save_idx(indices);
    Shape in_shape = t.shape();
    int64_t d = wrap_dim(dim, t.dim(), "topk");
    record(Op::topk, {t}, {values},
           [save_idx, in_shape, d](const TensorList& g, const Needs&) -> TensorList {
             return {scatter_into_zeros(in_shape, d, save_idx.get(Op::topk), g[0])};
           },
           {indices});
  }
  return {values, indices};
}

// The k-th smallest value's gradient goes to its index (dim restored when keepdim is false).
std::pair<Tensor, Tensor> kthvalue(const Tensor& t, int64_t k, int64_t dim, bool keepdim) {
  auto [values, indices] = ops::kthvalue(t, k, dim, keepdim);
  if (needs_record(t)) {
    Saved save_idx(indices);
    Shape in_shape = t.shape();
    int64_t d = wrap_dim(dim, t.dim(), "kthvalue");
    record(Op::kthvalue, {t}, {values},
           [save_idx, in_shape, d, keepdim](const TensorList& g, const Needs&) -> TensorList {
             Tensor idx = save_idx.get(Op::kthvalue), dv = g[0];
             if (!keepdim) {
               idx = ops::unsqueeze(idx, d);
               dv = ops::unsqueeze(dv, d);
             }
             return {scatter_into_zeros(in_shape, d, idx, dv)};
           },
           {indices});
  }
  return {values, indices};
}

}  // namespace okd
