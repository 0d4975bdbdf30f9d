// SGD / Adam / AdamW against torch.optim: 20 steps on the least-squares problem of
// tests/reference/make_optim_refs.py (loss 0.5 ||A x - b||^2, x = [W (3x4) flattened, c (5)]),
// whose gradient A^T (A x - b) is computed here with plain loops. Also: parameter groups, the
// skipping of parameters without a gradient, version bumps, zero_grad and misuse errors.
#include <cmath>
#include <functional>
#include <memory>

#include "autograd/tape.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::optim;

namespace {

// The fixed problem: A [20, 17], b [20], start x0 [17].
struct LeastSquares {
  std::vector<double> A = to_vector<double>(test::load_ref("optim/problem_A"));
  std::vector<double> b = to_vector<double>(test::load_ref("optim/problem_b"));
  std::vector<double> x0 = to_vector<double>(test::load_ref("optim/problem_x0"));
  static constexpr int64_t m = 20, n = 17;

  // W [3, 4] and c [5] at x0, in dtype, requiring grad.
  std::pair<Tensor, Tensor> make_params(DType dtype) const {
    std::vector<double> w(x0.begin(), x0.begin() + 12), c(x0.begin() + 12, x0.end());
    Tensor W = from_vector(w, {3, 4}), C = from_vector(c, {5});
    if (dtype == DType::Float32) {
      W = from_vector(std::vector<float>(w.begin(), w.end()), {3, 4});
      C = from_vector(std::vector<float>(c.begin(), c.end()), {5});
    }
    W.requires_grad_();
    C.requires_grad_();
    return {W, C};
  }

  // Sets W.grad and c.grad to A^T (A x - b), computed in double.
  void set_grads(Tensor W, Tensor C) const {
    std::vector<double> x = to_vector<double>(W), c = to_vector<double>(C);
    x.insert(x.end(), c.begin(), c.end());
    std::vector<double> r(m), g(n, 0.0);
    for (int64_t i = 0; i < m; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[i * n + j] * x[j];
      r[i] = s - b[i];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) g[j] += A[i * n + j] * r[i];
    std::vector<double> gw(g.begin(), g.begin() + 12), gc(g.begin() + 12, g.end());
    if (W.dtype() == DType::Float64) {
      W.set_grad(from_vector(gw, {3, 4}));
      C.set_grad(from_vector(gc, {5}));
    } else {
      W.set_grad(from_vector(std::vector<float>(gw.begin(), gw.end()), {3, 4}));
      C.set_grad(from_vector(std::vector<float>(gc.begin(), gc.end()), {5}));
    }
  }
};

Tensor flat_params(const Tensor& W, const Tensor& C) {
  std::vector<double> x = to_vector<double>(W), c = to_vector<double>(C);
  x.insert(x.end(), c.begin(), c.end());
  return from_vector(x);
}

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const Tensor& W, const Tensor& C)>;

