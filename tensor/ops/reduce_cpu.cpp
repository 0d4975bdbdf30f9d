// Reduction CPU kernels. The input is viewed with the kept dims first and the reduced dims last
// and made contiguous, so every output element reduces one contiguous row of R elements. Rows run
// in parallel; a long row is summed in fixed blocks of 2^15 elements whose partial sums are added
// in order, so the result is bit-identical for any thread count. float32 accumulates in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {

constexpr int64_t kBlock = 1 << 15;

struct Rows {
  Tensor data;  // contiguous [O, R]
  int64_t O = 1, R = 1;
  Shape out_shape;  // with or without keepdim
};

Rows to_rows(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  cuda::check_no_cuda(op, {a});
  OKD_CHECK(a.device().is_cpu(), op, ": the CPU kernel got a tensor on ", a.device().str());
  auto rd = normalize_dims(dims, a.dim(), op);
  std::vector<bool> reduced(a.dim(), false);
  for (int64_t d : rd) reduced[d] = true;
  std::vector<int64_t> perm;
  Rows r;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (!reduced[d]) {
      perm.push_back(d);
      r.O *= a.shape()[d];
      r.out_shape.push_back(a.shape()[d]);
    } else if (keepdim) {
      r.out_shape.push_back(1);
    }
  if (keepdim) {
    r.out_shape.clear();
    for (int64_t d = 0; d < a.dim(); ++d) r.out_shape.push_back(reduced[d] ? 1 : a.shape()[d]);
  }
  for (int64_t d : rd) {
    perm.push_back(d);
    r.R *= a.shape()[d];
  }
  r.data = a.dim() == 0 ? a : contiguous(permute(a, perm));
  return r;
}

// sum of g(p[i]) over n elements, blocked and combined in order (thread-count independent).
template <class T, class G>
double block_sum(const T* p, int64_t n, G g) {
  if (n <= kBlock) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += g(p[i]);
    return s;
  }
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * kBlock, e = std::min(n, s + kBlock);
      double acc = 0;
      for (int64_t i = s; i < e; ++i) acc += g(p[i]);
      partial[b] = acc;
    }
  });
  double s = 0;
  for (double v : partial) s += v;
  return s;
}

// out[o] = f(row o, R) for every row, parallel over rows; O of dtype OutT.
template <class T, class OutT, class F>
Tensor per_row(const Rows& r, DType out_dtype, F f) {
  Tensor out = empty(r.out_shape, out_dtype);
  OutT* po = out.data<OutT>();
  const T* p = r.data.template data<T>();
  const int64_t R = r.R;
  // Rows in parallel when there are many; otherwise f parallelises inside (block_sum).
  if (r.O >= 2 * num_threads()) {
    parallel_for(0, r.O, std::max<int64_t>(1, kBlock / std::max<int64_t>(R, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o) po[o] = f(p + o * R, R);
                 });
  } else {
    for (int64_t o = 0; o < r.O; ++o) po[o] = f(p + o * R, R);
  }
  return out;
}

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Sum, a, dims, keepdim);
  Rows r = to_rows(a, dims, keepdim, "sum");
  if (is_floating(a.dtype())) {
    return OKD_DISPATCH_FLOAT(a.dtype(), "sum", [&]<class T>() {
      return per_row<T, T>(r, a.dtype(), [](const T* p, int64_t n) {
        return static_cast<T>(block_sum(p, n, [](T x) { return static_cast<double>(x); }));
      });
    });
  }
  return OKD_DISPATCH_ALL(a.dtype(), "sum", [&]<class T>() {
    return per_row<T, int64_t>(r, DType::Int64, [](const T* p, int64_t n) {
      int64_t s = 0;
      for (int64_t i = 0; i < n; ++i) s += static_cast<int64_t>(p[i]);
      return s;
    });
  });
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Mean, a, dims, keepdim);
  OKD_CHECK(is_floating(a.dtype()), "mean: expected a floating tensor, got ", dtype_name(a.dtype()),
            " (convert with to(float32) first)");
  Rows r = to_rows(a, dims, keepdim, "mean");
  return OKD_DISPATCH_FLOAT(a.dtype(), "mean", [&]<class T>() {
    return per_row<T, T>(r, a.dtype(), [](const T* p, int64_t n) {
      if (n == 0) return std::numeric_limits<T>::quiet_NaN();
      return static_cast<T>(block_sum(p, n, [](T x) { return static_cast<double>(x); }) / n);
    });
  });
}

Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Var, a, dims, keepdim, unbiased);
  OKD_CHECK(is_floating(a.dtype()), "var: expected a floating tensor, got ", dtype_name(a.dtype()));
  Rows r = to_rows(a, dims, keepdim, "var");
  return OKD_DISPATCH_FLOAT(a.dtype(), "var", [&]<class T>() {
    return per_row<T, T>(r, a.dtype(), [unbiased](const T* p, int64_t n) {
      const int64_t denom = n - (unbiased ? 1 : 0);
      if (denom <= 0) return std::numeric_limits<T>::quiet_NaN();
      const double m = block_sum(p, n, [](T x) { return static_cast<double>(x); }) / n;
      const double ss = block_sum(p, n, [m](T x) {
        double d = x - m;
        return d * d;
      });
      return static_cast<T>(ss / denom);
    });
  });
}

Tensor std(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Std, a, dims, keepdim, unbiased);
  Tensor v = var(a, dims, unbiased, keepdim);
  OKD_DISPATCH_FLOAT(v.dtype(), "std", [&]<class T>() {
    T* p = v.data<T>();
    for (int64_t i = 0; i < v.numel(); ++i) p[i] = std::sqrt(p[i]);
  });
  return v;
}

