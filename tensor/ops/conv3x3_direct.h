// Direct 3x3 convolution (stride 1, padding 1, no dilation or groups; float32 NCHW) with AVX-512
// register tiles, used by conv_cpu.cpp in place of im2col + GEMM when the CPU has AVX-512: the
// convolution of every CIFAR ResNet/WRN block. No 9x im2col buffer is written or packed; the input
// is copied once per sample into a zero-bordered buffer and read in place.
#pragma once
#include "tensor/ops/conv.h"

namespace okd::ops::direct3x3 {

// True when the shapes fit (3x3, stride 1, pad 1, dilation 1, groups 1, float32), the CPU has
// AVX-512 F/BW/DQ/VL and set_conv_direct_enabled(false) has not been called.
bool applies(DType dtype, const Shape& weight_shape, const Conv2dParams& p);

// Same contracts as conv2d_forward / conv2d_backward_input / conv2d_backward_weight; inputs must
// be contiguous float32. The weight gradient is summed over fixed chunks of the batch in order,
// so it does not depend on the thread count.
Tensor forward(const Tensor& input, const Tensor& weight, const Tensor& bias);
Tensor backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape);
Tensor backward_weight(const Tensor& grad_out, const Tensor& input, const Shape& weight_shape);

// The im2col of the same convolution for planes 8 wide with an even height (CIFAR's 8x8 last
// stage, whose weight gradient conv_cpu.cpp forms as im2col + GEMM), vectorised:
// col[(c*3 + i)*3 + j][oh*8 + ow] = x[c][oh + i - 1][ow + j - 1], 0 outside; x is C planes [H][8].
// im2col_w8_applies: applies() and W == 8, H even, H <= 64.
bool im2col_w8_applies(DType dtype, const Shape& weight_shape, const Conv2dParams& p, int64_t H,
                       int64_t W);
void im2col_w8_planes(const float* x, int64_t C, int64_t H, float* col);

}  // namespace okd::ops::direct3x3
