// The tape's contract: hand-computed gradients of small scalar graphs (micrograd's example),
// accumulation across backward calls, NoGradGuard, detach, retain_graph, shared leaves,
// in-place modification of a saved tensor, the tape dump and DOT export, retain_grad, and that
// gradcheck itself catches a wrong backward.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/ops/elementwise.h"
#include "tests/support/test_support.h"

namespace okd {
namespace {

Tensor scalar_leaf(double v, const char* name = nullptr) {
  Tensor t = scalar_tensor(v, DType::Float64);
  t.requires_grad_(true);
  if (name) t.set_name(name);
  return t;
}

Tensor leaf(std::initializer_list<double> v, const Shape& shape, const char* name = nullptr) {
  Tensor t = tensor<double>(v, shape);
  t.requires_grad_(true);
  if (name) t.set_name(name);
  return t;
}

using ::okd::test::error_of;

class TapeTest : public ::testing::Test {
 protected:
  void SetUp() override { okd::Tape::current().clear(); }
  void TearDown() override { okd::Tape::current().clear(); }
};

// The example from micrograd's README; the expected numbers are the ones it prints (computed
// there with PyTorch): g = 24.7041, dg/da = 138.8338, dg/db = 645.5773.
TEST_F(TapeTest, MicrogradExample) {
  Tensor a = scalar_leaf(-4.0, "a"), b = scalar_leaf(2.0, "b");
  Tensor c = a + b;
  Tensor d = a * b + pow(b, 3.0);
  c = c + (c + 1.0);
  c = c + (1.0 + c + (-a));
  d = d + (d * 2.0 + relu(b + a));
  d = d + (3.0 * d + relu(b - a));
  Tensor e = c - d;
  Tensor f = pow(e, 2.0);
  Tensor g = f / 2.0;
  g = g + 10.0 / f;
  EXPECT_NEAR(g.item(), 24.7041, 1e-4);
  backward(g);
  EXPECT_NEAR(a.grad().item(), 138.8338, 1e-4);
  EXPECT_NEAR(b.grad().item(), 645.5773, 1e-4);
}

// The walkthrough of docs/autograd.md: L = relu(a*b + a) at a = 2, b = -3 and at a = 2, b = 3.
TEST_F(TapeTest, DocsExampleByHand) {
  {
    Tensor a = scalar_leaf(2.0, "a"), b = scalar_leaf(3.0, "b");
    Tensor L = relu(a * b + a);             // relu(6 + 2) = 8
    EXPECT_EQ(Tape::current().size(), 3u);  // mul, add, relu
    EXPECT_EQ(tape_dump(),
              "tape: 3 entries, 24 bytes saved\n"
              "#0 mul(a[], b[]) -> []  saved 16 B\n"
              "#1 add(#0.0[], a[]) -> []  saved 0 B\n"
              "#2 relu(#1.0[]) -> []  saved 8 B\n");
    backward(L);
    EXPECT_DOUBLE_EQ(L.item(), 8.0);
    EXPECT_DOUBLE_EQ(a.grad().item(), 4.0);  // b + 1
    EXPECT_DOUBLE_EQ(b.grad().item(), 2.0);  // a
    EXPECT_EQ(Tape::current().size(), 0u);   // cleared by backward
  }
  {
    Tensor a = scalar_leaf(2.0), b = scalar_leaf(-3.0);
    Tensor L = relu(a * b + a);  // relu(-4) = 0: the gradient stops at relu
    backward(L);
    EXPECT_DOUBLE_EQ(L.item(), 0.0);
    EXPECT_DOUBLE_EQ(a.grad().item(), 0.0);
    EXPECT_DOUBLE_EQ(b.grad().item(), 0.0);
  }
}

TEST_F(TapeTest, BroadcastGradientIsSummedBack) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor bias = leaf({10, 20, 30}, {3});
  backward(sum(x * bias + bias));
  EXPECT_ALLCLOSE(bias.grad(), tensor<double>({1 + 4 + 2, 2 + 5 + 2, 3 + 6 + 2}, {3}));
  EXPECT_ALLCLOSE(x.grad(), tensor<double>({10, 20, 30, 10, 20, 30}, {2, 3}));
}

TEST_F(TapeTest, GradientsAccumulateAcrossBackwardCalls) {
  Tensor a = leaf({1, -2, 3}, {3});
  backward(sum(a * a));  // d/da = 2a
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({2, -4, 6}, {3}));
  backward(sum(a * 3.0));  // += 3
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({5, -1, 9}, {3}));
  a.set_grad({});  // what zero_grad does
  backward(sum(a));
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({1, 1, 1}, {3}));
}

