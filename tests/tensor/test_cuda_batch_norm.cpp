// Training batch norm on the GPU in both of its forms (norm_cuda.cu): one block per channel
// (set_batch_norm_split(0)) and several blocks per channel (1; 2 = automatic, the default),
// against the CPU ops within test_cuda_ops.cpp's batch-norm tolerances (float32 1e-5 relative and
// 1e-5 absolute, except 1e-5 sqrt(N S) absolute for dw and db, see sum_atol; float64 1e-12
// relative), forward (plain, fused ReLU, fused residual + ReLU) and backward (with and without
// the ReLU mask). The split form must be bit-identical from run to run and agree with the
// one-block form within rounding. Shapes: ResNet-32's stages at batch 128 ([128,16,32,32] splits
// 32 ways), odd sizes whose shares cross rows ([67,3,11,13]), one sample ([1,2,8192]: shares
// inside a row), S = 1 ([20000,3]), and shapes too small to split ([3,5,7,7], [2,64,1,1]: every
// mode falls back to one block per channel); the running statistics advanced inside the forward
// and the masked gradient of the fused add+ReLU backward. GPU tests skip, saying so, without a GPU;
// the mode control and the parts rule are host code and run everywhere.
#include <cmath>
#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "okd/build_config.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/norm.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/cuda_test.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

using test::kCuda;

Tensor gpu(const Tensor& t) { return t.defined() ? ops::to(t, kCuda) : Tensor(); }
Tensor cpu(const Tensor& t) { return ops::to(t, kCPU); }

using test::randn_t;
Tensor uniform_t(const Shape& s, double lo, double hi, DType dt, uint64_t seed) {
  Generator g(seed);
  return uniform(s, lo, hi, g, dt);
}

double rtol_for(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }
// dw and db are sums of M = N S terms of unit scale: the CPU adds them in float32 lanes
// (norm_cpu.cpp), whose error grows like sqrt(M), and a channel's sum can cancel to a small value.
// Measured against float64 on these inputs, the CPU's float32 dw/db are off by up to 2e-4 at
// M = 131072 (2.7 times 1e-5 + 1e-5 |dw| on a small entry) but never more than 0.06 times
// 1e-5 sqrt(M), the absolute tolerance used for them here in float32.
double sum_atol(DType dt, const Shape& s) {
  int64_t M = s[0];
  for (size_t d = 2; d < s.size(); ++d) M *= s[d];
  return dt == DType::Float32 ? 1e-5 * std::sqrt(static_cast<double>(M)) : 1e-5;
}

::testing::AssertionResult matches(const Tensor& on_gpu, const Tensor& ref, double rtol,
                                   double atol = 1e-5) {
  return test::matches_on_gpu(on_gpu, ref, rtol, atol);
}
::testing::AssertionResult same_bits(const Tensor& a, const Tensor& b) {
  return test::allclose(cpu(a), cpu(b), 0, 0);
}

// Sets the split mode for a scope and restores the previous one.
class SplitMode {
 public:
  explicit SplitMode(int mode) : saved_(cuda::batch_norm_split()) {
    cuda::set_batch_norm_split(mode);
  }
  ~SplitMode() { cuda::set_batch_norm_split(saved_); }
  SplitMode(const SplitMode&) = delete;
  SplitMode& operator=(const SplitMode&) = delete;

 private:
  int saved_;
};

int64_t parts_of(const Shape& s) {
  int64_t S = 1;
  for (size_t d = 2; d < s.size(); ++d) S *= s[d];
  return cuda::batch_norm_parts(s[0], s[1], S);
}

const DType kFloats[] = {DType::Float32, DType::Float64};
const int kModes[] = {0, 1, 2};
const std::vector<Shape> kShapes = {{128, 16, 32, 32}, {128, 64, 8, 8}, {3, 5, 7, 7}, {2, 64, 1, 1},
                                    {67, 3, 11, 13},   {1, 2, 8192},    {20000, 3}};

// x with a non-zero mean (the variance's cancellation matters), affine parameters, a residual.
struct Inputs {
  Tensor x, w, b, res, dy;
};
Inputs inputs_for(const Shape& s, DType dt) {
  const int64_t C = s[1];
  return {ops::add(ops::mul(randn_t(s, dt, 151), 2.0), 0.5), uniform_t({C}, 0.5, 1.5, dt, 152),
          randn_t({C}, dt, 153), randn_t(s, dt, 155), randn_t(s, dt, 154)};
}

}  // namespace

