// Tensor metadata, creation functions, printing and the raw view ops.
#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"

namespace okd {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return kCPU;
  if (s == "cuda") return Device(DeviceType::CUDA, 0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return Device(DeviceType::CUDA, std::stoi(s.substr(5)));
    } catch (...) {
    }
  }
  OKD_FAIL("unknown device '", s, "': expected cpu, cuda or cuda:N");
}

// ---- shape helpers ------------------------------------------------------------------------
int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* op) {
  int64_t r = std::max<int64_t>(rank, 1);
  OKD_CHECK(dim >= -r && dim < r, op, ": dim ", dim, " is out of range for a tensor of rank ",
            rank);
  return dim < 0 ? dim + r : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    OKD_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
              " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- Tensor -------------------------------------------------------------------------------
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  const Shape& st = strides();
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::device_raw_data() const {
  auto* impl = checked();
  return static_cast<char*>(impl->storage->data()) + impl->offset * dtype_size(impl->dtype);
}

void* Tensor::raw_data() const {
  OKD_CHECK(device().is_cpu(), "host code asked for the data of ", desc(),
            ", which is not in host memory; copy it with to(kCPU) first");
  return device_raw_data();
}

bool Tensor::shares_storage(const Tensor& o) const {
  return defined() && o.defined() && impl_->storage == o.impl_->storage;
}

double Tensor::item() const {
  OKD_CHECK(numel() == 1, "item(): expected a tensor with one element, got shape ",
            shape_str(shape()));
  if (!device().is_cpu()) return ops::to(*this, kCPU).item();
  return at(std::vector<int64_t>(dim(), 0));
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  return at(std::vector<int64_t>(index));
}

double Tensor::at(const std::vector<int64_t>& index) const {
  OKD_CHECK(device().is_cpu(), "at(): tensor is on ", device().str(), "; move it to the cpu first");
  OKD_CHECK(static_cast<int64_t>(index.size()) == dim(), "at(): got ", index.size(),
            " indices for a tensor of rank ", dim());
  int64_t off = 0;
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t k = index[i] < 0 ? index[i] + shape()[i] : index[i];
    OKD_CHECK(k >= 0 && k < shape()[i], "at(): index ", index[i], " out of range for dim ", i,
              " of size ", shape()[i]);
    off += k * strides()[i];
  }
  const char* base = static_cast<const char*>(raw_data());
  return OKD_DISPATCH_ALL(dtype(), "at", [&]<class T>() {
    return static_cast<double>(reinterpret_cast<const T*>(base)[off]);
  });
}

Tensor& Tensor::requires_grad_(bool value) {
  OKD_CHECK(!value || is_floating(dtype()),
            "requires_grad_: only floating tensors can require "
            "gradients, got ",
            dtype_name(dtype()));
  checked()->autograd.requires_grad = value;
  return *this;
}

std::string Tensor::desc() const {
  if (!defined()) return "Tensor(undefined)";
  return str("Tensor", shape_str(shape()), " ", dtype_name(dtype()), " ", device().str());
}

namespace {
void print_rec(std::ostringstream& os, const Tensor& t, std::vector<int64_t>& idx, int64_t d,
               int64_t edge, int indent) {
  int64_t n = t.shape()[d];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge && i == edge) {
      os << "...";
      i = n - edge - 1;
      os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
      continue;
    }
    idx[d] = i;
    if (d + 1 == t.dim()) {
      double v = t.at(idx);
      if (is_floating(t.dtype()))
        os << std::setprecision(6) << v;
      else
        os << static_cast<int64_t>(v);
    } else {
      print_rec(os, t, idx, d + 1, edge, indent + 1);
    }
    if (i + 1 < n) os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}
}  // namespace

