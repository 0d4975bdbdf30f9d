// The bfloat16 staging kernels of bf16_staging.h: float32 <-> bfloat16 copies, optionally
// transposing NCHW <-> NHWC on the way (the thread walks the bfloat16 side in order, so its
// accesses are coalesced there), and in-place rounding. The rounding is tensor/bf16.h's, the same
// code as the CPU's round_bf16, so both devices round every value identically.
#include <cstdint>

#include "tensor/bf16.h"
#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/launch.cuh"

namespace okd::cuda::gpu {

namespace {

// Element j of the [N, H, W, C] order is element ((n C + c) H + h) W + w of the [N, C, H, W] one.
struct Nhwc {
  int64_t C = 1, H = 1, W = 1;
  __device__ __forceinline__ int64_t nchw_index(int64_t j) const {
    const int64_t c = j % C;
    int64_t r = j / C;
    const int64_t w = r % W;
    r /= W;
    const int64_t h = r % H;
    const int64_t n = r / H;
    return ((n * C + c) * H + h) * W + w;
  }
};

__global__ void to_bf16_kernel(const float* x, uint16_t* out, int64_t n, bool nhwc, Nhwc map) {
  OKD_GRID_STRIDE(j, n) { out[j] = bf16::from_float(x[nhwc ? map.nchw_index(j) : j]); }
}

__global__ void from_bf16_kernel(const uint16_t* buf, float* out, int64_t n, bool nhwc, Nhwc map) {
  OKD_GRID_STRIDE(j, n) { out[nhwc ? map.nchw_index(j) : j] = bf16::to_float(buf[j]); }
}

__global__ void round_bf16_kernel(float* x, int64_t n) {
  OKD_GRID_STRIDE(i, n) { x[i] = bf16::round(x[i]); }
}

Nhwc nhwc_map(const Shape& s, bool nhwc, const char* op) {
  if (!nhwc) return {};
  OKD_CHECK(s.size() == 4, op, ": the NHWC order needs a 4-D shape, got ", shape_str(s));
  return {s[1], s[2], s[3]};
}

}  // namespace

Tensor to_bf16(const Tensor& x, bool nhwc) {
  const char* op = "to_bf16";
  OKD_CHECK(x.dtype() == DType::Float32 && x.is_contiguous(), op,
            ": expected a contiguous float32 tensor, got ", x.desc());
  check_device(x, op);
  const Nhwc map = nhwc_map(x.shape(), nhwc, op);
  const int64_t n = x.numel();
  Tensor out = empty({2 * n}, DType::UInt8, x.device());
  if (n == 0) return out;
  to_bf16_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      x.device_data<float>(), static_cast<uint16_t*>(out.device_raw_data()), n, nhwc, map);
  OKD_CUDA_CHECK_LAUNCH(op);
  return out;
}

Tensor from_bf16(const Tensor& buffer, const Shape& s, bool nhwc) {
  const char* op = "from_bf16";
  const Nhwc map = nhwc_map(s, nhwc, op);
  const int64_t n = shape_numel(s);
  OKD_CHECK(buffer.dtype() == DType::UInt8 && buffer.is_contiguous() && buffer.numel() == 2 * n, op,
            ": expected a buffer of ", 2 * n, " bytes for shape ", shape_str(s), ", got ",
            buffer.desc());
  check_device(buffer, op);
  Tensor out = empty(s, DType::Float32, buffer.device());
  if (n == 0) return out;
  from_bf16_kernel<<<grid_for(n), kThreads, 0, stream()>>>(
      static_cast<const uint16_t*>(buffer.device_raw_data()), out.device_data<float>(), n, nhwc,
      map);
  OKD_CUDA_CHECK_LAUNCH(op);
  return out;
}

void round_bf16_(const Tensor& x) {
  const char* op = "round_bf16_";
  OKD_CHECK(x.dtype() == DType::Float32 && x.is_contiguous(), op,
            ": expected a contiguous float32 tensor, got ", x.desc());
  check_device(x, op);
  x.impl()->storage->bump_version();
  const int64_t n = x.numel();
  if (n == 0) return;
  round_bf16_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.device_data<float>(), n);
  OKD_CUDA_CHECK_LAUNCH(op);
}

}  // namespace okd::cuda::gpu