TEST_F(TapeTest, NoGradGuardRecordsNothing) {
  Tensor a = leaf({1, 2}, {2});
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Tensor y = exp(a * a);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(Tape::current().size(), 0u);
  }
  EXPECT_TRUE(grad_enabled());
  Tensor y = a * a;
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(Tape::current().size(), 1u);
}

TEST_F(TapeTest, DetachStopsTheGradient) {
  Tensor a = leaf({1, 2, 3}, {3});
  Tensor frozen = detach(a);
  EXPECT_FALSE(frozen.requires_grad());
  EXPECT_TRUE(frozen.shares_storage(a));
  backward(sum(frozen * a));  // only the second factor carries a gradient: d/da = a, not 2a
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({1, 2, 3}, {3}));
}

TEST_F(TapeTest, RetainGraphAllowsASecondBackward) {
  Tensor a = leaf({1, 2}, {2});
  Tensor L = sum(a * a);
  backward(L, {}, /*retain_graph=*/true);
  backward(L);
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({4, 8}, {2}));
}

TEST_F(TapeTest, SecondBackwardWithoutRetainGraphThrows) {
  Tensor a = leaf({1, 2}, {2});
  Tensor L = sum(exp(a));
  backward(L);
  std::string msg = error_of([&] { backward(L); });
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
  // Building on an intermediate of the freed graph is an error too.
  Tensor h = exp(a);
  backward(sum(h));
  msg = error_of([&] { (void)mul(h, 2.0); });
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
}

TEST_F(TapeTest, NonScalarBackwardNeedsGradOutput) {
  Tensor a = leaf({1, 2, 3}, {3});
  Tensor y = a * 2.0;
  std::string msg = error_of([&] { backward(y); });
  EXPECT_NE(msg.find("grad_output"), std::string::npos) << msg;
  backward(y, tensor<double>({1, 10, 100}, {3}));
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({2, 20, 200}, {3}));
}

TEST_F(TapeTest, LeafUsedTwiceGetsTheSum) {
  Tensor a = leaf({1, 2}, {2});
  Tensor b = leaf({5, 7}, {2});
  backward(sum(a * b + exp(a) * 2.0));  // d/da = b + 2 e^a
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({5 + 2 * std::exp(1.0), 7 + 2 * std::exp(2.0)}, {2}));
  Tensor c = leaf({3}, {1});
  backward(sum(c * c * c));  // 3 c^2
  EXPECT_ALLCLOSE(c.grad(), tensor<double>({27}, {1}));
}

TEST_F(TapeTest, ModifyingASavedTensorInPlaceThrowsNamingTheOp) {
  Tensor a = leaf({1, 2}, {2});
  Tensor b = tensor<double>({3, 4}, {2});  // saved by mul: d(a*b)/da = b
  Tensor L = sum(a * b);
  ops::add_(b, ones({2}, DType::Float64));
  std::string msg = error_of([&] { backward(L); });
  EXPECT_NE(msg.find("mul"), std::string::npos) << msg;
  EXPECT_NE(msg.find("in place"), std::string::npos) << msg;
}

TEST_F(TapeTest, DumpListsEntriesWithOpsAndShapes) {
  Tensor a = leaf({1, 2, 3, 4, 5, 6}, {2, 3}, "weight");
  Tensor x = tensor<double>({1, 1, 1}, {3});
  Tensor L = sum(relu(a * x));
  std::string dump = tape_dump();
  EXPECT_NE(dump.find("3 entries"), std::string::npos) << dump;
  EXPECT_NE(dump.find("#0 mul(weight[2, 3], const[3]) -> [2, 3]"), std::string::npos) << dump;
  EXPECT_NE(dump.find("#1 relu(#0.0[2, 3])"), std::string::npos) << dump;
  EXPECT_NE(dump.find("#2 sum(#1.0[2, 3]) -> []"), std::string::npos) << dump;
  std::string dot = tape_dot(L);
  EXPECT_NE(dot.find("digraph"), std::string::npos) << dot;
  EXPECT_NE(dot.find("mul"), std::string::npos) << dot;
  EXPECT_NE(dot.find("weight"), std::string::npos) << dot;
  EXPECT_NE(dot.find("e0 -> e1"), std::string::npos) << dot;
}

