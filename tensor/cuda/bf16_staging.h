// bfloat16 staging buffers for the mixed-precision convolution and matmul (conv_cuda.cu,
// matmul_cuda.cu): float32 tensors stay float32; the cuDNN/cuBLAS call reads and writes bfloat16
// copies made here. Host declarations of the kernels in bf16_staging.cu.
#pragma once
#include "tensor/tensor.h"

namespace okd::cuda::gpu {

// x's values rounded to bfloat16 (tensor/bf16.h) in a fresh device buffer of 2 * numel bytes
// (a UInt8 tensor). x: a contiguous float32 device tensor. With nhwc, x must be 4-D [N, C, H, W]
// and the buffer holds it in [N, H, W, C] order (cuDNN's NHWC tensor or KRSC filter layout).
Tensor to_bf16(const Tensor& x, bool nhwc);
// The float32 tensor of shape s (4-D when nhwc) whose values are the bfloat16 buffer's, read in
// [N, H, W, C] order when nhwc. Exact: every bfloat16 is a float32.
Tensor from_bf16(const Tensor& buffer, const Shape& s, bool nhwc);
// Rounds a contiguous float32 device tensor to bfloat16 precision in place.
void round_bf16_(const Tensor& x);

}  // namespace okd::cuda::gpu
