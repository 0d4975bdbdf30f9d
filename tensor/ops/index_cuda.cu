// Indexing CUDA kernels: index_select, gather, scatter_add, one_hot and topk, all four dtypes
// (index.h), and sample_distinct; kthvalue is topk's k-th entry on any device.
// Index values are checked by the kernels: one out of range is skipped (never a stray read or
// write; the output holds 0 there) and reported through the deferred-error record, raised as the
// CPU's okd::Error at the next host synchronisation (cuda_ops.h); no host copy, no sync.
// scatter_add is deterministic without atomics: one thread per line along `dim` of the index,
// adding that line's entries in order, so each output element receives its contributions in the
// CPU's order (lines write disjoint elements). topk ranks every element against its row (O(R^2)
// work per row, fine for class counts; a sort would be needed for rows of many thousands). cat and
// stack need no kernel: they are copy_ into views.
#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

// Shapes and strides of gather/scatter_add operands, by value into the kernel.
struct Geometry {
  int ndim = 0;
  int dim = 0;
  int64_t index_shape[kMaxDims] = {};
  int64_t input_strides[kMaxDims] = {};  // t (gather) or the output (scatter_add)
  int64_t src_strides[kMaxDims] = {};    // scatter_add's src
  int64_t dim_size = 0;                  // size of the indexed dim of t (gather) or the output
};

// out[o, k, i] = src[o, index[k], i] over the [outer, size, inner] view of contiguous src.
template <class T>
__global__ void index_select_kernel(const T* src, const int64_t* index, T* out, int64_t total,
                                    int64_t n, int64_t size, int64_t inner, int dim,
                                    DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(e, total) {
    const int64_t i = e % inner, k = (e / inner) % n, o = e / (inner * n);
    const int64_t v = index[k];
    if (v < 0 || v >= size) {
      report_device_error(err, DeviceErrorKind::IndexSelectIndex, dim, k, v, size);
      out[e] = T(0);
    } else {
      out[e] = src[(o * size + v) * inner + i];
    }
  }
}

// out[flat] = t[coords of flat in index, with coord dim replaced by index[flat]]
template <class T>
__global__ void gather_kernel(const T* t, const int64_t* index, T* out, int64_t total, Geometry g,
                              DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(flat, total) {
    const int64_t v = index[flat];
    if (v < 0 || v >= g.dim_size) {
      report_device_error(err, DeviceErrorKind::GatherIndex, g.dim, flat, v, g.dim_size);
      out[flat] = T(0);
      continue;
    }
    int64_t rem = flat, off = 0;
    for (int k = g.ndim - 1; k >= 0; --k) {
      const int64_t c = rem % g.index_shape[k];
      rem /= g.index_shape[k];
      off += (k == g.dim ? v : c) * g.input_strides[k];
    }
    out[flat] = t[off];
  }
}

// Thread `line` walks index entries (..., j, ...) for j = 0 .. index_shape[dim]-1 in order.
template <class T>
__global__ void scatter_add_kernel(const T* src, const int64_t* index, T* out, int64_t lines,
                                   Geometry g, DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(line, lines) {
    // coordinates of the line (every dim but g.dim), and the matching offsets at j = 0
    int64_t rem = line, off_src = 0, off_out = 0, flat = 0, flat_stride = 1;
    int64_t dim_flat_stride = 1;
    for (int k = g.ndim - 1; k >= 0; --k) {
      if (k == g.dim) {
        dim_flat_stride = flat_stride;
      } else {
        const int64_t c = rem % g.index_shape[k];
        rem /= g.index_shape[k];
        off_src += c * g.src_strides[k];
        off_out += c * g.input_strides[k];
        flat += c * flat_stride;
      }
      flat_stride *= g.index_shape[k];
    }
    for (int64_t j = 0; j < g.index_shape[g.dim]; ++j) {
      const int64_t f = flat + j * dim_flat_stride, v = index[f];
      if (v < 0 || v >= g.dim_size) {
        report_device_error(err, DeviceErrorKind::ScatterAddIndex, g.dim, f, v, g.dim_size);
        continue;
      }
      out[off_out + v * g.input_strides[g.dim]] += src[off_src + j * g.src_strides[g.dim]];
    }
  }
}

