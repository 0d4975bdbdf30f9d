// cuDNN convolutions with timed algorithm choice (cuda::set_conv_autotune, cudnnFind*Ex): every
// direction still matches the CPU (1e-4 relative in float32), the input gradient still adds into
// the tensor it is given (Find must time into scratch memory, never into that tensor), bf16
// staging works, the plans say they were timed and obey set_deterministic, and a CUDA-graph
// capture of a convolution that was never timed runs without timing. On the SIMT simulator, whose
// Find ranks the algorithms by a fixed fake clock (cudnn_sim.cpp), the timed choices themselves
// are checked: forward takes the last of the heuristics' ranking, deterministic backward skips
// the non-deterministic winner.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tests/support/cuda_test.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

using test::kCuda;

using test::randn_t;
Tensor gpu(const Tensor& t) { return ops::to(t, kCuda); }

bool on_simulator() { return cuda::device_summary().find("SIMT simulator") != std::string::npos; }

// Restores the process-wide switches a test changes, even when it fails half-way.
struct Switches {
  ~Switches() {
    cuda::set_conv_autotune(false);
    cuda::set_deterministic(false);
  }
};

// The plans cached for one configuration (input and weight shape) with the given switches.
std::vector<cuda::ConvPlanInfo> plans_of(const Shape& x, const Shape& w, bool autotune,
                                         bool deterministic, DType dt = DType::Float32) {
  std::vector<cuda::ConvPlanInfo> out;
  for (const auto& p : cuda::conv_plans())
    if (p.input == x && p.weight == w && p.autotune == autotune &&
        p.deterministic == deterministic && p.dtype == dt)
      out.push_back(p);
  return out;
}
// The plan of one direction among plans, by value (plans is often a temporary).
std::optional<cuda::ConvPlanInfo> plan(const std::vector<cuda::ConvPlanInfo>& plans,
                                       const char* dir) {
  for (const auto& p : plans)
    if (p.direction == dir) return p;
  return std::nullopt;
}

struct Case {
  Shape x, w;
  ops::Conv2dParams p;
};
// Shapes no other test uses, so that their plans are made here.
const std::vector<Case> kCases = {
    {{3, 5, 9, 7}, {7, 5, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},   // 3x3 pad 1
    {{2, 6, 10, 9}, {8, 3, 3, 1}, {2, 1, 1, 0, 1, 1, 2}},  // strided, 2 groups
    {{2, 9, 6, 6}, {4, 9, 1, 1}, {1, 1, 0, 0, 1, 1, 1}},   // pointwise
};

}  // namespace

TEST(CudaConvAutotune, TimedPlansMatchCpuInEveryDirection) {
  OKD_REQUIRE_GPU();
  Switches restore;
  cuda::set_conv_autotune(true);
  EXPECT_TRUE(cuda::conv_autotune());
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : kCases) {
      SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w) + " " + dtype_name(dt));
      const double rtol = dt == DType::Float32 ? 1e-4 : 1e-12;
      const double atol = dt == DType::Float32 ? 1e-4 : 1e-10;
      Tensor x = randn_t(c.x, dt, 21), w = randn_t(c.w, dt, 22);
      Tensor y = ops::conv2d_forward(x, w, Tensor(), c.p);
      Tensor dy = randn_t(y.shape(), dt, 23);
      // twice: the first call times and caches, the second uses the cached plan
      for (int call = 0; call < 2; ++call) {
        EXPECT_TRUE(test::matches_on_gpu(ops::conv2d_forward(gpu(x), gpu(w), Tensor(), c.p), y,
                                         rtol, atol));
        EXPECT_TRUE(test::matches_on_gpu(ops::conv2d_backward_input(gpu(dy), gpu(w), c.x, c.p),
                                         ops::conv2d_backward_input(dy, w, c.x, c.p), rtol, atol));
        EXPECT_TRUE(test::matches_on_gpu(ops::conv2d_backward_weight(gpu(dy), gpu(x), c.w, c.p),
                                         ops::conv2d_backward_weight(dy, x, c.w, c.p), rtol, atol));
      }
      // The plans say they were timed, with the winner's time, one per direction.
      const auto plans = plans_of(c.x, c.w, true, false, dt);
      EXPECT_EQ(plans.size(), 3u);
      for (const auto& p : plans) {
        SCOPED_TRACE(p.direction);
        EXPECT_TRUE(p.timed);
        EXPECT_GE(p.time_ms, 0.0f);
        if (dt == DType::Float32) {
          EXPECT_EQ(p.math, "fma");  // float32 without TF32
        }
        EXPECT_EQ(p.output, y.shape());
      }
    }
}

