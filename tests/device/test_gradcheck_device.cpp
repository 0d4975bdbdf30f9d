// gradcheck with its inputs on cuda:0: every case of the op inventory runs there (f, the forward
// kernels and each backward on the device, float64), the check still fails for a wrong backward,
// and misuse (float32, inputs split across devices) is a named error. Without a GPU cuda:0 is
// emulated on the CPU, which runs the CPU kernels, so each case's errors must equal the CPU
// gradcheck's bit for bit; with a GPU these tests run on it and only have to pass.
#include <gtest/gtest.h>

#include <set>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/view.h"
#include "tensor/runtime.h"
#include "tests/support/device_test.h"
#include "tests/support/gradcheck_on_device.h"

namespace {

using namespace okd;
using test::g_emulated;
using test::kCuda;

Tensor leaf_on(const std::vector<double>& v, const Shape& shape, Device device) {
  Tensor t = ops::to(from_vector(v, shape), device);
  t.requires_grad_(true);
  return t;
}

// x^2 whose backward returns 4 x dout instead of 2 x dout (test_tape.cpp's wrong_square).
Tensor wrong_square(const Tensor& x) {
  Tensor out = ops::mul(x, x);
  if (needs_record(x)) {
    Saved saved(x);
    record(Op::mul, {x}, {out}, [saved](const TensorList& g, const std::vector<bool>&) {
      return TensorList{ops::mul(ops::mul(g[0], saved.get(Op::mul)), 4.0)};
    });
  }
  return out;
}

}  // namespace

TEST(GradcheckOnDevice, EveryInventoryCasePassesOnCuda0) {
  const int ran = test::expect_cases_pass_on(kCuda, g_emulated);
  EXPECT_EQ(static_cast<size_t>(ran),
            gradcheck_cases().size() - test::device_gradcheck_skips().size());
  EXPECT_EQ(Tape::current().size(), 0u);
}

// The skip list cannot rot: each entry names a registered case, once, with a reason, and the
// list stays a handful.
TEST(GradcheckOnDevice, SkipListIsSmallAndNamesRegisteredCases) {
  std::set<std::string> names;
  for (const GradcheckCase& c : gradcheck_cases()) names.insert(test::case_name(c));
  std::set<std::string> seen;
  for (const auto& s : test::device_gradcheck_skips()) {
    EXPECT_TRUE(names.count(s.name)) << "skipped case '" << s.name << "' is not registered";
    EXPECT_TRUE(seen.insert(s.name).second) << "'" << s.name << "' skipped twice";
    EXPECT_FALSE(s.reason.empty()) << s.name;
  }
  EXPECT_LE(test::device_gradcheck_skips().size(), 5u);
}

TEST(GradcheckOnDevice, CatchesAWrongBackwardAndLeavesTheCallersTensorAlone) {
  Tensor x = leaf_on({0.5, -1.0, 2.0}, {3}, kCuda);
  GradcheckResult bad = gradcheck([](const TensorList& in) { return wrong_square(in[0]); }, {x});
  EXPECT_FALSE(bad.passed);
  EXPECT_NE(bad.message.find("input 0"), std::string::npos) << bad.message;
  ASSERT_EQ(bad.max_abs_error.size(), 1u);
  EXPECT_GT(bad.max_abs_error[0], 0.1);
  GradcheckResult good = gradcheck([](const TensorList& in) { return mul(in[0], in[0]); }, {x});
  EXPECT_TRUE(good.passed) << good.message;
  EXPECT_LT(good.max_abs_error[0], 1e-6);
  EXPECT_EQ(to_vector<double>(x), (std::vector<double>{0.5, -1.0, 2.0}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(Tape::current().size(), 0u);
}

// inputs_on_device keeps a view's strides and offset, and gradcheck perturbs each element of such
// a leaf at its own storage offset: had it written the wrong element (or a gap element outside
// the view), the numeric gradient of exp would not match the analytic one.
TEST(GradcheckOnDevice, KeepsLayoutsAndPerturbsEachElementOfAStridedLeaf) {
  Tensor base = from_vector<double>(
      {9.0, 0.3, 9.0, -0.7, 9.0, 1.1, 9.0, 0.4, 9.0, -1.3, 9.0, 0.9, 9.0, 0.2, 9.0, -0.5}, {2, 8});
  Tensor x =
      ops::transpose(ops::slice(base, 1, 1, 8, 2), 0, 1);  // [4, 2], offset 1, strides (2, 8)
  x.requires_grad_(true);
  const TensorList on_dev = inputs_on_device({x, from_vector<int64_t>({1, 0})}, kCuda);
  ASSERT_EQ(on_dev.size(), 2u);
  ASSERT_TRUE(on_dev[0].device().is_cuda());
  EXPECT_EQ(on_dev[0].shape(), x.shape());
  EXPECT_EQ(on_dev[0].strides(), x.strides());
  EXPECT_EQ(on_dev[0].offset(), x.offset());
  EXPECT_TRUE(on_dev[0].requires_grad());
  EXPECT_FALSE(on_dev[1].requires_grad());
  EXPECT_TRUE(on_dev[1].device().is_cuda());
  EXPECT_EQ(to_vector<double>(on_dev[0]), to_vector<double>(x));

  auto f = [](const TensorList& in) { return exp(index_select(in[0], 1, in[1])); };
  GradcheckResult r = gradcheck(f, on_dev);
  EXPECT_TRUE(r.passed) << r.message;
  if (g_emulated) {
    GradcheckResult on_cpu = gradcheck(f, {x, from_vector<int64_t>({1, 0})});
    EXPECT_EQ(r.max_abs_error, on_cpu.max_abs_error);
  }
  EXPECT_EQ(to_vector<double>(on_dev[0]), to_vector<double>(x));  // the caller's copy untouched
}

TEST(GradcheckOnDevice, Float32AndInputsOnTwoDevicesAreErrors) {
  Tensor f32 = ops::to(from_vector<float>({1.f, 2.f}), kCuda);
  f32.requires_grad_(true);
  try {
    gradcheck([](const TensorList& in) { return exp(in[0]); }, {f32});
    FAIL() << "a float32 device input must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("float64 cuda:0 tensor"), std::string::npos) << e.what();
  }
  Tensor a = leaf_on({1.0, 2.0}, {2}, kCuda), b = leaf_on({3.0, 4.0}, {2}, kCPU);
  try {
    gradcheck([](const TensorList& in) { return mul(in[0], in[1]); }, {a, b});
    FAIL() << "inputs on cuda:0 and the cpu must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must share a device"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}
