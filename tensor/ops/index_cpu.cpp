// Joining, splitting, indexing and selection on the CPU. Everything is expressed over an
// [outer, dim, inner] view of contiguous data, which keeps each kernel a pair of plain loops.
// CUDA tensors go to index_cuda.cu; cat, stack and kthvalue are compositions that run on any
// device.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"
#include "tensor/ops/view.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {
void check_index(const Tensor& index, const char* op) {
  OKD_CHECK(index.dtype() == DType::Int64, op, ": indices must be int64, got ",
            dtype_name(index.dtype()));
  OKD_CHECK(index.device().is_cpu(), op, ": the CPU kernel got indices on ", index.device().str());
}
// Every index in [0, size), checked before any work so a bad one is an error, not a stray write.
void check_range(const int64_t* p, int64_t n, int64_t size, const char* op, int64_t d) {
  for (int64_t i = 0; i < n; ++i)
    OKD_CHECK(p[i] >= 0 && p[i] < size, op, ": index ", p[i], " is out of range for dim ", d,
              " of size ", size);
}
// outer = prod(shape[:d]), inner = prod(shape[d+1:])
std::pair<int64_t, int64_t> outer_inner(const Shape& s, int64_t d) {
  int64_t o = 1, i = 1;
  for (int64_t k = 0; k < d; ++k) o *= s[k];
  for (size_t k = d + 1; k < s.size(); ++k) i *= s[k];
  return {o, i};
}
}  // namespace

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  OKD_CHECK(!ts.empty(), "cat: expected at least one tensor");
  const Tensor& first = ts[0];
  int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    OKD_CHECK(t.dim() == first.dim() && t.dtype() == first.dtype() && t.device() == first.device(),
              "cat: tensor ", i, " (", t.desc(), ") does not match tensor 0 (", first.desc(), ")");
    for (int64_t k = 0; k < t.dim(); ++k)
      OKD_CHECK(k == d || t.shape()[k] == first.shape()[k], "cat: tensor ", i, " has shape ",
                shape_str(t.shape()), " but tensor 0 has ", shape_str(first.shape()), " (only dim ",
                d, " may differ)");
    total += t.shape()[d];
  }
  out_shape[d] = total;
  Tensor out = empty(out_shape, first.dtype(), first.device());
  int64_t pos = 0;
  for (const auto& t : ts) {
    if (t.shape()[d] == 0) continue;
    copy_(narrow(out, d, pos, t.shape()[d]), t);
    pos += t.shape()[d];
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  OKD_CHECK(!ts.empty(), "stack: expected at least one tensor");
  int64_t d = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < ts.size(); ++i) {
    OKD_CHECK(ts[i].shape() == ts[0].shape(), "stack: tensor ", i, " has shape ",
              shape_str(ts[i].shape()), " but tensor 0 has ", shape_str(ts[0].shape()));
    u.push_back(unsqueeze(ts[i], d));
  }
  return cat(u, d);
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  OKD_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  int64_t d = wrap_dim(dim, t.dim(), "split");
  std::vector<Tensor> out;
  for (int64_t s = 0; s < t.shape()[d]; s += split_size)
    out.push_back(narrow(t, d, s, std::min(split_size, t.shape()[d] - s)));
  return out;
}