// ---- host code: runs everywhere ----------------------------------------------------------------

TEST(CudaBatchNorm, SplitModeIsSwitchableAndPartsDependOnShapeOnly) {
  SplitMode restore(cuda::batch_norm_split());
  const int initial = cuda::batch_norm_split();
  EXPECT_TRUE(initial >= 0 && initial <= 2) << initial;
  const char* env = std::getenv("OKD_BN_SPLIT");  // read once at start-up (CUDA builds)
  if (cuda_built() && env != nullptr && std::string(env).size() == 1 && env[0] >= '0' &&
      env[0] <= '2') {
    EXPECT_EQ(initial, env[0] - '0') << "OKD_BN_SPLIT=" << env;
  }
  EXPECT_THROW(cuda::set_batch_norm_split(3), Error);
  EXPECT_THROW(cuda::set_batch_norm_split(-1), Error);
  EXPECT_EQ(cuda::batch_norm_split(), initial) << "a refused mode changes nothing";
  for (int mode : kModes) {
    cuda::set_batch_norm_split(mode);
    EXPECT_EQ(cuda::batch_norm_split(), mode);
    EXPECT_EQ(cuda::batch_norm_parts(128, 16, 1024), mode == 0 || !cuda_built() ? 1 : 32);
    EXPECT_EQ(cuda::batch_norm_parts(128, 32, 256), mode == 0 || !cuda_built() ? 1 : 16);
    EXPECT_EQ(cuda::batch_norm_parts(128, 64, 64), mode == 0 || !cuda_built() ? 1 : 4);
    EXPECT_EQ(cuda::batch_norm_parts(3, 5, 49), 1) << "too small to split";
    EXPECT_EQ(cuda::batch_norm_parts(2, 64, 1), 1);
    // automatic mode leaves 256 channels or more to one block each
    EXPECT_EQ(cuda::batch_norm_parts(128, 512, 64), mode == 1 && cuda_built() ? 4 : 1);
  }
}

// ---- needs a GPU -------------------------------------------------------------------------------

TEST(CudaBatchNorm, TrainingForwardMatchesCpuInEveryMode) {
  OKD_REQUIRE_GPU();
  for (int mode : kModes) {
    SplitMode split(mode);
    for (DType dt : kFloats) {
      for (const Shape& s : kShapes) {
        SCOPED_TRACE("mode " + std::to_string(mode) + " " + shape_str(s) + " " + dtype_name(dt) +
                     ", " + std::to_string(parts_of(s)) + " blocks per channel");
        const Inputs in = inputs_for(s, dt);
        const double r = rtol_for(dt);
        for (int form = 0; form < 3; ++form) {  // plain, relu(bn), relu(bn + residual)
          SCOPED_TRACE(form == 0 ? "bn" : form == 1 ? "relu(bn)" : "relu(bn + residual)");
          const bool relu = form > 0;
          const Tensor res = form == 2 ? in.res : Tensor();
          auto [y, st] = ops::batch_norm_train(in.x, in.w, in.b, 1e-5, relu, res);
          auto [yg, stg] =
              ops::batch_norm_train(gpu(in.x), gpu(in.w), gpu(in.b), 1e-5, relu, gpu(res));
          EXPECT_TRUE(matches(yg, y, r));
          EXPECT_TRUE(matches(stg.mean, st.mean, r, 1e-6));
          EXPECT_TRUE(matches(stg.invstd, st.invstd, r, 1e-6));
          EXPECT_TRUE(matches(stg.var_unbiased, st.var_unbiased, r, 1e-6));
        }
        // no affine parameters
        EXPECT_TRUE(matches(ops::batch_norm_train(gpu(in.x), Tensor(), Tensor(), 1e-3).first,
                            ops::batch_norm_train(in.x, Tensor(), Tensor(), 1e-3).first, r));
      }
    }
  }
}

