// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) and the
// random tensor creators built on it. Element i of a draw uses block (offset + i/4), word i%4, so
// any split of the work across threads produces the same numbers.
#include "tensor/random.h"

#include <cmath>

#include "tensor/parallel.h"

namespace okd {

std::array<uint32_t, 4> philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kW0;
    k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

namespace {
// Fills n values with f(word index i, the 4 words of block i/4).
template <class T, class F>
void fill_words(T* out, int64_t n, Generator& gen, int words_per_value, F&& f) {
  int64_t words = n * words_per_value;
  uint64_t first = gen.reserve(static_cast<uint64_t>((words + 3) / 4));
  uint64_t key = gen.seed();
  parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = f(i, first, key);
  });
}
inline uint32_t word(uint64_t first, uint64_t key, int64_t w) {
  return philox4x32(first + static_cast<uint64_t>(w / 4), 0, key)[w % 4];
}
inline double u01(uint32_t x) { return (x >> 8) * (1.0 / 16777216.0); }  // 24-bit, [0,1)
}  // namespace

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype) {
  Tensor t = empty(shape, dtype);
  OKD_DISPATCH_FLOAT(dtype, "uniform", [&]<class T>() {
    fill_words(t.data<T>(), t.numel(), gen, 1, [&](int64_t i, uint64_t first, uint64_t key) {
      return static_cast<T>(lo + (hi - lo) * u01(word(first, key, i)));
    });
  });
  return t;
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
  return uniform(shape, 0, 1, gen, dtype);
}

// Box-Muller on two words per value: z = sqrt(-2 ln u1) cos(2 pi u2), u1 in (0, 1].
Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = empty(shape, dtype);
  OKD_DISPATCH_FLOAT(dtype, "randn", [&]<class T>() {
    fill_words(t.data<T>(), t.numel(), gen, 2, [&](int64_t i, uint64_t first, uint64_t key) {
      auto b = philox4x32(first + static_cast<uint64_t>(i / 2), 0, key);
      int j = static_cast<int>(i % 2) * 2;
      double u1 = 1.0 - u01(b[j]), u2 = u01(b[j + 1]);
      return static_cast<T>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
    });
  });
  return t;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype) {
  OKD_CHECK(high > low, "randint: empty range [", low, ", ", high, ")");
  Tensor t = empty(shape, dtype);
  uint64_t range = static_cast<uint64_t>(high - low);
  OKD_DISPATCH_ALL(dtype, "randint", [&]<class T>() {
    fill_words(t.data<T>(), t.numel(), gen, 2, [&](int64_t i, uint64_t first, uint64_t key) {
      auto b = philox4x32(first + static_cast<uint64_t>(i / 2), 0, key);
      int j = static_cast<int>(i % 2) * 2;
      uint64_t x = (static_cast<uint64_t>(b[j]) << 32) | b[j + 1];
      return static_cast<T>(low + static_cast<int64_t>(x % range));
    });
  });
  return t;
}

Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype) {
  OKD_CHECK(p >= 0 && p <= 1, "bernoulli: p must be in [0, 1], got ", p);
  Tensor t = empty(shape, dtype);
  OKD_DISPATCH_ALL(dtype, "bernoulli", [&]<class T>() {
    fill_words(t.data<T>(), t.numel(), gen, 1, [&](int64_t i, uint64_t first, uint64_t key) {
      return static_cast<T>(u01(word(first, key, i)) < p ? 1 : 0);
    });
  });
  return t;
}

// Fisher-Yates driven by one draw per position.
Tensor randperm(int64_t n, Generator& gen) {
  Tensor t = arange(n);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t x = (static_cast<uint64_t>(gen.next_u32()) << 32) | gen.next_u32();
    std::swap(p[i], p[static_cast<int64_t>(x % static_cast<uint64_t>(i + 1))]);
  }
  return t;
}

}  // namespace okd
