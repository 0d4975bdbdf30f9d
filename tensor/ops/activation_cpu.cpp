// Fused activation backward kernels on the CPU.
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/copy.h"
#include "tensor/parallel.h"

namespace okd::ops {

Tensor relu_backward(const Tensor& dy_, const Tensor& y_) {
  if (cuda::on_cuda(dy_, y_)) return cuda::relu_backward(dy_, y_);
  OKD_CHECK(dy_.shape() == y_.shape() && dy_.dtype() == y_.dtype(), "relu_backward: gradient ",
            dy_.desc(), " does not match output ", y_.desc());
  OKD_CHECK(dy_.device().is_cpu(), "relu_backward: the CPU kernel got a tensor on ",
            dy_.device().str());
  Tensor dy = contiguous(dy_), y = contiguous(y_);
  Tensor dx = empty(y.shape(), y.dtype());
  OKD_DISPATCH_FLOAT(y.dtype(), "relu_backward", [&]<class T>() {
    const T* pdy = dy.data<T>();
    const T* py = y.data<T>();
    T* pdx = dx.data<T>();
    parallel_for(0, y.numel(), 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) pdx[i] = py[i] > T(0) ? pdy[i] : T(0);
    });
  });
  return dx;
}

}  // namespace okd::ops
