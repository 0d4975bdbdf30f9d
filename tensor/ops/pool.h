// Raw 2-D pooling kernels, NCHW. Output size (H + 2 pad - kernel) / stride + 1.
//   max_pool2d saves, per output, the flat index (h * W + w) of the max within its plane.
//   avg_pool2d divides by kernel^2 (PyTorch's count_include_pad=True default).
//   adaptive_avg_pool2d: output cell (i, j) averages rows [floor(i H / OH), ceil((i+1) H / OH)).
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride,
                                             int64_t pad);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad);
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t pad);
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& dy, const Shape& input_shape);

}  // namespace okd::ops
