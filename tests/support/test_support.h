// Helpers shared by the test suites: paths to committed reference data and tensor comparisons.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "tensor/tensor.h"

namespace okd::test {

// cuda:0, where the GPU and device tests put their tensors.
inline constexpr Device kCuda{DeviceType::CUDA, 0};

// tests/data/<relative>
std::string data_path(const std::string& relative);
// Loads tests/data/<relative>.npy.
Tensor load_ref(const std::string& relative);

// Elementwise |a - b| <= atol + rtol * |b| (b is the reference), with the same shape. On failure
// the message gives the worst index, both values and the shapes.
::testing::AssertionResult allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5,
                                    double atol = 1e-6);

// The message of the okd::Error that f throws, or "(no error)" when it throws none.
std::string error_of(const std::function<void()>& f);

}  // namespace okd::test

#define EXPECT_ALLCLOSE(a, b, ...) EXPECT_TRUE(::okd::test::allclose((a), (b), ##__VA_ARGS__))
#define ASSERT_ALLCLOSE(a, b, ...) ASSERT_TRUE(::okd::test::allclose((a), (b), ##__VA_ARGS__))
