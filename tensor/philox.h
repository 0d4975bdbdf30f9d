// Philox-4x32-10 and the mapping of its words to [0, 1), as inline functions that compile for the
// host (g++) and the device (nvcc), so CPU and CUDA random tensors are the same numbers for a
// generator state (tensor/random.cpp, tensor/ops/random_cuda.cu).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define OKD_HOST_DEVICE __host__ __device__
#else
#define OKD_HOST_DEVICE
#endif

namespace okd::philox {

// One block: the four 32-bit outputs for a 128-bit counter and a 64-bit key, written to out.
OKD_HOST_DEVICE inline void block(uint64_t counter_lo, uint64_t counter_hi, uint64_t key,
                                  uint32_t out[4]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// Word w of a draw whose first block is `first`: block first + w / 4, word w % 4.
OKD_HOST_DEVICE inline uint32_t word(uint64_t first, uint64_t key, int64_t w) {
  uint32_t b[4];
  block(first + static_cast<uint64_t>(w / 4), 0, key, b);
  return b[w % 4];
}

// 24 bits of x as a double in [0, 1).
OKD_HOST_DEVICE inline double u01(uint32_t x) { return (x >> 8) * (1.0 / 16777216.0); }

}  // namespace okd::philox