TEST_F(TapeTest, RetainGradKeepsAnIntermediateGradient) {
  Tensor a = leaf({1, 2}, {2});
  Tensor b = leaf({3, -1}, {2});
  Tensor h = a * b;
  h.retain_grad();
  Tensor not_retained = h + 1.0;
  backward(sum(not_retained * not_retained));  // dL/dh = 2 (h + 1)
  EXPECT_ALLCLOSE(h.grad(), tensor<double>({8, -2}, {2}));
  EXPECT_FALSE(not_retained.grad().defined());
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({24, 2}, {2}));  // dL/dh * b
}

TEST_F(TapeTest, MaxDimRoutesGradientToTheArgmax) {
  Tensor a = leaf({1, 5, 3, 9, 2, 4}, {2, 3});
  auto [values, indices] = max(a, 1);
  EXPECT_ALLCLOSE(values, tensor<double>({5, 9}, {2}));
  EXPECT_EQ(to_vector<int64_t>(indices), (std::vector<int64_t>{1, 0}));
  EXPECT_FALSE(indices.requires_grad());
  backward(sum(values * tensor<double>({2, 3}, {2})));
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({0, 2, 0, 3, 0, 0}, {2, 3}));
}

// At kinks and ties gradcheck cannot decide (the function is not differentiable there); these
// are the choices okd makes, and the expected values are what PyTorch 1.13 returns for the same
// calls (torch.maximum, amax, clamp, pow, norm, std, relu, abs, max(dim)).
TEST_F(TapeTest, KinksAndTiesMatchPyTorch) {
  auto grad_of = [](Tensor x, const std::function<Tensor(const Tensor&)>& f) {
    x.set_grad({});
    backward(sum(f(x)));
    return x.grad();
  };
  Tensor a = leaf({0.5, -1.0, 2.0}, {3}), b = leaf({0.5, 1.0, 2.0}, {3});
  backward(sum(maximum(a, b)));
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({0.5, 0, 0.5}, {3}));
  EXPECT_ALLCLOSE(b.grad(), tensor<double>({0.5, 1, 0.5}, {3}));
  Tensor row = leaf({1, 3, 3, -2}, {1, 4});
  EXPECT_ALLCLOSE(grad_of(row, [](const Tensor& x) { return amax(x, {1}); }),
                  tensor<double>({0, 0.5, 0.5, 0}, {1, 4}));
  EXPECT_ALLCLOSE(grad_of(row, [](const Tensor& x) { return max(x, 1).first; }),
                  tensor<double>({0, 1, 0, 0}, {1, 4}));
  EXPECT_ALLCLOSE(
      grad_of(leaf({-0.5, 0.7, 0.0}, {3}), [](const Tensor& x) { return clamp(x, -0.5, 0.7); }),
      tensor<double>({1, 1, 1}, {3}));
  Tensor base = tensor<double>({0.0, 1.5}, {2});
  EXPECT_NEAR(grad_of(leaf({1.5, 0.5}, {2}), [&](const Tensor& e) { return pow(base, e); }).at({0}),
              0.0, 1e-12);
  EXPECT_ALLCLOSE(grad_of(leaf({0, 0, 0}, {3}), [](const Tensor& x) { return norm(x); }),
                  tensor<double>({0, 0, 0}, {3}));
  EXPECT_ALLCLOSE(grad_of(leaf({1, 1, 1}, {3}), [](const Tensor& x) { return okd::std(x); }),
                  tensor<double>({0, 0, 0}, {3}));
  EXPECT_ALLCLOSE(grad_of(leaf({0, 1}, {2}), [](const Tensor& x) { return relu(x); }),
                  tensor<double>({0, 1}, {2}));
  EXPECT_ALLCLOSE(grad_of(leaf({0, 1}, {2}), [](const Tensor& x) { return abs(x); }),
                  tensor<double>({0, 1}, {2}));
}

TEST_F(TapeTest, ViewOfContiguousIsANewNodeNotTheInput) {
  Tensor a = leaf({1, 2}, {2});
  Tensor c = contiguous(a);  // the raw op returns a itself; the recorded output must not be a
  EXPECT_FALSE(c.is_same(a));
  EXPECT_TRUE(a.is_leaf());
  backward(sum(c * c));
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({2, 4}, {2}));
}