template <class T>
__global__ void one_hot_kernel(const int64_t* labels, T* out, int64_t n, int64_t classes,
                               DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(i, n) {
    const int64_t v = labels[i];
    if (v < 0 || v >= classes)
      report_device_error(err, DeviceErrorKind::OneHotLabel, 0, i, v, classes);
    else
      out[i * classes + v] = T(1);
  }
}

// floor(v m) clamped into [0, m - 1] (index_cpu.cpp's draw).
__device__ __forceinline__ int64_t floor_draw(double v, int64_t m) {
  const double x = floor(v * static_cast<double>(m));
  if (x <= 0) return 0;
  const int64_t t = static_cast<int64_t>(x);
  return t < m - 1 ? t : m - 1;
}

// One thread per row runs Floyd's algorithm (index.h) in the row's order, with a bitmap of the
// positions taken so far (words per row: ceil(max_count / 64), zeroed by the caller).
__global__ void sample_distinct_kernel(const double* u, const int64_t* counts, int64_t B, int64_t K,
                                       int64_t max_count, int64_t words, unsigned long long* bits,
                                       int64_t* out, DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(b, B) {
    const int64_t M = counts[b];
    const double* ub = u + b * K;
    int64_t* ob = out + b * K;
    if (M < 1 || M > max_count) {
      report_device_error(err, DeviceErrorKind::SampleDistinctCount, 0, b, M, max_count);
      for (int64_t j = 0; j < K; ++j) ob[j] = 0;
    } else if (K > M) {
      for (int64_t j = 0; j < K; ++j) ob[j] = floor_draw(ub[j], M);
    } else {
      unsigned long long* row = bits + b * words;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t n = M - K + j;
        int64_t t = floor_draw(ub[j], n + 1);
        if ((row[t >> 6] >> (t & 63)) & 1ull) t = n;
        row[t >> 6] |= 1ull << (t & 63);
        ob[j] = t;
      }
    }
  }
}

// a comes before b in topk's order: NaN first when largest (last when smallest), then by value,
// then the lower index (index_cpu.cpp's RankBefore: a strict total order).
template <class T>
__device__ __forceinline__ bool rank_before(bool largest, T a, int64_t ia, T b, int64_t ib) {
  const bool na = a != a, nb = b != b;
  if (na || nb) return na && nb ? ia < ib : (largest ? na : nb);
  if (a != b) return largest ? a > b : a < b;
  return ia < ib;
}

// One thread per element: its rank is the number of row elements ordered before it (ranks are
// distinct, the order being total); ranks below k are written to their place.
template <class T>
__global__ void topk_kernel(const T* rows, int64_t total, int64_t R, int64_t k, bool largest,
                            T* values, int64_t* indices) {
  OKD_GRID_STRIDE(e, total) {
    const int64_t r = e / R, i = e - r * R;
    const T* row = rows + r * R;
    const T v = row[i];
    int64_t rank = 0;
    for (int64_t j = 0; j < R && rank < k; ++j) rank += rank_before(largest, row[j], j, v, i);
    if (rank < k) {
      values[r * k + rank] = v;
      indices[r * k + rank] = i;
    }
  }
}

