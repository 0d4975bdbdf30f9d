// Method parity on the CPU: every case of tests/data/method_parity/ (method_parity_case.h) run by
// okd on the CPU in float64 against the independent PyTorch implementation's figures.
#include <gtest/gtest.h>

#include "tests/distill/method_parity_case.h"

namespace okd::distill {
namespace {

class MethodParity : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodParity, StepsMatchTheIndependentImplementation) {
  parity::run_method_parity_case(GetParam(), kCPU);
}

INSTANTIATE_TEST_SUITE_P(Cases, MethodParity, ::testing::ValuesIn(parity::case_names()),
                         [](const auto& info) { return parity::case_test_name(info.param); });

}  // namespace
}  // namespace okd::distill
