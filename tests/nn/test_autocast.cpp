// nn::functional::Autocast: conv2d and linear with bfloat16 products inside the scope, float32
// outside, and the tape keeping the forward's precision for the backward. References from
// tests/reference/make_bf16_refs.py (tests/data/bf16); the raw ops are tested in
// tests/tensor/test_bf16.cpp.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "tests/support/bf16_check.h"
#include "tests/support/test_support.h"

using namespace okd;
namespace F = okd::nn::functional;
using okd::test::expect_bf16_result;

namespace {
Tensor ref(const std::string& c, const std::string& k) {
  return test::load_ref("bf16/" + c + "_" + k);
}
}  // namespace

// Autocast makes F::conv2d and F::linear use bfloat16 products; the tape keeps the precision of
// the forward, so a backward run after the scope has closed still uses bfloat16 products.
TEST(Autocast, CoversConvAndLinearAndTheTapeKeepsIt) {
  const std::string name = "conv_3x3";
  Tensor x = ref(name, "x"), w = ref(name, "w"), b = ref(name, "b");
  x.requires_grad_(true);
  w.requires_grad_(true);
  Tensor lx = ref("linear", "x"), lw = ref("linear", "w"), lb = ref("linear", "b");
  lx.requires_grad_(true);
  lw.requires_grad_(true);
  Tensor y, ly;
  {
    F::Autocast bf16(Precision::BFloat16);
    EXPECT_EQ(F::autocast_precision(), Precision::BFloat16);
    y = F::conv2d(x, w, b, 1, 1);
    ly = F::linear(lx, lw, lb);
  }
  EXPECT_EQ(F::autocast_precision(), Precision::Float32);
  expect_bf16_result(y, ref(name, "out_bias"), "conv forward", false);
  expect_bf16_result(ly, ref("linear", "out"), "linear forward", false);
  backward(sum(y * ref(name, "gy")) + sum(ly * ref("linear", "gy")));
  expect_bf16_result(x.grad(), ref(name, "gx"), "conv input gradient");
  expect_bf16_result(w.grad(), ref(name, "gw"), "conv weight gradient");
  expect_bf16_result(lx.grad(), ref("linear", "gx"), "linear input gradient");
  expect_bf16_result(lw.grad(), ref("linear", "gw"), "linear weight gradient");
  // Outside the scope, float32 products again.
  NoGradGuard no_grad;
  EXPECT_ALLCLOSE(F::conv2d(x, w, Tensor(), 1, 1), ref(name, "out_f32"), 1e-5, 1e-5);
}

TEST(Autocast, ScopesNestAndRestore) {
  EXPECT_EQ(F::autocast_precision(), Precision::Float32);
  {
    F::Autocast outer(Precision::BFloat16);
    {
      F::Autocast inner(Precision::Float32);
      EXPECT_EQ(F::autocast_precision(), Precision::Float32);
    }
    EXPECT_EQ(F::autocast_precision(), Precision::BFloat16);
  }
  EXPECT_EQ(F::autocast_precision(), Precision::Float32);
  EXPECT_STREQ(precision_name(Precision::BFloat16), "bf16");
}