std::vector<Tensor> split_sizes(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "split_sizes");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  OKD_CHECK(total == t.shape()[d], "split_sizes: sizes ", shape_str(sizes), " add up to ", total,
            " but dim ", d, " has size ", t.shape()[d]);
  std::vector<Tensor> out;
  int64_t s = 0;
  for (int64_t n : sizes) {
    out.push_back(narrow(t, d, s, n));
    s += n;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  OKD_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  int64_t d = wrap_dim(dim, t.dim(), "chunk");
  int64_t size = (t.shape()[d] + chunks - 1) / chunks;
  return split(t, std::max<int64_t>(size, 1), d);
}

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  if (cuda::on_cuda(t, index)) return cuda::index_select(t, dim, index);
  check_index(index, "index_select");
  OKD_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", shape_str(index.shape()));
  int64_t d = wrap_dim(dim, t.dim(), "index_select");
  Tensor src = contiguous(t), idx = contiguous(index);
  const int64_t n = idx.numel(), size = t.dim() ? t.shape()[d] : 1;
  Shape out_shape = t.shape();
  if (t.dim()) out_shape[d] = n;
  Tensor out = empty(out_shape, t.dtype());
  auto [outer, inner] = outer_inner(t.shape(), d);
  const int64_t* pi = idx.data<int64_t>();
  for (int64_t k = 0; k < n; ++k)
    OKD_CHECK(pi[k] >= 0 && pi[k] < size, "index_select: index ", pi[k],
              " is out of range for dim ", d, " of size ", size);
  const size_t es = dtype_size(t.dtype());
  const char* ps = static_cast<const char*>(src.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  parallel_for(0, outer, 16, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t k = 0; k < n; ++k) {
        std::memcpy(po + ((o * n + k) * inner) * es, ps + ((o * size + pi[k]) * inner) * es,
                    inner * es);
      }
  });
  return out;
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  if (cuda::on_cuda(t, index)) return cuda::gather(t, dim, index);
  check_index(index, "gather");
  int64_t d = wrap_dim(dim, t.dim(), "gather");
  OKD_CHECK(index.dim() == t.dim(), "gather: index has rank ", index.dim(), " but input has rank ",
            t.dim(), " (input ", shape_str(t.shape()), ", index ", shape_str(index.shape()), ")");
  for (int64_t k = 0; k < t.dim(); ++k)
    OKD_CHECK(k == d || index.shape()[k] <= t.shape()[k], "gather: index ",
              shape_str(index.shape()), " is larger than input ", shape_str(t.shape()), " in dim ",
              k);
  Tensor idx = contiguous(index);
  Tensor out = empty(index.shape(), t.dtype());
  const int64_t size = t.shape()[d];
  const int64_t* pi = idx.data<int64_t>();
  const int64_t n = idx.numel();
  check_range(pi, n, size, "gather", d);
  const Shape& is = idx.shape();
  OKD_DISPATCH_ALL(t.dtype(), "gather", [&]<class T>() {
    const T* ps = t.data<T>();
    T* po = out.data<T>();
    // out[flat] = t[coords of flat in index, with coord d replaced by index[flat]]
    parallel_for(0, n, 4096, [&](int64_t f0, int64_t f1) {
      for (int64_t flat = f0; flat < f1; ++flat) {
        int64_t rem = flat, off = 0;
        for (int64_t k = t.dim() - 1; k >= 0; --k) {
          const int64_t c = rem % is[k];
          rem /= is[k];
          off += (k == d ? pi[flat] : c) * t.strides()[k];
        }
        po[flat] = ps[off];
      }
    });
  });
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  if (cuda::on_cuda(t, index, src)) return cuda::scatter_add(t, dim, index, src);
  check_index(index, "scatter_add");
  int64_t d = wrap_dim(dim, t.dim(), "scatter_add");
  OKD_CHECK(index.dim() == t.dim() && src.dim() == t.dim(), "scatter_add: input ",
            shape_str(t.shape()), ", index ", shape_str(index.shape()), " and src ",
            shape_str(src.shape()), " must have the same rank");
  OKD_CHECK(src.dtype() == t.dtype(), "scatter_add: src dtype ", dtype_name(src.dtype()),
            " differs from input dtype ", dtype_name(t.dtype()));
  for (int64_t k = 0; k < t.dim(); ++k)
    OKD_CHECK(index.shape()[k] <= src.shape()[k] && (k == d || index.shape()[k] <= t.shape()[k]),
              "scatter_add: index ", shape_str(index.shape()), " does not fit input ",
              shape_str(t.shape()), " / src ", shape_str(src.shape()), " in dim ", k);
  Tensor out = clone(t);
  Tensor idx = contiguous(index);
  const int64_t size = t.shape()[d];
  const int64_t* pi = idx.data<int64_t>();
  check_range(pi, idx.numel(), size, "scatter_add", d);
  const Shape& is = idx.shape();
  // Serial on purpose: several entries may add into one element, and a fixed order keeps the
  // floating-point sums the same on any thread count.
  OKD_DISPATCH_ALL(t.dtype(), "scatter_add", [&]<class T>() {
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    for (int64_t flat = 0; flat < idx.numel(); ++flat) {
      int64_t rem = flat, off_out = 0, off_src = 0;
      for (int64_t k = t.dim() - 1; k >= 0; --k) {
        const int64_t c = rem % is[k];
        rem /= is[k];
        off_src += c * src.strides()[k];
        off_out += (k == d ? pi[flat] : c) * out.strides()[k];
      }
      po[off_out] += ps[off_src];
    }
  });
  return out;
}

