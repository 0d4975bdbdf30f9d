// ops::crop_flip_normalize on CUDA (augment.h): one thread per output element. The multiply and
// add are rounded separately (__fmul_rn, __fadd_rn: no fused multiply-add), so results equal the
// CPU op's bit for bit. A bad sample index is skipped (zeros) and deferred (cuda_ops.h).
#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"

namespace okd::cuda {

namespace {

__global__ void crop_flip_normalize_kernel(const uint8_t* images, const int64_t* index,
                                           const int64_t* params, const float* scale,
                                           const float* shift, float* out, int64_t total, int64_t N,
                                           int64_t C, int64_t H, int64_t W, bool reflect,
                                           DeviceErrorRecord* err) {
  OKD_GRID_STRIDE(e, total) {
    const int64_t ox = e % W, y = (e / W) % H, c = (e / (W * H)) % C, b = e / (W * H * C);
    const int64_t n = index[b];
    if (n < 0 || n >= N) {
      report_device_error(err, DeviceErrorKind::CropFlipNormalizeIndex, 0, b, n, N);
      out[e] = 0.0f;
      continue;
    }
    const int64_t dy = params[3 * b], dx = params[3 * b + 1];
    const int64_t x = params[3 * b + 2] != 0 ? W - 1 - ox : ox;  // the source column's x
    int64_t sy = y + dy, sx = x + dx;
    bool outside = sy < 0 || sy >= H || sx < 0 || sx >= W;
    if (outside && reflect) {  // padding < H, W (checked by the data layer): one reflection
      sy = sy < 0 ? -sy : (sy >= H ? 2 * (H - 1) - sy : sy);
      sx = sx < 0 ? -sx : (sx >= W ? 2 * (W - 1) - sx : sx);
      outside = false;
    }
    const float v = outside ? 0.0f : static_cast<float>(images[((n * C + c) * H + sy) * W + sx]);
    out[e] = __fadd_rn(__fmul_rn(v, scale[c]), shift[c]);
  }
}

}  // namespace

namespace gpu {

Tensor crop_flip_normalize(const Tensor& images_, const Tensor& index_, const Tensor& params_,
                           const Tensor& scale_, const Tensor& shift_, bool reflect) {
  // Dtypes, shapes and devices were checked by ops::crop_flip_normalize (augment_cpu.cpp).
  check_device(images_, "crop_flip_normalize");
  const Tensor images = ops::contiguous(images_), index = ops::contiguous(index_),
               params = ops::contiguous(params_), scale = ops::contiguous(scale_),
               shift = ops::contiguous(shift_);
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const int64_t B = index.numel();
  Tensor out = empty({B, C, H, W}, DType::Float32, images.device());
  const int64_t total = out.numel();
  if (total == 0) return out;
  crop_flip_normalize_kernel<<<grid_for(total), kThreads, 0, stream()>>>(
      images.device_data<uint8_t>(), index.device_data<int64_t>(), params.device_data<int64_t>(),
      scale.device_data<float>(), shift.device_data<float>(), out.device_data<float>(), total, N, C,
      H, W, reflect, device_error_record_for_kernels());
  OKD_CUDA_CHECK_LAUNCH("crop_flip_normalize");
  return out;
}

}  // namespace gpu

}  // namespace okd::cuda
