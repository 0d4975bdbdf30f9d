// bfloat16 rounding, bit for bit the same on the host and in CUDA kernels: a bfloat16 is the upper
// 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define OKD_BF16_HD __host__ __device__ inline
#else
#define OKD_BF16_HD inline
#endif

namespace okd::bf16 {

OKD_BF16_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
OKD_BF16_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// The bfloat16 nearest to f, ties to even (the upper half of the rounded float32). A NaN stays a
// NaN (made quiet, so that dropping the low bits cannot turn it into an infinity); values beyond
// the largest bfloat16 round to +-inf, as IEEE rounding does.
OKD_BF16_HD uint16_t from_float(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}
OKD_BF16_HD float to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }
// f rounded to bfloat16 precision, as a float32.
OKD_BF16_HD float round(float f) { return to_float(from_float(f)); }

}  // namespace okd::bf16