static void check_sample_distinct(const Tensor& u, const Tensor& counts, int64_t max_count) {
  OKD_CHECK(u.dtype() == DType::Float64 && u.dim() == 2,
            "sample_distinct: u must be float64 [B, K], got ", dtype_name(u.dtype()), " ",
            shape_str(u.shape()));
  OKD_CHECK(counts.dtype() == DType::Int64 && counts.dim() == 1 && counts.size(0) == u.size(0),
            "sample_distinct: counts must be int64 [", u.size(0), "], got ",
            dtype_name(counts.dtype()), " ", shape_str(counts.shape()));
  OKD_CHECK(counts.device() == u.device(), "sample_distinct: u is on ", u.device().str(),
            " and counts on ", counts.device().str());
  OKD_CHECK(max_count >= 1, "sample_distinct: max_count must be positive, got ", max_count);
}

Tensor sample_distinct(const Tensor& u, const Tensor& counts, int64_t max_count) {
  check_sample_distinct(u, counts, max_count);
  if (cuda::on_cuda(u)) return cuda::sample_distinct(u, counts, max_count);
  const int64_t B = u.size(0), K = u.size(1);
  const Tensor uc = contiguous(u), cc = contiguous(counts);
  Tensor out = empty({B, K}, DType::Int64);
  const double* pu = uc.data<double>();
  const int64_t* pc = cc.data<int64_t>();
  int64_t* po = out.data<int64_t>();
  // floor(u m) clamped into [0, m - 1] (u in [0, 1) rounds to m at worst)
  auto draw = [](double v, int64_t m) {
    const double x = std::floor(v * static_cast<double>(m));
    return x <= 0 ? int64_t{0} : std::min(static_cast<int64_t>(x), m - 1);
  };
  // Positions taken in the current row; cleared after each row by its own K entries, so a row
  // costs O(K) however many candidates it has.
  std::vector<uint8_t> taken;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t M = pc[b];
    OKD_CHECK(M >= 1 && M <= max_count, "sample_distinct: count ", M, " of row ", b,
              " is outside [1, ", max_count, "]");
    const double* ub = pu + b * K;
    int64_t* ob = po + b * K;
    if (K > M) {
      for (int64_t j = 0; j < K; ++j) ob[j] = draw(ub[j], M);
      continue;
    }
    if (taken.size() < static_cast<size_t>(M)) taken.resize(static_cast<size_t>(M), 0);
    for (int64_t j = 0; j < K; ++j) {
      const int64_t n = M - K + j;
      int64_t t = draw(ub[j], n + 1);
      if (taken[static_cast<size_t>(t)]) t = n;  // n itself is never taken yet: all before are < n
      taken[static_cast<size_t>(t)] = 1;
      ob[j] = t;
    }
    for (int64_t j = 0; j < K; ++j) taken[static_cast<size_t>(ob[j])] = 0;
  }
  return out;
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  if (cuda::on_cuda(labels)) return cuda::one_hot(labels, num_classes, dtype);
  check_index(labels, "one_hot");
  OKD_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  Tensor l = contiguous(labels);
  Shape s = labels.shape();
  s.push_back(num_classes);
  Tensor out = zeros(s, dtype);
  const int64_t* p = l.data<int64_t>();
  OKD_DISPATCH_ALL(dtype, "one_hot", [&]<class T>() {
    T* po = out.data<T>();
    for (int64_t i = 0; i < l.numel(); ++i) {
      OKD_CHECK(p[i] >= 0 && p[i] < num_classes, "one_hot: label ", p[i], " at position ", i,
                " is outside [0, ", num_classes, ")");
      po[i * num_classes + p[i]] = T(1);
    }
  });
  return out;
}