// index_cpu.cpp's check_index (dtype and device; the values are the kernels' to check).
void check_index(const Tensor& index, const Tensor& t, const char* op) {
  OKD_CHECK(index.dtype() == DType::Int64, op, ": indices must be int64, got ",
            dtype_name(index.dtype()));
  OKD_CHECK(index.device() == t.device(), op, ": indices are on ", index.device().str(),
            " but the input on ", t.device().str());
  check_device(t, op);
}
Geometry geometry(const Tensor& index, int64_t d, int64_t dim_size, const Shape& input_strides,
                  const Shape& src_strides, const char* op) {
  OKD_CHECK(index.dim() <= kMaxDims, op, ": the CUDA kernel handles at most ", kMaxDims,
            " dims, got ", shape_str(index.shape()));
  Geometry g;
  g.ndim = static_cast<int>(index.dim());
  g.dim = static_cast<int>(d);
  g.dim_size = dim_size;
  for (int64_t k = 0; k < index.dim(); ++k) {
    g.index_shape[k] = index.shape()[k];
    g.input_strides[k] = input_strides[k];
    g.src_strides[k] = src_strides.empty() ? 0 : src_strides[k];
  }
  return g;
}

}  // namespace

namespace gpu {

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  check_index(index, t, "index_select");
  OKD_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", shape_str(index.shape()));
  const int64_t d = wrap_dim(dim, t.dim(), "index_select");
  const Tensor src = ops::contiguous(t), idx = ops::contiguous(index);
  const int64_t n = idx.numel(), size = t.dim() ? t.shape()[d] : 1;
  Shape out_shape = t.shape();
  if (t.dim()) out_shape[d] = n;
  Tensor out = empty(out_shape, t.dtype(), t.device());
  const int64_t total = out.numel();
  if (total == 0) return out;
  int64_t inner = 1;
  for (int64_t k = d + 1; k < t.dim(); ++k) inner *= t.shape()[k];
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        src.device_data<T>(), idx.device_data<int64_t>(), out.device_data<T>(), total, n, size,
        inner, static_cast<int>(d), device_error_record_for_kernels());
  });
  OKD_CUDA_CHECK_LAUNCH("index_select");
  return out;
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  check_index(index, t, "gather");
  const int64_t d = wrap_dim(dim, t.dim(), "gather");
  OKD_CHECK(index.dim() == t.dim(), "gather: index has rank ", index.dim(), " but input has rank ",
            t.dim(), " (input ", shape_str(t.shape()), ", index ", shape_str(index.shape()), ")");
  for (int64_t k = 0; k < t.dim(); ++k)
    OKD_CHECK(k == d || index.shape()[k] <= t.shape()[k], "gather: index ",
              shape_str(index.shape()), " is larger than input ", shape_str(t.shape()), " in dim ",
              k);
  const Tensor idx = ops::contiguous(index);
  Tensor out = empty(index.shape(), t.dtype(), t.device());
  const int64_t total = out.numel();
  if (total == 0) return out;
  const Geometry g = geometry(idx, d, t.shape()[d], t.strides(), {}, "gather");
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(
        t.device_data<T>(), idx.device_data<int64_t>(), out.device_data<T>(), total, g,
        device_error_record_for_kernels());
  });
  OKD_CUDA_CHECK_LAUNCH("gather");
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  check_index(index, t, "scatter_add");
  const int64_t d = wrap_dim(dim, t.dim(), "scatter_add");
  OKD_CHECK(index.dim() == t.dim() && src.dim() == t.dim(), "scatter_add: input ",
            shape_str(t.shape()), ", index ", shape_str(index.shape()), " and src ",
            shape_str(src.shape()), " must have the same rank");
  OKD_CHECK(src.dtype() == t.dtype(), "scatter_add: src dtype ", dtype_name(src.dtype()),
            " differs from input dtype ", dtype_name(t.dtype()));
  OKD_CHECK(src.device() == t.device(), "scatter_add: src is on ", src.device().str(),
            " but the input on ", t.device().str());
  for (int64_t k = 0; k < t.dim(); ++k)
    OKD_CHECK(index.shape()[k] <= src.shape()[k] && (k == d || index.shape()[k] <= t.shape()[k]),
              "scatter_add: index ", shape_str(index.shape()), " does not fit input ",
              shape_str(t.shape()), " / src ", shape_str(src.shape()), " in dim ", k);
  Tensor out = ops::clone(t);
  const Tensor idx = ops::contiguous(index);
  if (idx.numel() == 0) return out;
  const int64_t lines = idx.numel() / idx.shape()[d];
  const Geometry g = geometry(idx, d, t.shape()[d], out.strides(), src.strides(), "scatter_add");
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scatter_add_kernel<T><<<grid_for(lines), kThreads, 0, stream()>>>(
        src.device_data<T>(), idx.device_data<int64_t>(), out.device_data<T>(), lines, g,
        device_error_record_for_kernels());
  });
  OKD_CUDA_CHECK_LAUNCH("scatter_add");
  return out;
}

