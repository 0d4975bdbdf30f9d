// Counter-based random numbers (Philox-4x32-10). Element i of a draw depends only on the seed,
// the generator's offset and i, so results do not depend on the number of threads, and the
// state is two integers that a checkpoint can save.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/cuda/graph.h"
#include "tensor/tensor.h"

namespace okd {

// One Philox-4x32-10 block: four 32-bit outputs for a 128-bit counter and a 64-bit key.
std::array<uint32_t, 4> philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  void manual_seed(uint64_t seed) {
    seed_ = seed;
    offset_ = 0;
  }
  // Reserves n blocks (4 numbers each) and returns the first block's counter.
  uint64_t reserve(uint64_t blocks) {
    uint64_t first = offset_;
    offset_ += blocks;
    return first;
  }
  // Draws on a device take their first block from this int64 tensor on the device, a mirror of
  // the offset that advances there with each draw: a captured step (tensor/cuda/graph.h) then
  // draws new numbers on every replay, where a host offset would be frozen into the graph.
  // Returns the counter holding `first` (refilled when the host state moved on, e.g. a CPU draw
  // or a load; never inside a capture).
  const Tensor& device_counter(Device device, uint64_t first);
  // After a device draw of `blocks` blocks: the counter advances on the device (and, when the draw
  // was captured, the host offset advances again at every replay).
  void advance_device_counter(uint64_t blocks);

  // A single draw (host-side helpers, e.g. a shuffle): one block each.
  uint32_t next_u32() { return philox4x32(reserve(1), 0, seed_)[0]; }
  double next_double() { return (next_u32() >> 8) * (1.0 / 16777216.0); }  // [0, 1)

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  cuda::DeviceCounter device_counter_;  // the offset on the device of the last device draw
                                        // (a copy of the generator makes its own)
};

Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform [0,1), standard normal (Box-Muller), integers in [low, high), and 0/1 with P(1) = p.
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::Float32);
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32);
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen,
               DType dtype = DType::Int64);
// bernoulli and uniform also draw on a CUDA device, the same numbers as on the CPU (tensor/philox.h
// compiles for both): a seed gives the same dropout masks everywhere.
Tensor bernoulli(const Shape& shape, double p, Generator& gen, DType dtype = DType::Float32,
                 Device device = kCPU);
// Uniform in [lo, hi).
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen,
               DType dtype = DType::Float32, Device device = kCPU);

namespace detail {
// The CPU fills of uniform and bernoulli from an explicit first block and key (the CUDA emulator
// runs them on its host memory).
Tensor uniform_from(const Shape& shape, DType dtype, double lo, double hi, uint64_t first,
                    uint64_t key);
Tensor bernoulli_from(const Shape& shape, DType dtype, double p, uint64_t first, uint64_t key);
}  // namespace detail
inline Tensor rand(const Shape& s, DType d = DType::Float32) {
  return rand(s, default_generator(), d);
}
inline Tensor randn(const Shape& s, DType d = DType::Float32) {
  return randn(s, default_generator(), d);
}
// A random permutation of 0..n-1 (int64), from the generator.
Tensor randperm(int64_t n, Generator& gen);

}  // namespace okd