std::string Tensor::to_string(int64_t edge_items) const {
  if (!defined()) return "Tensor(undefined)";
  Tensor c = device().is_cpu() ? *this : ops::to(*this, kCPU);
  std::ostringstream os;
  if (c.dim() == 0) {
    os << c.item();
  } else if (c.numel() == 0) {
    os << "[]";
  } else {
    std::vector<int64_t> idx(c.dim(), 0);
    print_rec(os, c, idx, 0, edge_items, 0);
  }
  os << " (" << desc() << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

// ---- creation ------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    OKD_CHECK(d >= 0, "empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  ops::fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu())
    std::memset(t.raw_data(), 0, t.nbytes());
  else
    ops::fill_(t, 0.0);
  return t;
}
Tensor ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor scalar_tensor(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype) {
  OKD_CHECK(step != 0, "arange: step must be nonzero");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  Tensor t = empty({n}, dtype);
  OKD_DISPATCH_ALL(dtype, "arange", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + i * step);
  });
  return t;
}
Tensor arange(int64_t end, DType dtype) {
  return arange(0.0, static_cast<double>(end), 1.0, dtype);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  OKD_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()),
            "from_vector: ", values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_v<T>);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

template <class T>
std::vector<T> to_vector(const Tensor& t) {
  Tensor c = ops::contiguous(ops::to(ops::to(t, kCPU), dtype_v<T>));
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> to_vector<float>(const Tensor&);
template std::vector<double> to_vector<double>(const Tensor&);
template std::vector<int64_t> to_vector<int64_t>(const Tensor&);
template std::vector<uint8_t> to_vector<uint8_t>(const Tensor&);

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  OKD_CHECK(shape.size() == strides.size(), "make_view: shape ", shape_str(shape), " and strides ",
            shape_str(strides), " differ in rank");
  int64_t lo = offset, hi = offset;
  bool empty_view = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) empty_view = true;
    int64_t ext = (shape[i] - 1) * strides[i];
    if (ext > 0)
      hi += ext;
    else
      lo += ext;
  }
  int64_t cap = static_cast<int64_t>(base.impl()->storage->nbytes() / dtype_size(base.dtype()));
  OKD_CHECK(empty_view || (lo >= 0 && hi < std::max<int64_t>(cap, 1)), "make_view: view ",
            shape_str(shape), " strides ", shape_str(strides), " offset ", offset,
            " exceeds a storage of ", cap, " elements");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// ---- raw views -----------------------------------------------------------------------------
namespace ops {

namespace {
Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      OKD_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      OKD_CHECK(out[i] >= 0, op, ": invalid dimension ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    OKD_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", shape_str(shape),
              " for ", numel, " elements (from ", shape_str(from), ")");
    out[infer] = numel / known;
  }
  OKD_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape),
            " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
  return out;
}

// Strides for viewing t as shape without a copy, or empty when impossible (PyTorch's algorithm:
// match chunks of dims that are contiguous among themselves).
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(os.size()) - 1; d >= 0; --d) {
    tensor_numel *= os[d];
    if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = ost[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return false;
  return true;
}
}  // namespace

