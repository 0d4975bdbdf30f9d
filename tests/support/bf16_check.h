// Checks shared by the mixed-precision tests: a float32 result against a bfloat16 reference.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/tensor.h"

namespace okd::test {

// Every value within one bfloat16 step (2^-7 relative) of the reference, at least `exact_share`
// of them equal to it, and (unless a bias was added after rounding) every value a bfloat16.
inline void expect_bf16_result(const Tensor& got, const Tensor& want, const std::string& what,
                               bool representable = true, double exact_share = 0.95) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), DType::Float32) << what;
  const std::vector<float> a = to_vector<float>(got), b = to_vector<float>(want);
  size_t exact = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_LE(std::fabs(a[i] - b[i]), 0x1p-7f * std::fabs(b[i]) + 1e-6f)
        << what << " [" << i << "]: " << a[i] << " vs " << b[i];
    if (a[i] == b[i]) ++exact;
    if (representable) {
      ASSERT_EQ(bf16::float_bits(a[i]) & 0xffffu, 0u) << what << " [" << i << "] " << a[i];
    }
  }
  EXPECT_GE(static_cast<double>(exact), exact_share * static_cast<double>(a.size()))
      << what << ": " << exact << " of " << a.size() << " values equal the reference";
}

}  // namespace okd::test
