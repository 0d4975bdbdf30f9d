// Method parity on cuda:0: every case of tests/data/method_parity/ (tests/distill/
// method_parity_case.h) built on the device and run there in float64 (forward, backward, SGD and
// every method's own updates on the device) against the independent PyTorch implementation's
// figures, with the CPU test's tolerances. With a GPU (or the SIMT simulator) this is every
// method's training step through okd's CUDA kernels, cuBLAS and cuDNN; without one cuda:0 is
// emulated on the CPU, which runs the CPU kernels behind the device wiring (the batch, the
// networks, the optimizer state and the methods' buffers all live on cuda:0).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/distill/method_parity_case.h"
#include "tests/support/device_test.h"

namespace okd::distill {
namespace {

class MethodParityOnDevice : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodParityOnDevice, StepsMatchTheIndependentImplementation) {
  (void)test::g_emulated;  // cuda:0 exists, emulated when there is no GPU
  parity::run_method_parity_case(GetParam(), test::kCuda);
}

INSTANTIATE_TEST_SUITE_P(Cases, MethodParityOnDevice, ::testing::ValuesIn(parity::case_names()),
                         [](const auto& info) { return parity::case_test_name(info.param); });

// The same steps as train_cifar --cuda-graph runs them: the first eagerly, then one captured
// graph per epoch (and lr factor), replayed for the epoch's later steps. Every method declares
// its step capturable (Method::capture_blocker() is empty), so every case must still match the
// reference: a value frozen into the graph that should have moved between steps (a schedule
// weight, an annealed temperature, an EMA step, a random mask) fails its term or tensor.
class MethodParityCaptured : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodParityCaptured, ReplayedStepsMatchTheIndependentImplementation) {
  (void)test::g_emulated;
  parity::run_method_parity_case(GetParam(), test::kCuda, parity::StepMode::CapturedLikeTheTrainer);
}

INSTANTIATE_TEST_SUITE_P(Cases, MethodParityCaptured, ::testing::ValuesIn(parity::case_names()),
                         [](const auto& info) { return parity::case_test_name(info.param); });

// Mixed precision under capture: each case of three steps or more (so with a replay; the
// two-step ones add little here and cost CI minutes), run in float32 under Autocast(bf16) on
// cuda:0 twice, eagerly and as --precision bf16 --cuda-graph trains it, must give the same
// losses, terms and final tensors: bit for bit emulated (the replay reruns the recorded calls),
// within 1e-3 on a GPU. (The reference's float64 figures do not apply to a bf16 run; this
// compares the two modes with each other.)
class MethodBf16Captured : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodBf16Captured, ReplayedStepsMatchEagerSteps) {
  const bool exact = test::g_emulated;
  parity::RunRecord eager, captured;
  parity::run_method_parity_case(GetParam(), test::kCuda, parity::StepMode::Eager, DType::Float32,
                                 Precision::BFloat16, &eager);
  parity::run_method_parity_case(GetParam(), test::kCuda, parity::StepMode::CapturedLikeTheTrainer,
                                 DType::Float32, Precision::BFloat16, &captured);
  auto near = [exact](double a, double b) {
    return exact ? a == b : std::fabs(a - b) <= 1e-3 * std::max(1.0, std::fabs(b));
  };
  ASSERT_EQ(eager.steps.size(), captured.steps.size());
  for (size_t k = 0; k < eager.steps.size(); ++k) {
    ASSERT_EQ(eager.steps[k].size(), captured.steps[k].size()) << "step " << k;
    for (size_t i = 0; i < eager.steps[k].size(); ++i) {
      EXPECT_EQ(eager.steps[k][i].first, captured.steps[k][i].first) << "step " << k;
      EXPECT_TRUE(near(captured.steps[k][i].second, eager.steps[k][i].second))
          << "step " << k << " " << eager.steps[k][i].first << ": captured "
          << captured.steps[k][i].second << ", eager " << eager.steps[k][i].second;
    }
  }
  ASSERT_EQ(eager.finals.size(), captured.finals.size());
  for (size_t i = 0; i < eager.finals.size(); ++i) {
    const auto& [key, e] = eager.finals[i];
    const auto& c = captured.finals[i].second;
    ASSERT_EQ(e.size(), c.size()) << key;
    size_t bad = 0;
    for (size_t j = 0; j < e.size(); ++j) bad += !near(c[j], e[j]);
    EXPECT_EQ(bad, 0u) << key << ": " << bad << " of " << e.size() << " values differ";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, MethodBf16Captured,
                         ::testing::ValuesIn(parity::case_names_with_replays()),
                         [](const auto& info) { return parity::case_test_name(info.param); });

}  // namespace
}  // namespace okd::distill
