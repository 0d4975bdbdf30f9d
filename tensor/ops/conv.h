// Raw 2-D convolution kernels, forward and both backward passes, NCHW:
//   input  [N, C, H, W], weight [O, C/groups, kH, kW], bias [O] (optional), output [N, O, OH, OW]
//   OH = (H + 2 pad - dil (kH - 1) - 1) / stride + 1 (likewise OW).
// conv_transpose2d is the adjoint of conv2d and is built from the same three kernels:
//   input [N, C_in, H, W], weight [C_in, C_out/groups, kH, kW], output [N, C_out, OH, OW] with
//   OH = (H - 1) stride - 2 pad + dil (kH - 1) + output_padding + 1.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  // BFloat16: every direction (forward, both gradients, the transposed conv) multiplies
  // bfloat16-rounded operands, accumulates in float32 and rounds its result to bfloat16 (dtype.h);
  // the bias is added afterwards in float32. float32 tensors only; float64 ignores it.
  Precision precision = Precision::Float32;
};

// Output spatial size of conv2d; throws naming the shapes when it would be empty.
std::pair<int64_t, int64_t> conv2d_output_size(const Shape& input, const Shape& weight,
                                               const Conv2dParams& p);

Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p);
// dL/dinput for conv2d, given dL/doutput; input_shape is [N, C, H, W].
// With `accumulate` defined it returns accumulate + dx, written into accumulate's own memory, as
// that same tensor (its storage version bumped, as by an in-place op): how autograd adds a second
// gradient of a tensor that feeds a convolution and something else (a ResNet block's input)
// without a separate add. accumulate must have input_shape, grad_out's dtype and device, and be
// contiguous (checked); the caller guarantees that nothing else sees its memory. On cuDNN (float32
// and float64) the sum costs nothing: backward data with beta = 1, dx_out = 1 * dx + 1 * dx_out.
// With bf16 staging, on the CPU and emulated, dx is computed as without it and then added (add_),
// so the CPU result is exactly accumulate + dx.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dParams& p, const Tensor& accumulate = Tensor());
// The checks on conv2d_backward_input's `accumulate` (shared by the CPU and CUDA paths).
void check_conv_accumulate(const Tensor& accumulate, const Tensor& grad_out,
                           const Shape& input_shape, const char* op);
// dL/dweight for conv2d (summed over the batch in a fixed order: thread-count independent).
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const Conv2dParams& p);
// dL/dbias: grad_out summed over N, H, W.
Tensor conv2d_backward_bias(const Tensor& grad_out);

// On CPUs with AVX-512, float32 3x3 stride-1 pad-1 convolutions run a direct kernel instead of
// im2col + GEMM (conv3x3_direct.h). Off: every convolution takes im2col + GEMM (tests compare
// the two; benchmarks measure the gain). Process-wide; on by default unless the environment
// sets OKD_CONV_DIRECT=0.
void set_conv_direct_enabled(bool on);
bool conv_direct_enabled();

// output_padding < max(stride, dilation), as in PyTorch.
Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const Conv2dParams& p, int64_t output_padding_h,
                                int64_t output_padding_w);

// output_padding >= stride (possible when dilation > stride) gives output sizes whose conv2d
// does not come back to the input size (cuDNN rejects them, and the adjoint would be misshapen).
// Such outputs are a crop of the uncropped transposed convolution (pad 0, output_padding 0) of
// size F = (H - 1) stride + dil (kH - 1) + 1:  out[o] = full[o + pad] where o + pad < F, else 0
// (plus the bias). conv_transpose2d_forward takes that path by itself; the gradient uses:
bool conv_transpose2d_crops_full(const Conv2dParams& p, int64_t output_padding_h,
                                 int64_t output_padding_w);
// The adjoint of the crop: grad_out [N, C_out, OH, OW] placed at (pad_h, pad_w) into zeros of
// [N, C_out, FH, FW], on grad_out's device. conv2d with p's padding set to 0 then maps it onto
// the input (dx) and, with the input as grad_output, onto the weight (dW).
Tensor conv_transpose2d_uncrop(const Tensor& grad_out, const Shape& input_shape,
                               const Shape& weight_shape, const Conv2dParams& p);

}  // namespace okd::ops
