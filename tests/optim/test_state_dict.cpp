// Optimizer state in checkpoints: 10 steps straight and 5 steps + save (safetensors) + load into a
// fresh optimizer + 5 steps give bit-identical parameters; the names are the documented ones;
// loading a state that does not fit is an error listing what is wrong.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "nn/module.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tensor/ops/copy.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::optim;

namespace {

// A deterministic, parameter-dependent gradient: g = sin(3 p) + 0.1 * index (so moments vary).
void set_grads(const std::vector<Tensor>& params) {
  for (Tensor p : params) {  // a handle copy: set_grad changes the shared TensorImpl
    std::vector<double> v = to_vector<double>(p);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(3 * v[i]) + 0.1 * static_cast<double>(i);
    Tensor g = from_vector(v, p.shape());
    p.set_grad(p.dtype() == DType::Float32 ? ops::to(g, DType::Float32) : g);
  }
}

std::vector<Tensor> fresh_params() {
  Tensor a = from_vector(std::vector<float>{0.5f, -1.25f, 2.0f, 0.75f, -0.1f, 1.5f}, {2, 3});
  Tensor b = from_vector(std::vector<float>{0.3f, -0.7f}, {2});
  Tensor c = from_vector(std::vector<float>{1.0f}, {1});  // never gets a gradient
  return {a.requires_grad_(), b.requires_grad_(), c.requires_grad_()};
}

using Factory = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)>;

std::vector<std::pair<std::string, Factory>> factories() {
  std::vector<std::pair<std::string, Factory>> out;
  out.emplace_back("sgd_nesterov", [](const std::vector<Tensor>& p) {
    SGDOptions o;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.nesterov = true;
    o.weight_decay = 1e-3;
    return std::make_unique<SGD>(p, o);
  });
  out.emplace_back("adam_amsgrad", [](const std::vector<Tensor>& p) {
    AdamOptions o;
    o.lr = 0.01;
    o.amsgrad = true;
    o.weight_decay = 1e-2;
    return std::make_unique<Adam>(p, o);
  });
  out.emplace_back("adamw_two_groups", [](const std::vector<Tensor>& p) {
    ParamGroup g0, g1;
    g0.params = {p[0]};
    g1.params = {p[1], p[2]};
    g1.lr = 0.003;
    g1.weight_decay = 0.5;
    return std::make_unique<AdamW>(std::vector<ParamGroup>{g0, g1}, AdamWOptions{});
  });
  return out;
}

