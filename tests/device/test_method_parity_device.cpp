// Method parity on cuda:0: every case of tests/data/method_parity/ (tests/distill/
// method_parity_case.h) built on the device and run there in float64 (forward, backward, SGD and
// every method's own updates on the device) against the independent PyTorch implementation's
// figures, with the CPU test's tolerances. With a GPU (or the SIMT simulator) this is every
// method's training step through okd's CUDA kernels, cuBLAS and cuDNN; without one cuda:0 is
// emulated on the CPU, which runs the CPU kernels behind the device wiring (the batch, the
// networks, the optimizer state and the methods' buffers all live on cuda:0).
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace okd::distill
