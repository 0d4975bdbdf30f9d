// MCL-OKD (classic.md §13): the NCE value, the memory update, class-aware negatives, DOT's
// gradient routing, parameter counts and a few training steps.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "distill/methods/mcl.h"
#include "distill_test_util.h"
#include "optim/sgd.h"
#include "tensor/ops/reduce.h"

namespace okd::distill {
namespace {

BuildContext context(const std::string& arch, int64_t classes, int64_t n_train) {
  BuildContext ctx;
  ctx.arch = arch;
  ctx.num_classes = classes;
  ctx.seed = 5;
  std::vector<int64_t> labels(n_train);
  for (int64_t i = 0; i < n_train; ++i) labels[i] = i % classes;
  ctx.train_labels = from_vector<int64_t>(labels, {n_train});
  return ctx;
}

Batch batch_of(int n, int size, int classes, uint64_t seed) {
  Generator gen(seed);
  Batch b;
  b.views.push_back(randn({n, 3, size, size}, gen));
  std::vector<int64_t> y(n), idx(n);
  for (int i = 0; i < n; ++i) {
    idx[i] = 3 * i + 1;
    y[i] = idx[i] % classes;  // the label the context's train_labels give this index
  }
  b.labels = from_vector<int64_t>(y, {n});
  b.indices = from_vector<int64_t>(idx, {n});
  return b;
}

double grad_abs_sum(const nn::Module& m, const std::string& prefix) {
  return test::grad_sum(test::params_with_prefix(m, prefix));
}

TEST(ClassicMcl, NceValueOfTheSpec) {
  // One sample, K = 2, N = 4, scores [0.5, 0.1, 0.1]: -(log 0.5 + 2 log(0.5/0.6)) = 1.057791
  Tensor P = from_vector<double>({0.5, 0.1, 0.1}, {1, 3});
  const double expected = -(std::log(0.5) + 2 * std::log(0.5 / 0.6));
  EXPECT_NEAR(mcl_nce_loss(P, 4, 0.0).item(), expected, 1e-12);
  EXPECT_NEAR(mcl_nce_loss(P, 4).item(), 1.057791, 5e-7);
}

TEST(ClassicMcl, MemoryUpdateRenormalises) {
  Tensor bank = from_vector<double>({1, 0, 0.6, 0.8}, {2, 2});
  mcl_memory_update(bank, from_vector<int64_t>({0}, {1}), from_vector<double>({0, 1}, {1, 2}), 0.5);
  auto v = to_vector<double>(bank);
  EXPECT_NEAR(v[0], std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(v[1], std::sqrt(0.5), 1e-12);
  EXPECT_EQ(v[2], 0.6);  // other rows untouched
  EXPECT_EQ(v[3], 0.8);
}

TEST(ClassicMcl, ParameterCountsResNet32Cifar100) {
  MclMethod m;
  m.build(context("resnet32", 100, 200));
  EXPECT_EQ(m.net()->num_parameters(), 1819552);  // classic.md §2.4
  int64_t embed = 0;
  for (const auto& [n, net] : m.networks())
    if (n == "embed") embed = net->num_parameters();
  EXPECT_EQ(embed, 4 * 8320);
  EXPECT_EQ(m.banks().size(), 4u);
  EXPECT_EQ(m.banks()[0].shape(), (Shape{200, 128}));
  EXPECT_EQ(m.deployed_member(), "branch4");
}

TEST(ClassicMcl, DotReachesTheLastBranchOnlyAndBanksUpdateAfterTheScores) {
  MclMethod m;
  m.options().set("negatives", "8");
  m.build(context("resnet20", 4, 64));
  m.set_training(true);
  Batch b = batch_of(4, 8, 4, 2);
  const auto before = to_vector<float>(m.banks()[0]);
  auto out = m.forward(b.images());
  StepResult r = m.loss(out, b, /*update_memory=*/true);
  for (auto& [n, t] : r.terms) ASSERT_TRUE(std::isfinite(t.item())) << n;
  // The banks' rows of the batch changed (after the scores), the others did not.
  const auto after = to_vector<float>(m.banks()[0]);
  auto idx = to_vector<int64_t>(b.indices);
  for (int64_t row = 0; row < 64; ++row) {
    bool in_batch = std::find(idx.begin(), idx.end(), row) != idx.end();
    bool changed = false;
    for (int c = 0; c < 128; ++c) changed |= before[row * 128 + c] != after[row * 128 + c];
    EXPECT_EQ(changed, in_batch) << row;
  }
  Tensor dot;
  for (auto& [n, t] : r.terms)
    if (n == "dot") dot = t;
  backward(dot);
  // Branch 4 is the BranchedNet's branch3; branch 1 is the base backbone's own later stages.
  EXPECT_GT(grad_abs_sum(*m.net(), "branch3."), 0.0);
  EXPECT_EQ(grad_abs_sum(*m.net(), "branch1."), 0.0);
  EXPECT_EQ(grad_abs_sum(*m.net(), "branch2."), 0.0);
  EXPECT_EQ(grad_abs_sum(*m.net(), "base.layer3."), 0.0);
  EXPECT_EQ(grad_abs_sum(*m.net(), "base.fc."), 0.0);
  EXPECT_GT(grad_abs_sum(*m.net(), "base.layer1."), 0.0);  // the shared trunk
}

TEST(ClassicMcl, TrainsOnAFewSteps) {
  MclMethod m;
  m.options().set("negatives", "8");
  m.build(context("resnet20", 4, 64));
  optim::SGDOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  optim::SGD sgd(m.param_groups()[0].params, so);
  Batch b = batch_of(16, 8, 4, 3);
  double first = 0, last = 0;
  for (int step = 0; step < 10; ++step) {
    m.set_training(true);
    StepResult r = m.forward_train(b, TrainClock{});
    (step == 0 ? first : last) = r.loss.item();
    m.update(r, sgd, TrainClock{});
  }
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, first);
}

}  // namespace
}  // namespace okd::distill
