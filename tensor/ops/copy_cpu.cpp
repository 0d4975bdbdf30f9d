// contiguous, clone, dtype/device conversion, copy_ and fill_ on the CPU. copy_ and fill_ hand
// CUDA tensors to elementwise_cuda.cu; contiguous, clone and to(dtype) follow through copy_.
#include <cstring>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/strided.h"

namespace okd::ops {

void copy_(const Tensor& dst, const Tensor& src) {
  if (cuda::on_cuda(dst, src)) return cuda::copy_(dst, src);
  OKD_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "copy_: CPU kernel got ",
            dst.device().str(), " and ", src.device().str());
  Shape bshape = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  OKD_CHECK(bshape == dst.shape(), "copy_: source of shape ", shape_str(src.shape()),
            " does not broadcast to destination shape ", shape_str(dst.shape()));
  dst.impl()->storage->bump_version();
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      src.shape() == dst.shape()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  auto L = detail::make_loop<2>(dst.shape(),
                                {dst.strides(), detail::broadcast_strides(src, dst.shape())});
  OKD_DISPATCH_ALL(dst.dtype(), "copy_", [&]<class D>() {
    OKD_DISPATCH_ALL(src.dtype(), "copy_", [&]<class S>() {
      D* d = dst.data<D>();
      const S* s = src.data<S>();
      detail::for_each_row<2>(
          L, [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
            D* dp = d + off[0];
            const S* sp = s + off[1];
            for (int64_t i = 0; i < n; ++i) dp[i * st[0]] = static_cast<D>(sp[i * st[1]]);
          });
    });
  });
}

void fill_(const Tensor& dst, double value) {
  if (cuda::on_cuda(dst)) return cuda::fill_(dst, value);
  OKD_CHECK(dst.device().is_cpu(), "fill_: CPU kernel got a tensor on ", dst.device().str());
  dst.impl()->storage->bump_version();
  if (dst.numel() == 0) return;
  auto L = detail::make_loop<1>(dst.shape(), {dst.strides()});
  OKD_DISPATCH_ALL(dst.dtype(), "fill_", [&]<class T>() {
    T v = static_cast<T>(value);
    T* d = dst.data<T>();
    detail::for_each_row<1>(
        L, [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
          T* p = d + off[0];
          if (st[0] == 1)
            std::fill(p, p + n, v);
          else
            for (int64_t i = 0; i < n; ++i) p[i * st[0]] = v;
        });
  });
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

namespace {
DeviceCopyFn& device_copy_hook() {
  static DeviceCopyFn fn = nullptr;
  return fn;
}
}  // namespace

void set_device_copy(DeviceCopyFn fn) { device_copy_hook() = fn; }

Tensor to(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  OKD_CHECK(device_copy_hook() != nullptr, "to(", device.str(), "): ", cuda::unavailable_reason());
  Tensor src = contiguous(t);
  Tensor out = empty(t.shape(), t.dtype(), device);
  device_copy_hook()(out, src);
  return out;
}

void copy_across_devices_(const Tensor& dst, const Tensor& src) {
  if (dst.device() == src.device()) return copy_(dst, src);
  OKD_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous(),
            "copy_across_devices_: expected a contiguous destination of the source's shape and "
            "dtype, got ",
            src.desc(), " -> ", dst.desc());
  const Device device = dst.device().is_cpu() ? src.device() : dst.device();
  OKD_CHECK(device_copy_hook() != nullptr, "copy_across_devices_(", device.str(),
            "): ", cuda::unavailable_reason());
  device_copy_hook()(dst, contiguous(src));
}

}  // namespace okd::ops