// The configurations of make_optim_refs.py's CONFIGS, same names.
std::vector<std::pair<std::string, MakeOptimizer>> configs() {
  auto sgd = [](SGDOptions o) -> MakeOptimizer {
    return [o](const Tensor& W, const Tensor& C) {
      return std::make_unique<SGD>(std::vector<Tensor>{W, C}, o);
    };
  };
  auto adam = [](AdamOptions o) -> MakeOptimizer {
    return [o](const Tensor& W, const Tensor& C) {
      return std::make_unique<Adam>(std::vector<Tensor>{W, C}, o);
    };
  };
  auto adamw = [](AdamWOptions o) -> MakeOptimizer {
    return [o](const Tensor& W, const Tensor& C) {
      return std::make_unique<AdamW>(std::vector<Tensor>{W, C}, o);
    };
  };
  std::vector<std::pair<std::string, MakeOptimizer>> out;
  {
    SGDOptions o;
    o.lr = 0.1;
    out.emplace_back("sgd_plain", sgd(o));
    o.momentum = 0.9;
    out.emplace_back("sgd_momentum", sgd(o));
    SGDOptions d = o;
    d.dampening = 0.3;
    out.emplace_back("sgd_dampening", sgd(d));
    SGDOptions nv = o;
    nv.nesterov = true;
    out.emplace_back("sgd_nesterov", sgd(nv));
    SGDOptions wd = o;
    wd.weight_decay = 0.05;
    out.emplace_back("sgd_weight_decay", sgd(wd));
    wd.nesterov = true;
    out.emplace_back("sgd_nesterov_weight_decay", sgd(wd));
  }
  {
    AdamOptions o;
    o.lr = 0.05;
    out.emplace_back("adam", adam(o));
    AdamOptions l2 = o;
    l2.beta1 = 0.8;
    l2.beta2 = 0.99;
    l2.weight_decay = 0.1;
    out.emplace_back("adam_l2", adam(l2));
    AdamOptions ams = o;
    ams.amsgrad = true;
    out.emplace_back("adam_amsgrad", adam(ams));
    AdamWOptions w;
    w.lr = 0.05;
    w.weight_decay = 0.1;
    out.emplace_back("adamw", adamw(w));
    w.amsgrad = true;
    out.emplace_back("adamw_amsgrad", adamw(w));
  }
  out.emplace_back("sgd_two_groups", [](const Tensor& W, const Tensor& C) {
    SGDOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.nesterov = true;
    o.weight_decay = 0.01;
    ParamGroup g0, g1;
    g0.params = {W};  // lr and decay from the options
    g1.params = {C};
    g1.lr = 0.03;
    g1.weight_decay = 0.1;
    return std::make_unique<SGD>(std::vector<ParamGroup>{g0, g1}, o);
  });
  out.emplace_back("adamw_two_groups", [](const Tensor& W, const Tensor& C) {
    AdamWOptions o;
    ParamGroup g0, g1;
    g0.params = {W};
    g0.lr = 0.05;
    g0.weight_decay = 0.01;
    g1.params = {C};
    g1.lr = 0.01;
    g1.weight_decay = 0.2;
    return std::make_unique<AdamW>(std::vector<ParamGroup>{g0, g1}, o);
  });
  return out;
}

}  // namespace

TEST(Optimizers, TwentyStepsFollowPyTorchInFloat64) {
  LeastSquares problem;
  for (const auto& [name, make] : configs()) {
    SCOPED_TRACE(name);
    Tensor ref = test::load_ref("optim/traj_" + name);
    ASSERT_EQ(ref.shape(), (Shape{20, 17}));
    auto [W, C] = problem.make_params(DType::Float64);
    auto opt = make(W, C);
    for (int64_t step = 0; step < 20; ++step) {
      opt->zero_grad();
      problem.set_grads(W, C);
      opt->step();
      Tensor want = make_view(ref, {17}, {1}, step * 17);
      ASSERT_ALLCLOSE(flat_params(W, C), want, 1e-9, 1e-12) << "after step " << step + 1;
    }
    EXPECT_EQ(opt->steps_taken(), 20);
  }
}

TEST(Optimizers, Float32FollowsTheFloat64Trajectory) {
  LeastSquares problem;
  for (const auto& [name, make] : configs()) {
    SCOPED_TRACE(name);
    Tensor ref = test::load_ref("optim/traj_" + name);
    auto [W, C] = problem.make_params(DType::Float32);
    auto opt = make(W, C);
    for (int64_t step = 0; step < 20; ++step) {
      opt->zero_grad();
      problem.set_grads(W, C);
      opt->step();
    }
    EXPECT_EQ(W.dtype(), DType::Float32);
    EXPECT_ALLCLOSE(flat_params(W, C), make_view(ref, {17}, {1}, 19 * 17), 1e-4, 1e-5);
  }
}

TEST(Optimizers, GroupsResolveDefaultsAndKeepTheirOwnValues) {
  LeastSquares problem;
  auto [W, C] = problem.make_params(DType::Float64);
  SGDOptions o;
  o.lr = 0.2;
  o.weight_decay = 1e-4;
  ParamGroup g0, g1;
  g0.params = {W};
  g1.params = {C};
  g1.weight_decay = 1e-5;  // FFL's fusion module
  SGD sgd(std::vector<ParamGroup>{g0, g1}, o);
  ASSERT_EQ(sgd.param_groups().size(), 2u);
  EXPECT_EQ(sgd.param_groups()[0].lr, 0.2);
  EXPECT_EQ(sgd.param_groups()[0].weight_decay, 1e-4);
  EXPECT_EQ(sgd.param_groups()[1].lr, 0.2);
  EXPECT_EQ(sgd.param_groups()[1].weight_decay, 1e-5);
  sgd.set_lr(0.01);
  EXPECT_EQ(sgd.param_groups()[1].lr, 0.01);
}

