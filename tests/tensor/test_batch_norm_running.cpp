// ops::batch_norm_update_running_ (the running mean and variance of batch norm in one pass): bit
// for bit the pair ops::mul_(r, 1 - m), ops::add_(r, batch, m) it replaced, on the CPU and, where
// there is a GPU, on CUDA; and clear errors for mismatched operands. The training forward that
// advances them itself (BatchNormRunning) does what the separate update does, bit for bit, and
// the fused add+ReLU backward's masked gradient is relu_backward's (CUDA forms of both are in
// test_cuda_batch_norm.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/activation.h"
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

TEST(BatchNormRunning, TrainingForwardAdvancesThemAsTheSeparateUpdateDoes) {
  Generator g(21);
  for (DType dt : {DType::Float32, DType::Float64}) {
    // statistics of x's dtype, and float64 statistics of a float32 input (converted, then updated
    // by the separate call)
    for (DType rdt : {dt, DType::Float64}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " input, " + dtype_name(rdt) + " statistics");
      const Tensor x = ops::add(randn({6, 5, 4, 3}, g, dt), 0.7);
      const Tensor w = uniform_t(5, 0.5, 1.5, dt, 22), b = uniform_t(5, -1, 1, dt, 23);
      const Tensor res = randn({6, 5, 4, 3}, g, dt);
      const Tensor rm0 = uniform_t(5, -1, 1, rdt, 24), rv0 = uniform_t(5, 0.5, 2, rdt, 25);
      Tensor fm = ops::clone(rm0), fv = ops::clone(rv0), fcount = zeros({}, DType::Int64);
      auto [y, st] = ops::batch_norm_train(x, w, b, 1e-5, true, res, {fm, fv, 0.3, fcount});
      auto [y_plain, st_plain] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
      Tensor sm = ops::clone(rm0), sv = ops::clone(rv0), scount = zeros({}, DType::Int64);
      ops::batch_norm_update_running_(sm, sv, ops::to(st_plain.mean, rdt),
                                      ops::to(st_plain.var_unbiased, rdt), 0.3, scount);
      EXPECT_EQ(to_vector<double>(fm), to_vector<double>(sm));
      EXPECT_EQ(to_vector<double>(fv), to_vector<double>(sv));
      EXPECT_NE(to_vector<double>(fm), to_vector<double>(rm0));  // it did update
      EXPECT_EQ(fcount.item<int64_t>(), 1);
      EXPECT_EQ(to_vector<double>(y), to_vector<double>(y_plain));  // the forward is unchanged
      EXPECT_EQ(to_vector<double>(st.mean), to_vector<double>(st_plain.mean));
    }
  }
  // statistics that do not fit the input are the update's clear error
  Tensor r4 = zeros({4});
  EXPECT_THROW(ops::batch_norm_train(ones({2, 5, 3}), Tensor(), Tensor(), 1e-5, false, Tensor(),
                                     {r4, ones({4}), 0.1, Tensor()}),
               Error);
}

TEST(BatchNormRunning, FusedAddReluBackwardIsReluBackwardThenBatchNormBackward) {
  Generator g(31);
  for (DType dt : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = ops::add(randn({4, 3, 5, 5}, g, dt), -0.4);
    const Tensor w = uniform_t(3, 0.5, 1.5, dt, 32), b = uniform_t(3, -1, 1, dt, 33);
    const Tensor res = randn({4, 3, 5, 5}, g, dt), dz = randn({4, 3, 5, 5}, g, dt);
    auto [z, st] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
    auto [dx, dw, db, dr] = ops::batch_norm_add_relu_backward(dz, x, w, st.mean, st.invstd, z);
    const Tensor want_dr = ops::relu_backward(dz, z);
    auto [want_dx, want_dw, want_db] = ops::batch_norm_backward(want_dr, x, w, st.mean, st.invstd);
    EXPECT_EQ(to_vector<double>(dr), to_vector<double>(want_dr));
    EXPECT_EQ(to_vector<double>(dx), to_vector<double>(want_dx));
    EXPECT_EQ(to_vector<double>(dw), to_vector<double>(want_dw));
    EXPECT_EQ(to_vector<double>(db), to_vector<double>(want_db));
    const std::vector<double> masked = to_vector<double>(dr);
    EXPECT_GT(std::count(masked.begin(), masked.end(), 0.0), 0) << "some entries are masked";
    EXPECT_LT(std::count(masked.begin(), masked.end(), 0.0), static_cast<long>(masked.size()));
  }
  EXPECT_THROW(ops::batch_norm_add_relu_backward(ones({2, 3, 2}), ones({2, 3, 2}), Tensor(),
                                                 zeros({3}), ones({3}), Tensor()),
               Error);
}