TEST(CudaBatchNorm, BackwardMatchesCpuInEveryMode) {
  OKD_REQUIRE_GPU();
  for (int mode : kModes) {
    SplitMode split(mode);
    for (DType dt : kFloats) {
      for (const Shape& s : kShapes) {
        SCOPED_TRACE("mode " + std::to_string(mode) + " " + shape_str(s) + " " + dtype_name(dt) +
                     ", " + std::to_string(parts_of(s)) + " blocks per channel");
        const Inputs in = inputs_for(s, dt);
        const double r = rtol_for(dt);
        auto [y, st] = ops::batch_norm_train(in.x, in.w, in.b, 1e-5);
        auto [dx, dw, db] = ops::batch_norm_backward(in.dy, in.x, in.w, st.mean, st.invstd);
        auto [dxg, dwg, dbg] = ops::batch_norm_backward(gpu(in.dy), gpu(in.x), gpu(in.w),
                                                        gpu(st.mean), gpu(st.invstd));
        EXPECT_TRUE(matches(dxg, dx, r));
        const double sa = sum_atol(dt, s);
        EXPECT_TRUE(matches(dwg, dw, r, sa));
        EXPECT_TRUE(matches(dbg, db, r, sa));
        // without affine parameters
        auto [dxn, dwn, dbn] = ops::batch_norm_backward(in.dy, in.x, Tensor(), st.mean, st.invstd);
        auto dgn =
            ops::batch_norm_backward(gpu(in.dy), gpu(in.x), Tensor(), gpu(st.mean), gpu(st.invstd));
        EXPECT_TRUE(matches(std::get<0>(dgn), dxn, r));
        EXPECT_TRUE(matches(std::get<1>(dgn), dwn, r, sa));
        EXPECT_TRUE(matches(std::get<2>(dgn), dbn, r, sa));
        // masked by the fused output z = relu(bn (+ residual))
        for (bool with_residual : {false, true}) {
          SCOPED_TRACE(with_residual ? "mask of relu(bn + residual)" : "mask of relu(bn)");
          const Tensor res = with_residual ? in.res : Tensor();
          auto [z, stz] = ops::batch_norm_train(in.x, in.w, in.b, 1e-5, true, res);
          auto [dxz, dwz, dbz] =
              ops::batch_norm_backward(in.dy, in.x, in.w, stz.mean, stz.invstd, z);
          auto [dxzg, dwzg, dbzg] = ops::batch_norm_backward(
              gpu(in.dy), gpu(in.x), gpu(in.w), gpu(stz.mean), gpu(stz.invstd), gpu(z));
          EXPECT_TRUE(matches(dxzg, dxz, r));
          EXPECT_TRUE(matches(dwzg, dwz, r, sa));
          EXPECT_TRUE(matches(dbzg, dbz, r, sa));
        }
      }
    }
  }
}

// The split form repeats itself bit for bit (no floating-point atomics; the order of additions
// depends on the shape only) and agrees with the one-block form within rounding.
TEST(CudaBatchNorm, SplitIsBitIdenticalFromRunToRunAndAgreesWithOneBlock) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    for (const Shape& s : {Shape{128, 16, 32, 32}, Shape{128, 32, 16, 16}, Shape{67, 3, 11, 13}}) {
      SCOPED_TRACE(shape_str(s) + " " + dtype_name(dt));
      const Inputs in = inputs_for(s, dt);
      const Tensor x = gpu(in.x), w = gpu(in.w), b = gpu(in.b), res = gpu(in.res), dy = gpu(in.dy);
      struct Run {
        Tensor z, mean, invstd, var, dx, dw, db;
      };
      auto run = [&] {
        auto [z, st] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
        auto [dx, dw, db] = ops::batch_norm_backward(dy, x, w, st.mean, st.invstd, z);
        return Run{z, st.mean, st.invstd, st.var_unbiased, dx, dw, db};
      };
      Run one_block, first, second;
      {
        SplitMode split(0);
        one_block = run();
      }
      {
        SplitMode split(1);
        ASSERT_GT(parts_of(s), 1) << "the split kernels must be the ones under test";
        first = run();
        second = run();
      }
      const std::vector<std::pair<const char*, std::pair<Tensor, Tensor>>> pairs = {
          {"z", {first.z, second.z}},
          {"mean", {first.mean, second.mean}},
          {"invstd", {first.invstd, second.invstd}},
          {"var", {first.var, second.var}},
          {"dx", {first.dx, second.dx}},
          {"dw", {first.dw, second.dw}},
          {"db", {first.db, second.db}}};
      for (const auto& [name, ab] : pairs) EXPECT_TRUE(same_bits(ab.first, ab.second)) << name;
      const double r = rtol_for(dt);
      EXPECT_TRUE(matches(first.z, cpu(one_block.z), r));
      EXPECT_TRUE(matches(first.mean, cpu(one_block.mean), r, 1e-6));
      EXPECT_TRUE(matches(first.invstd, cpu(one_block.invstd), r, 1e-6));
      EXPECT_TRUE(matches(first.var, cpu(one_block.var), r, 1e-6));
      EXPECT_TRUE(matches(first.dx, cpu(one_block.dx), r));
      EXPECT_TRUE(matches(first.dw, cpu(one_block.dw), r, sum_atol(dt, s)));
      EXPECT_TRUE(matches(first.db, cpu(one_block.db), r, sum_atol(dt, s)));
    }
  }
}

