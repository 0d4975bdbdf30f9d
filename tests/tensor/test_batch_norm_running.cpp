// ops::batch_norm_update_running_ (the running mean and variance of batch norm in one pass): bit
// for bit the pair ops::mul_(r, 1 - m), ops::add_(r, batch, m) it replaced, on the CPU and, where
// there is a GPU, on CUDA; and clear errors for mismatched operands.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/norm.h"
#include "tensor/random.h"
#include "tensor/runtime.h"

using namespace okd;

namespace {

Tensor uniform_t(int64_t n, double lo, double hi, DType dt, uint64_t seed) {
  Generator g(seed);
  return uniform({n}, lo, hi, g, dt);
}

// The old composition, on copies.
std::pair<Tensor, Tensor> composed(const Tensor& rm, const Tensor& rv, const Tensor& bm,
                                   const Tensor& bv, double m) {
  Tensor a = ops::clone(rm), b = ops::clone(rv);
  ops::mul_(a, 1.0 - m);
  ops::add_(a, bm, m);
  ops::mul_(b, 1.0 - m);
  ops::add_(b, bv, m);
  return {a, b};
}

}  // namespace

TEST(BatchNormRunning, MatchesMulThenAddBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (double m : {0.1, 0.01, 0.37, 1.0}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " momentum " + std::to_string(m));
      const Tensor rm = uniform_t(67, -3, 3, dt, 1), rv = uniform_t(67, 0.1, 5, dt, 2);
      const Tensor bm = uniform_t(67, -3, 3, dt, 3), bv = uniform_t(67, 0.1, 5, dt, 4);
      const auto [want_m, want_v] = composed(rm, rv, bm, bv, m);
      Tensor got_m = ops::clone(rm), got_v = ops::clone(rv);
      ops::batch_norm_update_running_(got_m, got_v, bm, bv, m);
      if (dt == DType::Float32) {
        EXPECT_EQ(to_vector<float>(got_m), to_vector<float>(want_m));
        EXPECT_EQ(to_vector<float>(got_v), to_vector<float>(want_v));
      } else {
        EXPECT_EQ(to_vector<double>(got_m), to_vector<double>(want_m));
        EXPECT_EQ(to_vector<double>(got_v), to_vector<double>(want_v));
      }
      EXPECT_NE(to_vector<double>(got_m), to_vector<double>(rm));  // it did update
    }
  }
}

TEST(BatchNormRunning, AdvancesTheBatchCounterInTheSameCall) {
  Tensor rm = zeros({3}), rv = ones({3}), count = zeros({}, DType::Int64);
  const Tensor bm = full({3}, 2.0), bv = full({3}, 3.0);
  for (int i = 0; i < 3; ++i) ops::batch_norm_update_running_(rm, rv, bm, bv, 0.5, count);
  EXPECT_EQ(count.item<int64_t>(), 3);
  EXPECT_EQ(to_vector<float>(rm), std::vector<float>(3, 1.75f));  // 0 -> 1 -> 1.5 -> 1.75
  ops::batch_norm_update_running_(rm, rv, bm, bv, 0.5);           // no counter: left alone
  EXPECT_EQ(count.item<int64_t>(), 3);
  EXPECT_THROW(ops::batch_norm_update_running_(rm, rv, bm, bv, 0.5, zeros({})), Error);
}

TEST(BatchNormRunning, MismatchedOperandsAreClearErrors) {
  const Tensor r = zeros({4}), r5 = zeros({5}), r64 = zeros({4}, DType::Float64);
  auto message = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] {
              ops::batch_norm_update_running_(r, r5, r, r, 0.1);
            }).find("batch_norm_update_running_: running variance"),
            std::string::npos);
  EXPECT_NE(message([&] { ops::batch_norm_update_running_(r, r, r64, r, 0.1); }).find("batch mean"),
            std::string::npos);
}

TEST(BatchNormRunning, CudaMatchesCpuBitForBit) {
  if (cuda_device_count() == 0 || cuda::emulating())
    GTEST_SKIP() << "no CUDA GPU on this machine (the emulated device runs the CPU loop)";
  const Device gpu{DeviceType::CUDA, 0};
  const Tensor rm = uniform_t(512, -3, 3, DType::Float32, 5),
               rv = uniform_t(512, 0.1, 5, DType::Float32, 6);
  const Tensor bm = uniform_t(512, -3, 3, DType::Float32, 7),
               bv = uniform_t(512, 0.1, 5, DType::Float32, 8);
  Tensor cm = ops::clone(rm), cv = ops::clone(rv);
  ops::batch_norm_update_running_(cm, cv, bm, bv, 0.1);
  Tensor gm = ops::to(rm, gpu), gv = ops::to(rv, gpu);
  ops::batch_norm_update_running_(gm, gv, ops::to(bm, gpu), ops::to(bv, gpu), 0.1);
  EXPECT_EQ(to_vector<float>(ops::to(gm, kCPU)), to_vector<float>(cm));
  EXPECT_EQ(to_vector<float>(ops::to(gv, kCPU)), to_vector<float>(cv));
}