// A deliberately wrong differentiable function: x^2 whose backward returns 2x the right gradient.
Tensor wrong_square(const Tensor& x) {
  Tensor out = ops::mul(x, x);
  if (needs_record(x)) {
    Saved saved(x);
    record(Op::mul, {x}, {out},
           [saved](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::mul(ops::mul(g[0], saved.get(Op::mul)), 4.0)};  // right: 2 x dout
           });
  }
  return out;
}

TEST_F(TapeTest, GradcheckCatchesAWrongBackward) {
  Tensor x = leaf({0.5, -1.0, 2.0}, {3});
  GradcheckResult bad = gradcheck([](const TensorList& in) { return wrong_square(in[0]); }, {x});
  EXPECT_FALSE(bad.passed);
  EXPECT_NE(bad.message.find("input 0"), std::string::npos) << bad.message;
  EXPECT_NE(bad.message.find("element"), std::string::npos) << bad.message;
  ASSERT_EQ(bad.max_abs_error.size(), 1u);
  EXPECT_GT(bad.max_abs_error[0], 0.1);
  // The right function on the same input passes: the check discriminates.
  GradcheckResult good = gradcheck([](const TensorList& in) { return mul(in[0], in[0]); }, {x});
  EXPECT_TRUE(good.passed) << good.message;
  EXPECT_LT(good.max_abs_error[0], 1e-6);
  // The caller's tensor is not perturbed or given a gradient.
  EXPECT_ALLCLOSE(x, tensor<double>({0.5, -1.0, 2.0}, {3}));
  EXPECT_FALSE(x.grad().defined());
}

TEST_F(TapeTest, GradcheckWeightsEveryOutputElement) {
  // A backward that swaps its two output gradients passes a plain sum() check but not a random
  // weighting: gradcheck must catch it.
  auto swapped = [](const TensorList& in) {
    Tensor out = ops::mul(in[0], 2.0);
    record(Op::mul_scalar, {in[0]}, {out},
           [](const TensorList& g, const std::vector<bool>&) -> TensorList {
             Tensor flipped = tensor<double>({g[0].at({1}) * 2, g[0].at({0}) * 2}, {2});
             return {flipped};
           });
    return out;
  };
  GradcheckResult r = gradcheck(swapped, {leaf({1.0, 2.0}, {2})});
  EXPECT_FALSE(r.passed) << "a permuted gradient went unnoticed";
}

TEST_F(TapeTest, GradcheckRejectsFloat32Inputs) {
  Tensor x = tensor<float>({1.f, 2.f}, {2});
  x.requires_grad_(true);
  EXPECT_THROW(gradcheck([](const TensorList& in) { return exp(in[0]); }, {x}), Error);
}

// A leaf's first gradient is the backward's own tensor when nothing else can see it (no copy),
// and a copy when it is shared: add's backward hands the same gradient to both operands, and an
// in-place change of one .grad must not reach the other.
const double* g_made_by_backward = nullptr;
Tensor doubled(const Tensor& x) {
  Tensor out = ops::mul(x, 2.0);
  if (needs_record(x))
    record(Op::mul, {x}, {out}, [](const TensorList& g, const std::vector<bool>&) -> TensorList {
      Tensor d = ops::mul(g[0], 2.0);
      g_made_by_backward = d.data<double>();
      return {d};
    });
  return out;
}

TEST_F(TapeTest, ALeafTakesAnUnsharedGradientWithoutACopy) {
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  backward(sum(doubled(x)));
  ASSERT_NE(g_made_by_backward, nullptr);
  EXPECT_EQ(x.grad().data<double>(), g_made_by_backward);
  EXPECT_ALLCLOSE(x.grad(), tensor<double>({2.0, 2.0, 2.0}, {3}));
  // A second backward accumulates into it in place.
  backward(sum(doubled(x)));
  EXPECT_ALLCLOSE(x.grad(), tensor<double>({4.0, 4.0, 4.0}, {3}));

  Tensor a = leaf({1.0, 2.0}, {2}), b = leaf({3.0, 4.0}, {2});
  backward(sum(add(a, b)));
  ASSERT_NE(a.grad().data<double>(), b.grad().data<double>());
  ops::mul_(a.grad(), 10.0);
  EXPECT_ALLCLOSE(a.grad(), tensor<double>({10.0, 10.0}, {2}));
  EXPECT_ALLCLOSE(b.grad(), tensor<double>({1.0, 1.0}, {2}));
}

}  // namespace
}  // namespace okd
