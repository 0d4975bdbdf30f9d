// Raw copies, conversions and fills. contiguous() returns t itself when already contiguous.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);              // always a fresh contiguous copy
Tensor to(const Tensor& t, DType dtype);    // t itself when the dtype already matches
Tensor to(const Tensor& t, Device device);  // t itself when already there
// dst[...] = src, src broadcast to dst's shape and converted to dst's dtype. Bumps dst's version.
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, double value);

// dst = src between devices (an upload into or download from an existing tensor: the static inputs
// of a captured step are refilled this way). Same shape and dtype, dst contiguous; src is made
// contiguous first. Bumps dst's version. Same device: copy_.
void copy_across_devices_(const Tensor& dst, const Tensor& src);

// Installed by the CUDA backend: copies a contiguous tensor between devices (same shape, dtype).
using DeviceCopyFn = void (*)(const Tensor& dst, const Tensor& src);
void set_device_copy(DeviceCopyFn fn);

}  // namespace okd::ops