// The timed input gradient, the first call of its configuration, adds into the tensor it is given
// (Find writes into scratch memory: it must not leave its trial results in that tensor).
TEST(CudaConvAutotune, TimingDoesNotTouchTheTensorAccumulatedInto) {
  OKD_REQUIRE_GPU();
  Switches restore;
  cuda::set_conv_autotune(true);
  const Shape xs = {2, 3, 8, 8}, ws = {5, 3, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Tensor w = randn_t(ws, DType::Float32, 31), dy = randn_t({2, 5, 8, 8}, DType::Float32, 32);
  Tensor acc = randn_t(xs, DType::Float32, 33);
  const Tensor ref = ops::conv2d_backward_input(dy, w, xs, p, ops::clone(acc));
  EXPECT_TRUE(plans_of(xs, ws, true, false).empty()) << "the configuration was timed before";
  Tensor acc_gpu = gpu(acc);
  Tensor out = ops::conv2d_backward_input(gpu(dy), gpu(w), xs, p, acc_gpu);
  EXPECT_EQ(out.impl(), acc_gpu.impl());
  EXPECT_TRUE(test::matches_on_gpu(out, ref, 1e-4, 1e-4));
  const auto bd = plan(plans_of(xs, ws, true, false), "backward_data");
  ASSERT_TRUE(bd.has_value());
  EXPECT_TRUE(bd->timed);
}

TEST(CudaConvAutotune, Bf16StagedOperandsAreTimedToo) {
  OKD_REQUIRE_GPU();
  Switches restore;
  cuda::set_conv_autotune(true);
  const Shape xs = {2, 4, 9, 9}, ws = {6, 4, 3, 3};
  ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  p.precision = Precision::BFloat16;
  Tensor x = randn_t(xs, DType::Float32, 41), w = randn_t(ws, DType::Float32, 42);
  const Tensor y = ops::conv2d_forward(x, w, Tensor(), p);  // the CPU's bf16 emulation
  EXPECT_TRUE(
      test::matches_on_gpu(ops::conv2d_forward(gpu(x), gpu(w), Tensor(), p), y, 1e-2, 5e-2));
  const auto plans = plans_of(xs, ws, true, false);
  const auto fwd = plan(plans, "forward");
  ASSERT_TRUE(fwd.has_value());
  EXPECT_TRUE(fwd->bf16);
  EXPECT_TRUE(fwd->timed);
}

// With set_deterministic, the timed choice is among deterministic algorithms only; on the
// simulator the fastest backward algorithm is not deterministic, so the choice must skip it.
TEST(CudaConvAutotune, DeterministicTimedChoicesSkipNonDeterministicAlgorithms) {
  OKD_REQUIRE_GPU();
  Switches restore;
  cuda::set_conv_autotune(true);
  const Shape xs = {2, 3, 7, 7}, ws = {4, 3, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Tensor x = randn_t(xs, DType::Float32, 51), dy = randn_t({2, 4, 7, 7}, DType::Float32, 52);
  Tensor w = randn_t(ws, DType::Float32, 53);
  for (bool det : {false, true}) {
    cuda::set_deterministic(det);
    EXPECT_TRUE(test::matches_on_gpu(ops::conv2d_backward_weight(gpu(dy), gpu(x), ws, p),
                                     ops::conv2d_backward_weight(dy, x, ws, p), 1e-4, 1e-4));
    EXPECT_TRUE(test::matches_on_gpu(ops::conv2d_backward_input(gpu(dy), gpu(w), xs, p),
                                     ops::conv2d_backward_input(dy, w, xs, p), 1e-4, 1e-4));
  }
  const auto loose = plans_of(xs, ws, true, false), strict = plans_of(xs, ws, true, true);
  for (const char* dir : {"backward_data", "backward_filter"}) {
    SCOPED_TRACE(dir);
    const auto a = plan(loose, dir), b = plan(strict, dir);
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(b.has_value());
    EXPECT_TRUE(a->timed);
    EXPECT_TRUE(b->timed);
    if (on_simulator()) {
      EXPECT_EQ(a->algo, 0);  // CUDNN_CONVOLUTION_BWD_*_ALGO_0: fastest, not deterministic
      EXPECT_EQ(b->algo, 1);  // ALGO_1: the fastest deterministic one
    }
  }
}

// On the simulator the timed forward choice is not the heuristics' first (its fake clock ranks
// them in reverse), so this checks that the timing result, not the ranking, is used.
TEST(CudaConvAutotune, TheTimedChoiceIsUsedNotTheHeuristicOne) {
  OKD_REQUIRE_GPU();
  if (!on_simulator())
    GTEST_SKIP() << "which algorithm wins on a GPU is the GPU's business; the simulator's clock "
                    "is fixed";
  Switches restore;
  const Shape xs = {2, 3, 6, 5}, ws = {4, 3, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Tensor x = gpu(randn_t(xs, DType::Float32, 61)), w = gpu(randn_t(ws, DType::Float32, 62));
  ops::conv2d_forward(x, w, Tensor(), p);
  cuda::set_conv_autotune(true);
  ops::conv2d_forward(x, w, Tensor(), p);
  const auto heuristic = plan(plans_of(xs, ws, false, false), "forward");
  const auto timed = plan(plans_of(xs, ws, true, false), "forward");
  ASSERT_TRUE(heuristic.has_value());
  ASSERT_TRUE(timed.has_value());
  EXPECT_FALSE(heuristic->timed);
  EXPECT_LT(heuristic->time_ms, 0.0f);
  EXPECT_EQ(heuristic->algo, 1);  // CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
  EXPECT_EQ(timed->algo, 2);      // CUDNN_CONVOLUTION_FWD_ALGO_GEMM, with a workspace
  EXPECT_GT(timed->workspace_bytes, 0);
}

// A convolution first met inside a CUDA-graph capture is not timed there (timing synchronises,
// which would break the capture): it runs with the heuristics' plan, uncached, and the replay
// gives the CPU's result; the next eager call times it.
TEST(CudaConvAutotune, CaptureUsesTheHeuristicPlanForUntimedConfigurations) {
  OKD_REQUIRE_GPU();
  Switches restore;
  cuda::set_conv_autotune(true);
  const Shape xs = {2, 2, 6, 6}, ws = {3, 2, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x = randn_t(xs, DType::Float32, 71), w = randn_t(ws, DType::Float32, 72);
  const Tensor xg = gpu(x), wg = gpu(w);
  Tensor y;
  cuda::CapturedGraph graph;
  graph.capture([&] { y = ops::conv2d_forward(xg, wg, Tensor(), p); }, "an untimed convolution");
  EXPECT_TRUE(plans_of(xs, ws, true, false).empty());
  graph.replay();
  EXPECT_TRUE(test::matches_on_gpu(y, ops::conv2d_forward(x, w, Tensor(), p), 1e-4, 1e-4));
  ops::conv2d_forward(xg, wg, Tensor(), p);
  const auto fwd = plan(plans_of(xs, ws, true, false), "forward");
  ASSERT_TRUE(fwd.has_value());
  EXPECT_TRUE(fwd->timed);
}