Tensor view(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "view", t.shape());
  Shape strides;
  OKD_CHECK(view_strides(t, s, strides), "view: a tensor of shape ", shape_str(t.shape()),
            " and strides ", shape_str(t.strides()), " cannot be viewed as ", shape_str(s),
            " without a copy; use reshape");
  return make_view(t, s, strides, t.offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "reshape", t.shape());
  Shape strides;
  if (view_strides(t, s, strides)) return make_view(t, s, strides, t.offset());
  Tensor c = contiguous(t);
  return make_view(c, s, contiguous_strides(s), c.offset());
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  if (t.dim() == 0) return reshape(t, {1});
  int64_t s = wrap_dim(start_dim, t.dim(), "flatten"), e = wrap_dim(end_dim, t.dim(), "flatten");
  OKD_CHECK(s <= e, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape out(t.shape().begin(), t.shape().begin() + s);
  int64_t n = 1;
  for (int64_t i = s; i <= e; ++i) n *= t.shape()[i];
  out.push_back(n);
  out.insert(out.end(), t.shape().begin() + e + 1, t.shape().end());
  return reshape(t, out);
}

Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1) {
  if (t.dim() == 0) return t;
  int64_t a = wrap_dim(dim0, t.dim(), "transpose"), b = wrap_dim(dim1, t.dim(), "transpose");
  Shape sh = t.shape(), st = t.strides();
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  return make_view(t, sh, st, t.offset());
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  OKD_CHECK(static_cast<int64_t>(dims.size()) == t.dim(), "permute: got ", dims.size(),
            " dims for a tensor of rank ", t.dim());
  Shape sh(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    OKD_CHECK(!seen[d], "permute: dim ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    sh[i] = t.shape()[d];
    st[i] = t.strides()[d];
  }
  return make_view(t, sh, st, t.offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, t.dim(), "narrow");
  int64_t n = t.shape()[d];
  if (start < 0) start += n;
  OKD_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: [", start, ", ",
            start + length, ") is out of range for dim ", d, " of size ", n);
  Shape sh = t.shape();
  sh[d] = length;
  return make_view(t, sh, t.strides(), t.offset() + start * t.strides()[d]);
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = wrap_dim(dim, t.dim(), "slice");
  OKD_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = t.shape()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = t.shape(), st = t.strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] *= step;
  return make_view(t, sh, st, t.offset() + start * t.strides()[d]);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  int64_t d = wrap_dim(dim, t.dim(), "select");
  int64_t n = t.shape()[d];
  if (index < 0) index += n;
  OKD_CHECK(index >= 0 && index < n, "select: index ", index, " out of range for dim ", d,
            " of size ", n);
  Shape sh = t.shape(), st = t.strides();
  int64_t off = t.offset() + index * st[d];
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  return make_view(t, sh, st, off);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  OKD_CHECK(shape.size() >= static_cast<size_t>(t.dim()), "expand: cannot expand ",
            shape_str(t.shape()), " to fewer dims ", shape_str(shape));
  size_t lead = shape.size() - t.dim();
  Shape sh(shape.size()), st(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      OKD_CHECK(shape[i] >= 0, "expand: -1 not allowed for new leading dim in ", shape_str(shape));
      sh[i] = shape[i];
      st[i] = 0;
      continue;
    }
    int64_t src = t.shape()[i - lead];
    int64_t want = shape[i] == -1 ? src : shape[i];
    OKD_CHECK(src == want || src == 1, "expand: cannot expand ", shape_str(t.shape()), " to ",
              shape_str(shape), " (dim ", i, ": ", src, " to ", want, ")");
    sh[i] = want;
    st[i] = src == want ? t.strides()[i - lead] : 0;
  }
  return make_view(t, sh, st, t.offset());
}

Tensor squeeze(const Tensor& t) {
  Shape sh, st;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (t.shape()[i] == 1) continue;
    sh.push_back(t.shape()[i]);
    st.push_back(t.strides()[i]);
  }
  return make_view(t, sh, st, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  if (t.dim() == 0) return t;
  int64_t d = wrap_dim(dim, t.dim(), "squeeze");
  if (t.shape()[d] != 1) return t;
  Shape sh = t.shape(), st = t.strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  return make_view(t, sh, st, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape sh = t.shape(), st = t.strides();
  int64_t s = d < t.dim() ? st[d] * sh[d] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, s);
  return make_view(t, sh, st, t.offset());
}

}  // namespace ops
void Tensor::set_data(const Tensor& src) {
  TensorImpl* d = checked();
  OKD_CHECK(src.defined(), "set_data: the source tensor is undefined");
  OKD_CHECK(d->autograd.producer < 0, "set_data: only a leaf tensor's data can be replaced");
  const TensorImpl* s = src.impl();
  if (s == d) return;
  d->storage = s->storage;
  d->shape = s->shape;
  d->strides = s->strides;
  d->offset = s->offset;
  d->dtype = s->dtype;
  d->autograd.grad.reset();
}

}  // namespace okd
