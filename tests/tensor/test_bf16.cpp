// Mixed precision on the CPU: round_bf16 against PyTorch's float32 -> bfloat16 rounding bit for
// bit, and conv2d with bfloat16 products (Precision::BFloat16) against exact references
// (tests/reference/make_bf16_refs.py): operands rounded to bfloat16, products summed in float64,
// the result rounded to bfloat16. okd sums in float32, so a result may sit one bfloat16 step from
// the reference where the float32 sum crosses a rounding boundary; the tests allow that step and
// require nearly all values to be exactly the reference's (bf16_check.h). The nn-level switch,
// Autocast, is tested in tests/nn/test_autocast.cpp.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/view.h"
#include "tests/support/bf16_check.h"
#include "tests/support/test_support.h"

using namespace okd;
using okd::test::expect_bf16_result;

namespace {

Tensor ref(const std::string& c, const std::string& k) {
  return test::load_ref("bf16/" + c + "_" + k);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_vector<double>(a), y = to_vector<double>(b);
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

struct ConvCase {
  std::string name;
  ops::Conv2dParams p;
};
std::vector<ConvCase> conv_cases() {
  ops::Conv2dParams a;
  a.pad_h = a.pad_w = 1;
  ops::Conv2dParams b;
  b.stride_h = b.stride_w = 2;
  b.pad_h = b.pad_w = 1;
  b.groups = 2;
  return {{"conv_3x3", a}, {"conv_s2_g2", b}};
}

}  // namespace

TEST(Bf16, RoundingMatchesPyTorchBitForBit) {
  const std::vector<float> x = to_vector<float>(ref("round", "x"));
  const std::vector<float> want = to_vector<float>(ref("round", "out"));
  const std::vector<float> got = to_vector<float>(ops::round_bf16(ref("round", "x")));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(bf16::float_bits(got[i]), bf16::float_bits(want[i]))
        << "round_bf16(" << x[i] << ") = " << got[i] << ", PyTorch " << want[i];
  // The cases the reference starts with: ties go to the even neighbour, overflow to infinity.
  EXPECT_EQ(bf16::round(1.0f + 0x1p-8f), 1.0f);
  EXPECT_EQ(bf16::round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  EXPECT_EQ(bf16::round(3.4e38f), INFINITY);
}

TEST(Bf16, NanStaysNanAndRoundingIsIdempotent) {
  for (float nan : {NAN, -NAN, bf16::bits_float(0x7f800001u), bf16::bits_float(0xff80ffffu)}) {
    const float r = bf16::round(nan);
    EXPECT_TRUE(std::isnan(r)) << std::hex << bf16::float_bits(nan) << " -> "
                               << bf16::float_bits(r);
    EXPECT_EQ(bf16::float_bits(r) & 0xffffu, 0u);
  }
  const Tensor x = ref("round", "x");
  const Tensor once = ops::round_bf16(x);
  EXPECT_EQ(to_vector<float>(ops::round_bf16(once)), to_vector<float>(once));
  // A non-contiguous input is read through its strides.
  const Tensor m = ops::reshape(ops::narrow(x, 0, 0, 278), {2, 139});
  const Tensor t = ops::transpose(m, 0, 1);
  EXPECT_EQ(to_vector<float>(ops::round_bf16(t)),
            to_vector<float>(ops::contiguous(ops::transpose(ops::round_bf16(m), 0, 1))));
}

TEST(Bf16, RoundBf16RefusesOtherDtypes) {
  try {
    ops::round_bf16(zeros({3}, DType::Float64));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("round_bf16: expected a float32 tensor"),
              std::string::npos)
        << e.what();
  }
}

TEST(Bf16, ConvolutionProductsMatchTheExactReference) {
  for (const auto& [name, p32] : conv_cases()) {
    SCOPED_TRACE(name);
    ops::Conv2dParams p = p32;
    p.precision = Precision::BFloat16;
    const Tensor x = ref(name, "x"), w = ref(name, "w"), b = ref(name, "b"), gy = ref(name, "gy");
    const Tensor y = ops::conv2d_forward(x, w, Tensor(), p);
    expect_bf16_result(y, ref(name, "out"), "forward");
    expect_bf16_result(ops::conv2d_forward(x, w, b, p), ref(name, "out_bias"), "forward + bias",
                       false);
    expect_bf16_result(ops::conv2d_backward_input(gy, w, x.shape(), p), ref(name, "gx"),
                       "input gradient");
    expect_bf16_result(ops::conv2d_backward_weight(gy, x, w.shape(), p), ref(name, "gw"),
                       "weight gradient");
    // The precision is not a no-op: float32 products give other values.
    const Tensor y32 = ops::conv2d_forward(x, w, Tensor(), p32);
    EXPECT_ALLCLOSE(y32, ref(name, "out_f32"), 1e-5, 1e-5);
    EXPECT_GT(max_abs_diff(y, y32), 1e-3);
  }
}

TEST(Bf16, Float64IgnoresThePrecision) {
  const auto [name, p32] = conv_cases()[0];
  ops::Conv2dParams p = p32;
  p.precision = Precision::BFloat16;
  const Tensor x = ops::to(ref(name, "x"), DType::Float64),
               w = ops::to(ref(name, "w"), DType::Float64);
  EXPECT_EQ(to_vector<double>(ops::conv2d_forward(x, w, Tensor(), p)),
            to_vector<double>(ops::conv2d_forward(x, w, Tensor(), p32)));
  EXPECT_EQ(to_vector<double>(ops::matmul(x, ops::transpose(x, 2, 3), Precision::BFloat16)),
            to_vector<double>(ops::matmul(x, ops::transpose(x, 2, 3))));
}
