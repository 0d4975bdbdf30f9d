// Internal helper for CPU kernels: walks up to four operands that share one (broadcast) shape
// but have their own strides, one innermost row at a time. Dims are coalesced first, so
// contiguous tensors become a single row and broadcasting costs nothing extra.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace okd::detail {

template <int K>
struct StridedLoop {
  Shape shape;                   // coalesced, innermost last
  std::array<Shape, K> strides;  // per operand, in elements
  int64_t inner() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return shape.empty() ? 1 : r;
  }
};

// Strides of t broadcast to shape (0 in broadcast dims). t's shape must broadcast to shape.
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

template <int K>
StridedLoop<K> make_loop(const Shape& shape, const std::array<Shape, K>& strides) {
  StridedLoop<K> L;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !L.shape.empty();
    for (int k = 0; k < K && merge; ++k) merge = L.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      L.shape.back() *= shape[d];
      for (int k = 0; k < K; ++k) L.strides[k].back() = strides[k][d];
    } else {
      L.shape.push_back(shape[d]);
      for (int k = 0; k < K; ++k) L.strides[k].push_back(strides[k][d]);
    }
  }
  if (L.shape.empty()) {
    L.shape.push_back(1);
    for (int k = 0; k < K; ++k) L.strides[k].push_back(0);
  }
  return L;
}

// Calls row(offsets, n, inner_strides) for every innermost row; offsets are element offsets of
// each operand relative to its data pointer. Rows run in parallel when the work is large.
template <int K, class Row>
void for_each_row(const StridedLoop<K>& L, Row&& row, int64_t grain = 32768) {
  const int64_t n = L.inner();
  const int64_t rows = L.rows();
  const int64_t nd = static_cast<int64_t>(L.shape.size());
  std::array<int64_t, K> inner_strides;
  for (int k = 0; k < K; ++k) inner_strides[k] = L.strides[k][nd - 1];
  parallel_for(0, rows, std::max<int64_t>(1, grain / std::max<int64_t>(n, 1)),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   std::array<int64_t, K> off{};
                   int64_t rem = r;
                   for (int64_t d = nd - 2; d >= 0; --d) {
                     int64_t i = rem % L.shape[d];
                     rem /= L.shape[d];
                     for (int k = 0; k < K; ++k) off[k] += i * L.strides[k][d];
                   }
                   row(off, n, inner_strides);
                 }
               });
}

}  // namespace okd::detail
