// okd::Tensor: a cheap handle on a shared TensorImpl (shape, strides, offset, dtype, storage).
// Copying a Tensor copies the handle; views share the Storage. Shapes use N, C, H, W for images.
// The autograd fields live here (as PyTorch keeps AutogradMeta on the tensor), but all logic that
// reads them lives in autograd/: this layer never records or differentiates anything.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/storage.h"

namespace okd {

using Shape = std::vector<int64_t>;

class Tensor;
struct TensorImpl;

// What autograd keeps on a tensor. producer >= 0 names the tape entry that made it (a non-leaf);
// generation tells which tape that entry belonged to (the tape is cleared after backward).
struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  int64_t producer = -1;
  int slot = 0;
  uint64_t generation = 0;
  std::string name;  // optional, shown by the tape dump (parameters get their dotted name)
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  AutogradMeta autograd;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked()->shape; }
  const Shape& strides() const { return checked()->strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  int64_t offset() const { return checked()->offset; }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }

  // Pointer to element [0,...,0] (storage base + offset) of a CPU tensor, for host code; a tensor
  // on another device is an error naming it (a host loop must never read device memory).
  // data<T>() also checks T against the dtype.
  void* raw_data() const;
  template <class T>
  T* data() const {
    check_dtype(dtype_v<T>);
    return static_cast<T*>(raw_data());
  }
  // The same pointers on any device, for backend code that hands them to device kernels or
  // copies (tensor/cuda/, tensor/ops/*_cuda.cu).
  void* device_raw_data() const;
  template <class T>
  T* device_data() const {
    check_dtype(dtype_v<T>);
    return static_cast<T*>(device_raw_data());
  }
  // The value of a one-element tensor, converted to double (copied to the host when on a device,
  // which waits for the device's queued work).
  double item() const;
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }
  // Value at a multi-index (slow; for tests and debugging), converted to double.
  double at(std::initializer_list<int64_t> index) const;
  double at(const std::vector<int64_t>& index) const;

  // --- autograd metadata (the logic is in autograd/) ---
  bool requires_grad() const { return impl_ && impl_->autograd.requires_grad; }
  // Marks a leaf as needing a gradient. Only floating tensors can.
  Tensor& requires_grad_(bool value = true);
  Tensor grad() const { return Tensor(checked()->autograd.grad); }
  void set_grad(const Tensor& g) { checked()->autograd.grad = g.impl_; }
  bool is_leaf() const { return checked()->autograd.producer < 0; }
  // Points this tensor at src's data, shape, strides and dtype in place (PyTorch's `t.data =
  // src`): every handle sharing this tensor sees the change; autograd flags and name stay, the
  // gradient is dropped. How Module::to converts the parameters that layers also hold.
  void set_data(const Tensor& src);
  // Keep the gradient of this non-leaf after backward (for auditing intermediate values).
  void retain_grad() { checked()->autograd.retains_grad = true; }
  const std::string& name() const { return checked()->autograd.name; }
  Tensor& set_name(std::string n) {
    checked()->autograd.name = std::move(n);
    return *this;
  }

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  bool shares_storage(const Tensor& o) const;
  // "Tensor[2, 3] float32 cpu"
  std::string desc() const;
  // The values, NumPy style, eliding the middle of long dimensions.
  std::string to_string(int64_t edge_items = 3) const;

 private:
  void check_dtype(DType expected) const {
    OKD_CHECK(dtype() == expected, "data<", dtype_name(expected), ">() called on a ",
              dtype_name(dtype()), " tensor");
  }
  TensorImpl* checked() const {
    if (!impl_) throw Error("use of an undefined (default-constructed) Tensor");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- shape helpers ------------------------------------------------------------------------
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// Normalises a possibly negative dim against rank; throws naming op when out of range.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);
// NumPy broadcasting of two shapes; throws naming op and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// ---- creation ------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = kCPU);
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = kCPU);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// [start, end) in steps of step, like numpy.arange.
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Int64);
Tensor arange(int64_t end, DType dtype = DType::Int64);

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape);
template <class T>
Tensor from_vector(const std::vector<T>& values) {
  return from_vector(values, Shape{static_cast<int64_t>(values.size())});
}
// tensor({1.f, 2.f, 3.f}) is a 1-D float32 tensor; tensor({1.0, 2.0}, {2, 1}) a 2x1 float64 one.
template <class T>
Tensor tensor(std::initializer_list<T> values, const Shape& shape) {
  return from_vector(std::vector<T>(values), shape);
}
template <class T>
Tensor tensor(std::initializer_list<T> values) {
  return from_vector(std::vector<T>(values));
}
// Copies a tensor's values out (any layout) as a flat row-major vector of T.
template <class T>
std::vector<T> to_vector(const Tensor& t);

// A view on base's storage with the given geometry (checked against the storage size).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

}  // namespace okd