namespace {
// The order topk sorts by: by value (NaN counts as larger than every number, as in PyTorch),
// and equal values by position, the lower index first. A strict total order, so the result does
// not depend on the sort algorithm.
template <class T>
struct RankBefore {
  const T* row;
  bool largest;
  bool operator()(int64_t x, int64_t y) const {
    const T a = row[x], b = row[y];
    if constexpr (std::is_floating_point_v<T>) {
      const bool na = std::isnan(a), nb = std::isnan(b);
      if (na || nb) {
        if (na && nb) return x < y;
        return largest ? na : nb;  // NaN first when largest, last when smallest
      }
    }
    if (a != b) return largest ? a > b : a < b;
    return x < y;
  }
};
}  // namespace

std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest, bool sorted) {
  if (cuda::on_cuda(t)) return cuda::topk(t, k, dim, largest);
  (void)sorted;  // results are always sorted (a valid choice when sorted=false)
  const int64_t rank = std::max<int64_t>(t.dim(), 1);
  const int64_t d = wrap_dim(dim, rank, "topk");
  const int64_t R = t.dim() ? t.shape()[d] : 1;
  OKD_CHECK(k >= 0 && k <= R, "topk: k = ", k, " is out of range for dim ", d, " of size ", R,
            " (input ", shape_str(t.shape()), ")");
  // Rows along dim, moved last and made contiguous: [rows, R] -> values and indices [rows, k].
  Tensor moved = t.dim() ? contiguous(transpose(t, d, -1)) : reshape(t, {1});
  Shape ms = moved.shape();
  ms.back() = k;
  Tensor vals = empty(ms, t.dtype()), idx = empty(ms, DType::Int64);
  const int64_t rows = R ? moved.numel() / R : 0;
  OKD_DISPATCH_ALL(t.dtype(), "topk", [&]<class T>() {
    const T* src = moved.data<T>();
    T* pv = vals.data<T>();
    int64_t* pi = idx.data<int64_t>();
    parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(R, 1)),
                 [&](int64_t r0, int64_t r1) {
                   std::vector<int64_t> order(static_cast<size_t>(R));
                   for (int64_t r = r0; r < r1; ++r) {
                     const T* row = src + r * R;
                     std::iota(order.begin(), order.end(), int64_t{0});
                     std::partial_sort(order.begin(), order.begin() + k, order.end(),
                                       RankBefore<T>{row, largest});
                     for (int64_t j = 0; j < k; ++j) {
                       pv[r * k + j] = row[order[j]];
                       pi[r * k + j] = order[j];
                     }
                   }
                 });
  });
  if (t.dim() == 0) return {reshape(vals, {}), reshape(idx, {})};
  return {contiguous(transpose(vals, d, -1)), contiguous(transpose(idx, d, -1))};
}

// The k-th of the ascending order RankBefore defines (equal values: the lower index first).
std::pair<Tensor, Tensor> kthvalue(const Tensor& t, int64_t k, int64_t dim, bool keepdim) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(t.dim(), 1), "kthvalue");
  const int64_t R = t.dim() ? t.shape()[d] : 1;
  OKD_CHECK(k >= 1 && k <= R, "kthvalue: k = ", k, " is out of range for dim ", d, " of size ", R,
            " (input ", shape_str(t.shape()), ")");
  if (t.dim() == 0) return topk(t, 1, 0, /*largest=*/false);
  auto [v, i] = topk(t, k, d, /*largest=*/false);
  Tensor vk = narrow(v, d, k - 1, 1), ik = narrow(i, d, k - 1, 1);
  if (!keepdim && t.dim()) {
    vk = squeeze(vk, d);
    ik = squeeze(ik, d);
  }
  return {contiguous(vk), contiguous(ik)};
}

}  // namespace okd::ops