void run_steps(Optimizer& opt, const std::vector<Tensor>& params, int n) {
  const std::vector<Tensor> with_grad(params.begin(), params.end() - 1);
  for (int i = 0; i < n; ++i) {
    opt.zero_grad();
    set_grads(with_grad);
    opt.step();
  }
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

TEST(OptimizerState, ResumeThroughSafetensorsIsBitIdentical) {
  for (const auto& [name, make] : factories()) {
    SCOPED_TRACE(name);
    auto straight_params = fresh_params();
    auto straight = make(straight_params);
    run_steps(*straight, straight_params, 10);

    auto first_params = fresh_params();
    auto first = make(first_params);
    run_steps(*first, first_params, 5);
    const std::string path = std::string(OKD_BINARY_DIR) + "/optim_state_" + name + ".safetensors";
    nn::save_safetensors(path, first->state_dict());
    // The "resumed process": parameters restored from the model checkpoint, a fresh optimizer.
    std::vector<Tensor> resumed_params = fresh_params();
    for (size_t i = 0; i < resumed_params.size(); ++i)
      ops::copy_(resumed_params[i], first_params[i]);
    auto resumed = make(resumed_params);
    resumed->load_state_dict(nn::load_safetensors(path));
    std::remove(path.c_str());
    EXPECT_EQ(resumed->steps_taken(), 5);
    run_steps(*resumed, resumed_params, 5);

    for (size_t i = 0; i < straight_params.size(); ++i)
      EXPECT_TRUE(bit_identical(resumed_params[i], straight_params[i])) << "parameter " << i;
    // And the states themselves agree.
    auto s1 = straight->state_dict(), s2 = resumed->state_dict();
    ASSERT_EQ(s1.size(), s2.size());
    for (size_t i = 0; i < s1.size(); ++i) {
      EXPECT_EQ(s1[i].first, s2[i].first);
      EXPECT_TRUE(bit_identical(s1[i].second, s2[i].second)) << s1[i].first;
    }
    // Without the state, the continuation differs (the test can fail).
    auto naive_params = fresh_params();
    for (size_t i = 0; i < naive_params.size(); ++i) ops::copy_(naive_params[i], first_params[i]);
    auto naive = make(naive_params);
    run_steps(*naive, naive_params, 5);
    EXPECT_FALSE(bit_identical(naive_params[0], straight_params[0]));
  }
}

TEST(OptimizerState, NamesAreTheDocumentedOnes) {
  auto params = fresh_params();
  SGDOptions o;
  o.momentum = 0.9;
  SGD sgd(params, o);
  run_steps(sgd, params, 2);
  std::map<std::string, Tensor> sd;
  for (auto& [k, v] : sgd.state_dict()) sd[k] = v;
  ASSERT_TRUE(sd.count("step"));
  EXPECT_EQ(sd["step"].item(), 2);
  EXPECT_EQ(sd["step"].dtype(), DType::Int64);
  EXPECT_TRUE(sd.count("group0.lr"));
  EXPECT_TRUE(sd.count("group0.weight_decay"));
  EXPECT_EQ(sd["group0.num_params"].item(), 3);
  ASSERT_TRUE(sd.count("group0.param1.momentum_buffer"));
  EXPECT_EQ(sd["group0.param0.momentum_buffer"].shape(), (Shape{2, 3}));
  EXPECT_EQ(sd["group0.param1.step"].item(), 2);
  EXPECT_FALSE(sd.count("group0.param2.momentum_buffer"));  // never had a gradient

  AdamOptions ao;
  ao.amsgrad = true;
  Adam adam(params, ao);
  run_steps(adam, params, 1);
  std::map<std::string, Tensor> asd;
  for (auto& [k, v] : adam.state_dict()) asd[k] = v;
  for (const char* k :
       {"group0.param0.exp_avg", "group0.param0.exp_avg_sq", "group0.param0.max_exp_avg_sq",
        "group0.param1.exp_avg", "group0.param0.step"})
    EXPECT_TRUE(asd.count(k)) << k;
}

TEST(OptimizerState, StateDictIsASnapshot) {
  auto params = fresh_params();
  SGDOptions o;
  o.momentum = 0.9;
  SGD sgd(params, o);
  run_steps(sgd, params, 1);
  auto sd = sgd.state_dict();
  Tensor buf;
  for (auto& [k, v] : sd)
    if (k == "group0.param0.momentum_buffer") buf = v;
  ASSERT_TRUE(buf.defined());
  std::vector<float> before = to_vector<float>(buf);
  run_steps(sgd, params, 1);
  EXPECT_EQ(to_vector<float>(buf), before);
}

TEST(OptimizerState, LoadingAStateThatDoesNotFitFails) {
  auto params = fresh_params();
  Adam adam(params, AdamOptions{});
  run_steps(adam, params, 1);
  auto adam_state = adam.state_dict();
  SGD sgd(params, SGDOptions{});
  try {
    sgd.load_state_dict(adam_state);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp_avg"), std::string::npos) << e.what();
  }
  // A different model: the saved group had 3 parameters.
  auto two = fresh_params();
  two.pop_back();
  Adam smaller(two, AdamOptions{});
  run_steps(smaller, two, 3);
  try {
    smaller.load_state_dict(adam_state);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("had 3 parameters"), std::string::npos) << e.what();
  }
  // A failed load leaves the optimizer as it was.
  EXPECT_EQ(smaller.steps_taken(), 3);
  EXPECT_EQ(smaller.state(0, 0).step, 3);
}
