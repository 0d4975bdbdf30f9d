// Gradient clipping (by total norm, as torch.nn.utils.clip_grad_norm_, and by value) and the
// temporal-mean (EMA) helper of PCL/DKEL (seeds.md §1.6), with hand-computed values.
#include <cmath>
#include <limits>

#include "nn/module.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::optim;

namespace {
// Two parameters with gradients [3, 4] and [[12]]: total 2-norm 13, 1-norm 19, inf-norm 12.
std::vector<Tensor> params_with_grads(DType dtype = DType::Float64) {
  Tensor a = zeros({2}, dtype).requires_grad_(), b = zeros({1, 1}, dtype).requires_grad_();
  Tensor none = zeros({3}, dtype).requires_grad_();  // no gradient: skipped
  a.set_grad(dtype == DType::Float64 ? tensor({3.0, -4.0}) : tensor({3.0f, -4.0f}));
  b.set_grad(dtype == DType::Float64 ? tensor({12.0}, {1, 1}) : tensor({12.0f}, {1, 1}));
  return {a, b, none};
}
}  // namespace

TEST(Clip, ByTotalNormScalesLikePyTorch) {
  auto p = params_with_grads();
  const double total = clip_grad_norm_(p, 6.5);
  EXPECT_EQ(total, 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_DOUBLE_EQ(p[0].grad().at({0}), 3.0 * coef);
  EXPECT_DOUBLE_EQ(p[0].grad().at({1}), -4.0 * coef);
  EXPECT_DOUBLE_EQ(p[1].grad().at({0, 0}), 12.0 * coef);
  EXPECT_FALSE(p[2].grad().defined());
  EXPECT_NEAR(grad_norm(p), 6.5, 1e-6);
}

TEST(Clip, BelowTheLimitNothingChanges) {
  auto p = params_with_grads(DType::Float32);
  const uint64_t v = p[0].grad().impl()->storage->version();
  EXPECT_NEAR(clip_grad_norm_(p, 13.1), 13.0, 1e-6);
  EXPECT_EQ(p[0].grad().at({1}), -4.0);
  EXPECT_EQ(p[1].grad().at({0, 0}), 12.0);
  EXPECT_EQ(p[0].grad().impl()->storage->version(), v);
}

TEST(Clip, OtherNormTypes) {
  auto p = params_with_grads();
  EXPECT_DOUBLE_EQ(grad_norm(p, 1.0), 19.0);
  EXPECT_DOUBLE_EQ(grad_norm(p, std::numeric_limits<double>::infinity()), 12.0);
  EXPECT_NEAR(grad_norm(p, 3.0), std::cbrt(27.0 + 64.0 + 1728.0), 1e-12);
  const double total = clip_grad_norm_(p, 1.2, std::numeric_limits<double>::infinity());
  EXPECT_EQ(total, 12.0);
  EXPECT_DOUBLE_EQ(p[1].grad().at({0, 0}), 12.0 * 1.2 / (12.0 + 1e-6));
  // A large tensor: the blocked, parallel sum agrees with a plain one.
  Tensor big = zeros({100003}).requires_grad_();
  std::vector<float> g(100003);
  double want = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = static_cast<float>(std::sin(0.001 * static_cast<double>(i)));
    want += static_cast<double>(g[i]) * g[i];
  }
  big.set_grad(from_vector(g));
  EXPECT_NEAR(grad_norm({big}), std::sqrt(want), 1e-9 * std::sqrt(want));
}

TEST(Clip, NonFiniteNorm) {
  auto p = params_with_grads();
  p[0].grad().data<double>()[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(clip_grad_norm_(p, 1.0, 2.0, /*error_if_nonfinite=*/true), Error);
  EXPECT_TRUE(std::isnan(clip_grad_norm_(p, 1.0)));
  EXPECT_TRUE(std::isnan(p[1].grad().at({0, 0})));  // PyTorch scales by the NaN coefficient too
}

TEST(Clip, ByValue) {
  Tensor a = zeros({4}).requires_grad_();
  a.set_grad(tensor({-5.0f, 0.5f, 7.0f, -1.0f}));
  clip_grad_value_({a}, 1.0);
  EXPECT_EQ(to_vector<float>(a.grad()), (std::vector<float>{-1.0f, 0.5f, 1.0f, -1.0f}));
  EXPECT_THROW(clip_grad_value_({a}, -1.0), Error);
}

TEST(Ema, WarmupDecay) {
  Tensor avg = tensor({10.0, 10.0}), src = tensor({1.0, 2.0});
  Ema ema({avg}, {src}, EmaOptions{0.999, true});
  EXPECT_EQ(ema.alpha(0), 0.0);
  EXPECT_EQ(ema.alpha(1), 0.5);
  EXPECT_DOUBLE_EQ(ema.alpha(9), 0.9);
  EXPECT_EQ(ema.alpha(5000), 0.999);
  ema.update();  // alpha 0: copies the source
  EXPECT_EQ(to_vector<double>(avg), (std::vector<double>{1.0, 2.0}));
  src.data<double>()[0] = 3.0;
  src.data<double>()[1] = 4.0;
  ema.update();  // alpha 0.5
  EXPECT_EQ(to_vector<double>(avg), (std::vector<double>{2.0, 3.0}));
  ema.update();  // alpha 2/3: 2 * 2/3 + 3 / 3
  EXPECT_NEAR(avg.at({0}), 2.0 * 2 / 3 + 3.0 / 3, 1e-15);
  EXPECT_EQ(ema.steps(), 3);
}

TEST(Ema, KeepInitUsesTheDecayFromTheStart) {
  Tensor avg = tensor({10.0f}), src = tensor({0.0f});
  Ema ema({avg}, {src}, EmaOptions{0.9, false});
  ema.update();
  EXPECT_FLOAT_EQ(avg.at({0}), 9.0f);
}

TEST(Ema, ModulesPairByNameAndBuffersAreLeftAlone) {
  auto make = [](double w, double running) {
    auto m = std::make_shared<nn::Module>("Net");
    m->register_parameter("weight", tensor({w, w}));
    m->register_buffer("running_mean", tensor({running}));
    return m;
  };
  auto student = make(1.0, 5.0), teacher = make(7.0, -3.0);
  Ema ema(*teacher, *student, EmaOptions{});
  const uint64_t v = teacher->param("weight").impl()->storage->version();
  ema.update();
  EXPECT_EQ(teacher->param("weight").at({1}), 1.0);
  EXPECT_GT(teacher->param("weight").impl()->storage->version(), v);
  // The EMA model's BN statistics come from its own forward passes, never from the student.
  EXPECT_EQ(teacher->buffer("running_mean").at({0}), -3.0);

  auto state = ema.state_dict();
  Ema resumed(*teacher, *student, EmaOptions{});
  resumed.load_state_dict(state);
  EXPECT_EQ(resumed.steps(), 1);
  EXPECT_THROW(resumed.load_state_dict({{"bogus", tensor({1.0})}}), Error);

  auto other = std::make_shared<nn::Module>("Other");
  other->register_parameter("bias", tensor({1.0, 1.0}));
  EXPECT_THROW(Ema(*other, *student), Error);
  EXPECT_THROW(Ema({tensor({1.0})}, {tensor({1.0, 2.0})}), Error);
}