TEST(Optimizers, ParametersWithoutGradientAreSkipped) {
  // Adam counts steps per parameter: a parameter that had no gradient for a step is not touched
  // and its bias correction does not advance (PyTorch behaviour).
  Tensor a = tensor({1.0, 2.0}).requires_grad_(), b = tensor({3.0}).requires_grad_();
  Adam adam(std::vector<Tensor>{a, b}, AdamOptions{});
  a.set_grad(tensor({0.5, -0.5}));
  adam.step();
  EXPECT_EQ(b.at({0}), 3.0);
  EXPECT_EQ(adam.state(0, 1).step, 0);
  EXPECT_TRUE(adam.state(0, 1).buffers.empty());
  EXPECT_EQ(adam.state(0, 0).step, 1);
  // First Adam step moves every coordinate by lr * g / (|g| + eps') = ~lr against the gradient.
  EXPECT_NEAR(a.at({0}), 1.0 - 1e-3, 1e-10);
  EXPECT_NEAR(a.at({1}), 2.0 + 1e-3, 1e-10);
  b.set_grad(tensor({2.0}));
  adam.step();
  EXPECT_EQ(adam.state(0, 0).step, 2);
  EXPECT_EQ(adam.state(0, 1).step, 1);
  EXPECT_NEAR(b.at({0}), 3.0 - 1e-3, 1e-10);  // b's first step: bias correction of t = 1
}

TEST(Optimizers, StepBumpsVersionsAndRecordsNothing) {
  Tensor p = tensor({1.0f, 2.0f}).requires_grad_();
  p.set_grad(tensor({1.0f, 1.0f}));
  SGDOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  SGD sgd(std::vector<Tensor>{p}, o);
  const uint64_t before = p.impl()->storage->version();
  const size_t tape_before = Tape::current().size();
  sgd.step();
  EXPECT_GT(p.impl()->storage->version(), before);
  EXPECT_EQ(Tape::current().size(), tape_before);
  EXPECT_EQ(p.at({0}), 0.5);
  EXPECT_EQ(p.at({1}), 1.5);
  EXPECT_TRUE(grad_enabled());
}

TEST(Optimizers, ZeroGradDropsOrZeroes) {
  Tensor p = tensor({1.0, 2.0}).requires_grad_();
  SGD sgd(std::vector<Tensor>{p}, SGDOptions{});
  p.set_grad(tensor({3.0, 4.0}));
  Tensor g = p.grad();
  sgd.zero_grad(false);
  EXPECT_TRUE(p.grad().is_same(g));
  EXPECT_EQ(g.at({0}), 0.0);
  EXPECT_EQ(g.at({1}), 0.0);
  sgd.zero_grad();
  EXPECT_FALSE(p.grad().defined());
}

TEST(Optimizers, MisuseIsAClearError) {
  Tensor p = tensor({1.0, 2.0}).requires_grad_();
  SGDOptions bad;
  bad.nesterov = true;  // without momentum
  try {
    SGD sgd(std::vector<Tensor>{p}, bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Nesterov"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SGD(std::vector<Tensor>{p, p}, SGDOptions{}), Error);  // duplicate parameter
  EXPECT_THROW(SGD(std::vector<Tensor>{tensor({int64_t{1}})}, SGDOptions{}), Error);

  SGD sgd(std::vector<Tensor>{p}, SGDOptions{});
  p.set_grad(tensor({1.0, 2.0, 3.0}));
  try {
    sgd.step();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
  }
  // A parameter that is a non-contiguous view cannot be updated in place.
  Tensor base = tensor({1.0, 2.0, 3.0, 4.0}, {2, 2});
  Tensor col = make_view(base, {2}, {2}, 0).requires_grad_();
  SGD on_view(std::vector<Tensor>{col}, SGDOptions{});
  col.set_grad(tensor({1.0, 1.0}));
  EXPECT_THROW(on_view.step(), Error);
}
