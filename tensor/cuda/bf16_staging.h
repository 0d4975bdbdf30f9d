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
// dst += from_bf16(buffer, dst.shape(), nhwc) in one pass (bit for bit the same: widening is
// exact). dst: a contiguous float32 device tensor; a bfloat16 result accumulated into a gradient.
void add_from_bf16_(const Tensor& dst, const Tensor& buffer, bool nhwc);
// Rounds a contiguous float32 device tensor to bfloat16 precision in place.
void round_bf16_(const Tensor& x);

// to_bf16, reusing the copy made earlier of the same tensor (same storage, offset, shape and
// order) while the storage's version says nobody has written it since. A training step stages
// each weight for the forward and again for the input gradient, each conv input for the forward
// and again for the weight gradient, and each output gradient for both gradients: reuse halves
// those conversions (one launch each). Copies are kept per thread (okd's stream is per thread)
// and dropped once their source is freed or written.
Tensor to_bf16_reused(const Tensor& x, bool nhwc);
// Makes copy (a bfloat16 buffer written by another kernel: batch norm's, set_bf16_prestaging) the
// reusable copy of x in NCHW order, as if to_bf16_reused had made it now. x: a contiguous float32
// device tensor whose values copy holds rounded; call it after the kernel that writes both.
void remember_bf16_copy(const Tensor& x, const Tensor& copy);
// Drops every reusable copy. Graph capture calls it when it begins and ends (a copy made outside
// the graph must not be read inside it, nor one from the graph's pool outside it) and a replay
// calls it (a replay writes tensors without advancing their versions).
void forget_bf16_copies();
// How many copies to_bf16_reused holds now, and how many conversions it has saved (for tests).
int64_t bf16_copies_held();
int64_t bf16_copies_reused();

}  // namespace okd::cuda::gpu