namespace {
template <bool kMax>
Tensor extreme(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  Rows r = to_rows(a, dims, keepdim, op);
  OKD_CHECK(r.R > 0, op, ": cannot reduce an empty dimension (input ", shape_str(a.shape()), ")");
  return OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    return per_row<T, T>(r, a.dtype(), [](const T* p, int64_t n) {
      T best = p[0];
      for (int64_t i = 1; i < n; ++i) {
        if (p[i] != p[i]) return p[i];  // NaN propagates
        if (kMax ? p[i] > best : p[i] < best) best = p[i];
      }
      return best;
    });
  });
}

template <bool kMax>
std::pair<Tensor, Tensor> extreme_dim(const Tensor& a, int64_t dim, bool keepdim, const char* op) {
  int64_t d = wrap_dim(dim, a.dim(), op);
  Rows r = to_rows(a, {d}, keepdim, op);
  OKD_CHECK(r.R > 0, op, ": cannot reduce an empty dimension (input ", shape_str(a.shape()), ")");
  Tensor idx = empty(r.out_shape, DType::Int64);
  int64_t* pi = idx.data<int64_t>();
  Tensor vals = OKD_DISPATCH_ALL(a.dtype(), op, [&]<class T>() {
    Tensor out = empty(r.out_shape, a.dtype());
    T* po = out.data<T>();
    const T* p = r.data.template data<T>();
    parallel_for(0, r.O, std::max<int64_t>(1, kBlock / std::max<int64_t>(r.R, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o) {
                     const T* row = p + o * r.R;
                     int64_t bi = 0;
                     for (int64_t i = 1; i < r.R; ++i) {
                       if (row[bi] != row[bi]) break;
                       if (row[i] != row[i] || (kMax ? row[i] > row[bi] : row[i] < row[bi])) bi = i;
                     }
                     po[o] = row[bi];
                     pi[o] = bi;
                   }
                 });
    return out;
  });
  return {vals, idx};
}
}  // namespace

Tensor amax(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Amax, a, dims, keepdim);
  return extreme<true>(a, dims, keepdim, "amax");
}
Tensor amin(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::reduce(cuda::Reduce::Amin, a, dims, keepdim);
  return extreme<false>(a, dims, keepdim, "amin");
}
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::max_min(true, a, dim, keepdim);
  return extreme_dim<true>(a, dim, keepdim, "max");
}
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::max_min(false, a, dim, keepdim);
  return extreme_dim<false>(a, dim, keepdim, "min");
}
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) { return max(a, dim, keepdim).second; }
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) { return min(a, dim, keepdim).second; }

// log sum exp(x) = m + log sum exp(x - m), m the row max (rows of -inf give -inf).
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::logsumexp(a, dims, keepdim);
  Rows r = to_rows(a, dims, keepdim, "logsumexp");
  return OKD_DISPATCH_FLOAT(a.dtype(), "logsumexp", [&]<class T>() {
    return per_row<T, T>(r, a.dtype(), [](const T* p, int64_t n) {
      if (n == 0) return -std::numeric_limits<T>::infinity();
      T m = p[0];
      for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
      if (std::isinf(m)) return m;
      double s = block_sum(p, n, [m](T x) { return std::exp(static_cast<double>(x - m)); });
      return static_cast<T>(m + std::log(s));
    });
  });
}

Tensor norm(const Tensor& a, double pn, const std::vector<int64_t>& dims, bool keepdim) {
  if (cuda::on_cuda(a)) return cuda::norm(a, pn, dims, keepdim);
  OKD_CHECK(pn > 0, "norm: p must be positive, got ", pn);
  Rows r = to_rows(a, dims, keepdim, "norm");
  return OKD_DISPATCH_FLOAT(a.dtype(), "norm", [&]<class T>() {
    return per_row<T, T>(r, a.dtype(), [pn](const T* p, int64_t n) {
      if (std::isinf(pn)) {
        double m = 0;
        for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(static_cast<double>(p[i])));
        return static_cast<T>(m);
      }
      if (pn == 2.0) {
        double s = block_sum(p, n, [](T x) { return static_cast<double>(x) * x; });
        return static_cast<T>(std::sqrt(s));
      }
      if (pn == 1.0)
        return static_cast<T>(
            block_sum(p, n, [](T x) { return std::fabs(static_cast<double>(x)); }));
      double s =
          block_sum(p, n, [pn](T x) { return std::pow(std::fabs(static_cast<double>(x)), pn); });
      return static_cast<T>(std::pow(s, 1.0 / pn));
    });
  });
}

std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t rank,
                                    const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, rank, op));
  std::sort(out.begin(), out.end());
  OKD_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": dim repeated in ",
            shape_str(dims));
  return out;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  OKD_CHECK(shape.size() <= static_cast<size_t>(a.dim()), "sum_to: cannot reduce ",
            shape_str(a.shape()), " to the larger rank ", shape_str(shape));
  const size_t lead = a.dim() - shape.size();
  std::vector<int64_t> dims;
  for (size_t d = 0; d < static_cast<size_t>(a.dim()); ++d) {
    if (d < lead) {
      dims.push_back(static_cast<int64_t>(d));
      continue;
    }
    int64_t want = shape[d - lead];
    if (want == 1 && a.shape()[d] != 1)
      dims.push_back(static_cast<int64_t>(d));
    else
      OKD_CHECK(want == a.shape()[d], "sum_to: ", shape_str(a.shape()), " does not reduce to ",
                shape_str(shape));
  }
  if (dims.empty()) return reshape(a, shape);
  return reshape(sum(a, dims, true), shape);
}

}  // namespace okd::ops
