// The standard CIFAR training augmentation of a batch as one raw op, so that a dataset kept on the
// device (train_cifar --data-on-device, issue 9) is augmented there: for each sample b (image
// index[b] of images) and output pixel (c, y, x),
//   src = images[index[b], c, y + dy_b, x + dx_b]   (0 outside the image, or mirrored: reflect)
//   out[b, c, y, flip_b ? W-1-x : x] = float(src) * scale[c] + shift[c]
// with params[b] = (dy_b, dx_b, flip_b). It is data::augment_image's pad-crop + flip + normalise
// (data/batch_loader.cpp) with the random draws made by the caller, bit for bit on the CPU.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

// images uint8 [N, C, H, W]; index int64 [B] in [0, N); params int64 [B, 3]; scale and shift
// float32 [C]. Returns float32 [B, C, H, W] on the images' device.
Tensor crop_flip_normalize(const Tensor& images, const Tensor& index, const Tensor& params,
                           const Tensor& scale, const Tensor& shift, bool reflect);

}  // namespace okd::ops
