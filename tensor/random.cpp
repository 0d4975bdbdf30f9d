// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) and the
// random tensor creators built on it. Element i of a draw uses block (offset + i/4), word i%4, so
// any split of the work across threads produces the same numbers.
#include "tensor/random.h"

#include <cmath>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/graph.h"
#include "tensor/parallel.h"
#include "tensor/philox.h"

namespace okd {

std::array<uint32_t, 4> philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  std::array<uint32_t, 4> out;
  philox::block(counter_lo, counter_hi, key, out.data());
  return out;
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

const Tensor& Generator::device_counter(Device device, uint64_t first) {
  return device_counter_.holding(device, static_cast<int64_t>(first), "Generator");
}

void Generator::advance_device_counter(uint64_t blocks) {
  device_counter_.advance(static_cast<int64_t>(blocks));
  if (cuda::capturing())
    cuda::on_replay([this, blocks] {
      offset_ += blocks;
      device_counter_.replayed(static_cast<int64_t>(blocks));
    });
}

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
using philox::u01;
using philox::word;
}  // namespace

namespace detail {
Tensor uniform_from(const Shape& shape, DType dtype, double lo, double hi, uint64_t first,
                    uint64_t key) {
  Tensor t = empty(shape, dtype);
  OKD_DISPATCH_FLOAT(dtype, "uniform", [&]<class T>() {
    T* out = t.data<T>();
    parallel_for(0, t.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        out[i] = static_cast<T>(lo + (hi - lo) * u01(word(first, key, i)));
    });
  });
  return t;
}

Tensor bernoulli_from(const Shape& shape, DType dtype, double p, uint64_t first, uint64_t key) {
  Tensor t = empty(shape, dtype);
  OKD_DISPATCH_ALL(dtype, "bernoulli", [&]<class T>() {
    T* out = t.data<T>();
    parallel_for(0, t.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<T>(u01(word(first, key, i)) < p ? 1 : 0);
    });
  });
  return t;
}
}  // namespace detail

// One word per value: the generator advances by ceil(n / 4) blocks on every device.
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype,
               Device device) {
  OKD_CHECK(is_floating(dtype), "uniform: expected a float dtype, got ", dtype_name(dtype));
  const uint64_t blocks = static_cast<uint64_t>((shape_numel(shape) + 3) / 4);
  const uint64_t first = gen.reserve(blocks);
  if (device.is_cuda()) {
    Tensor t =
        cuda::random_uniform(shape, dtype, lo, hi, gen.device_counter(device, first), gen.seed());
    gen.advance_device_counter(blocks);
    return t;
  }
  return detail::uniform_from(shape, dtype, lo, hi, first, gen.seed());
}

Tensor rand(const Shape& shape, Generator& gen, DType dtype) {
  return uniform(shape, 0, 1, gen, dtype, kCPU);
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

Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype, Device device) {
  OKD_CHECK(p >= 0 && p <= 1, "bernoulli: p must be in [0, 1], got ", p);
  const uint64_t blocks = static_cast<uint64_t>((shape_numel(shape) + 3) / 4);
  const uint64_t first = gen.reserve(blocks);
  if (device.is_cuda()) {
    Tensor t =
        cuda::random_bernoulli(shape, dtype, p, gen.device_counter(device, first), gen.seed());
    gen.advance_device_counter(blocks);
    return t;
  }
  return detail::bernoulli_from(shape, dtype, p, first, gen.seed());
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
