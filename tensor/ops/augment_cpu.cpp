// ops::crop_flip_normalize on the CPU (augment.h), parallel over samples; the CUDA kernel is in
// augment_cuda.cu.
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/augment.h"
#include "tensor/ops/copy.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {
void check_crop_flip_normalize(const Tensor& images, const Tensor& index, const Tensor& params,
                               const Tensor& scale, const Tensor& shift) {
  const char* op = "crop_flip_normalize";
  OKD_CHECK(images.dtype() == DType::UInt8 && images.dim() == 4, op,
            ": expected uint8 images [N, C, H, W], got ", images.desc());
  const int64_t B = index.numel(), C = images.size(1);
  OKD_CHECK(index.dtype() == DType::Int64 && index.dim() == 1, op,
            ": expected int64 indices [B], got ", index.desc());
  OKD_CHECK(params.dtype() == DType::Int64 && params.dim() == 2 && params.size(0) == B &&
                params.size(1) == 3,
            op, ": expected int64 params [", B, ", 3] (dy, dx, flip), got ", params.desc());
  for (const Tensor* t : {&scale, &shift})
    OKD_CHECK(t->dtype() == DType::Float32 && t->dim() == 1 && t->size(0) == C, op,
              ": expected float32 scale and shift [", C, "], got ", t->desc());
  for (const Tensor* t : {&index, &params, &scale, &shift})
    OKD_CHECK(t->device() == images.device(), op, ": every operand must be on the images' device ",
              images.device().str(), ", got ", t->desc());
}
}  // namespace

Tensor crop_flip_normalize(const Tensor& images_, const Tensor& index_, const Tensor& params_,
                           const Tensor& scale_, const Tensor& shift_, bool reflect) {
  check_crop_flip_normalize(images_, index_, params_, scale_, shift_);
  if (cuda::on_cuda(images_))
    return cuda::crop_flip_normalize(images_, index_, params_, scale_, shift_, reflect);
  const Tensor images = contiguous(images_), index = contiguous(index_),
               params = contiguous(params_), scale = contiguous(scale_), shift = contiguous(shift_);
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const int64_t B = index.numel();
  const int64_t* idx = index.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    OKD_CHECK(idx[b] >= 0 && idx[b] < N, "crop_flip_normalize: index ", idx[b], " at position ", b,
              " is outside [0, ", N, ")");
  Tensor out = empty({B, C, H, W}, DType::Float32);
  const uint8_t* src = images.data<uint8_t>();
  const int64_t* prm = params.data<int64_t>();
  const float* sc = scale.data<float>();
  const float* sh = shift.data<float>();
  float* dst = out.data<float>();
  parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t dy = prm[3 * b], dx = prm[3 * b + 1];
      const bool flip = prm[3 * b + 2] != 0;
      for (int64_t c = 0; c < C; ++c) {
        const uint8_t* plane = src + (idx[b] * C + c) * H * W;
        float* o = dst + (b * C + c) * H * W;
        for (int64_t y = 0; y < H; ++y) {
          int64_t sy = y + dy;
          bool row_out = sy < 0 || sy >= H;
          if (row_out && reflect) {
            sy = sy < 0 ? -sy : 2 * (H - 1) - sy;
            row_out = false;
          }
          for (int64_t x = 0; x < W; ++x) {
            int64_t sx = x + dx;
            bool outside = row_out || sx < 0 || sx >= W;
            if (!row_out && (sx < 0 || sx >= W) && reflect) {
              sx = sx < 0 ? -sx : 2 * (W - 1) - sx;
              outside = false;
            }
            const float v = outside ? 0.0f : static_cast<float>(plane[sy * W + sx]);
            o[y * W + (flip ? W - 1 - x : x)] = v * sc[c] + sh[c];
          }
        }
      }
    }
  });
  return out;
}

}  // namespace okd::ops