std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest) {
  check_device(t, "topk");
  const int64_t rank = std::max<int64_t>(t.dim(), 1);
  const int64_t d = wrap_dim(dim, rank, "topk");
  const int64_t R = t.dim() ? t.shape()[d] : 1;
  OKD_CHECK(k >= 0 && k <= R, "topk: k = ", k, " is out of range for dim ", d, " of size ", R,
            " (input ", shape_str(t.shape()), ")");
  // Rows along dim, moved last and made contiguous: [rows, R] -> values and indices [rows, k].
  const Tensor moved = t.dim() ? ops::contiguous(ops::transpose(t, d, -1)) : ops::reshape(t, {1});
  Shape ms = moved.shape();
  ms.back() = k;
  Tensor vals = empty(ms, t.dtype(), t.device()), idx = empty(ms, DType::Int64, t.device());
  const int64_t total = moved.numel();
  if (k > 0 && total > 0) {
    dispatch_all(t.dtype(), [&](auto tag) {
      using T = decltype(tag);
      topk_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(moved.device_data<T>(), total, R,
                                                                 k, largest, vals.device_data<T>(),
                                                                 idx.device_data<int64_t>());
    });
    OKD_CUDA_CHECK_LAUNCH("topk");
  }
  if (t.dim() == 0) return {ops::reshape(vals, {}), ops::reshape(idx, {})};
  return {ops::contiguous(ops::transpose(vals, d, -1)),
          ops::contiguous(ops::transpose(idx, d, -1))};
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  OKD_CHECK(labels.dtype() == DType::Int64, "one_hot: indices must be int64, got ",
            dtype_name(labels.dtype()));
  check_device(labels, "one_hot");
  OKD_CHECK(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  const Tensor l = ops::contiguous(labels);
  Shape s = labels.shape();
  s.push_back(num_classes);
  Tensor out = zeros(s, dtype, labels.device());
  const int64_t n = l.numel();
  if (n == 0) return out;
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    one_hot_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(l.device_data<int64_t>(),
                                                              out.device_data<T>(), n, num_classes,
                                                              device_error_record_for_kernels());
  });
  OKD_CUDA_CHECK_LAUNCH("one_hot");
  return out;
}

Tensor sample_distinct(const Tensor& u, const Tensor& counts, int64_t max_count) {
  check_device(u, "sample_distinct");
  const int64_t B = u.size(0), K = u.size(1);
  Tensor out = empty({B, K}, DType::Int64, u.device());
  if (B == 0 || K == 0) return out;
  const Tensor uc = ops::contiguous(u), cc = ops::contiguous(counts);
  const int64_t words = (max_count + 63) / 64;
  Tensor bits = zeros({B, words}, DType::Int64, u.device());
  sample_distinct_kernel<<<grid_for(B), kThreads, 0, stream()>>>(
      uc.device_data<double>(), cc.device_data<int64_t>(), B, K, max_count, words,
      reinterpret_cast<unsigned long long*>(bits.device_data<int64_t>()),
      out.device_data<int64_t>(), device_error_record_for_kernels());
  OKD_CUDA_CHECK_LAUNCH("sample_distinct");
  return out;
}

}  // namespace gpu

}  // namespace okd::cuda