// The running statistics advanced inside the training forward's own launch (BatchNormRunning) are
// bit for bit what the separate update makes of the same batch statistics, the counter advances
// once per call, and the forward's outputs are those of a forward without them; the fused
// add+ReLU backward writes relu_backward's masked gradient, bit for bit, beside the dx, dw and db
// of batch_norm_backward. In every split mode (the one-block and the split kernels each carry the
// update and the mask).
TEST(CudaBatchNorm, FusedRunningStatisticsAndMaskedGradientMatchTheSeparateOps) {
  OKD_REQUIRE_GPU();
  for (int mode : kModes) {
    SplitMode split(mode);
    for (DType dt : kFloats) {
      for (const Shape& s : {Shape{67, 3, 11, 13}, Shape{3, 5, 7, 7}, Shape{1, 2, 8192}}) {
        SCOPED_TRACE("mode " + std::to_string(mode) + " " + shape_str(s) + " " + dtype_name(dt) +
                     ", " + std::to_string(parts_of(s)) + " blocks per channel");
        const Inputs in = inputs_for(s, dt);
        const Tensor x = gpu(in.x), w = gpu(in.w), b = gpu(in.b), res = gpu(in.res);
        const int64_t C = s[1];
        const Tensor rm0 = uniform_t({C}, -1, 1, dt, 160), rv0 = uniform_t({C}, 0.5, 2, dt, 161);
        Tensor fm = gpu(rm0), fv = gpu(rv0), fcount = gpu(zeros({}, DType::Int64));
        auto [z, st] = ops::batch_norm_train(x, w, b, 1e-5, true, res, {fm, fv, 0.1, fcount});
        Tensor sm = gpu(rm0), sv = gpu(rv0), scount = gpu(zeros({}, DType::Int64));
        ops::batch_norm_update_running_(sm, sv, st.mean, st.var_unbiased, 0.1, scount);
        EXPECT_TRUE(same_bits(fm, sm));
        EXPECT_TRUE(same_bits(fv, sv));
        EXPECT_FALSE(same_bits(fm, gpu(rm0))) << "the running mean did move";
        EXPECT_EQ(cpu(fcount).item<int64_t>(), 1);
        auto [z_plain, st_plain] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
        EXPECT_TRUE(same_bits(z, z_plain));
        EXPECT_TRUE(same_bits(st.var_unbiased, st_plain.var_unbiased));
        // float64 statistics of a float32 input: converted and updated by the separate kernel
        if (dt == DType::Float32) {
          Tensor dm = gpu(ops::to(rm0, DType::Float64)), dv = gpu(ops::to(rv0, DType::Float64));
          Tensor em = ops::clone(dm), ev = ops::clone(dv);
          ops::batch_norm_train(x, w, b, 1e-5, false, Tensor(), {dm, dv, 0.1, Tensor()});
          auto [y2, st2] = ops::batch_norm_train(x, w, b, 1e-5);
          ops::batch_norm_update_running_(em, ev, ops::to(st2.mean, DType::Float64),
                                          ops::to(st2.var_unbiased, DType::Float64), 0.1);
          EXPECT_TRUE(same_bits(dm, em));
          EXPECT_TRUE(same_bits(dv, ev));
        }
        // the backward of relu(bn(x) + res)
        const Tensor dz = gpu(in.dy);
        auto [dx, dw, db, dr] = ops::batch_norm_add_relu_backward(dz, x, w, st.mean, st.invstd, z);
        EXPECT_TRUE(same_bits(dr, ops::relu_backward(dz, z)));
        auto [dx2, dw2, db2] = ops::batch_norm_backward(dz, x, w, st.mean, st.invstd, z);
        EXPECT_TRUE(same_bits(dx, dx2));
        EXPECT_TRUE(same_bits(dw, dw2));
        EXPECT_TRUE(same_bits(db, db2));
      }
    }
  }
  // statistics that do not fit the input: a clear error before any launch
  const Tensor x = gpu(ones({2, 5, 3}));
  EXPECT_THROW(ops::batch_norm_train(x, Tensor(), Tensor(), 1e-5, false, Tensor(),
                                     {gpu(zeros({4})), gpu(ones({4})), 0.1, Tensor()}),
               Error);
}
