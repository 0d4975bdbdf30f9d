// MCL-OKD (classic.md §13): the NCE value, the memory update, class-aware negatives (the positive
// is the sample, every negative another class's image, uniform over them, reproducible from the
// generator state), DOT's gradient routing, parameter counts and a few training steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

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

// 60 images of 3 classes of unequal sizes (6, 24, 30), interleaved in dataset order, so that the
// sampler's class-sorted order and its per-class ranges are not the identity.
BuildContext uneven_context() {
  BuildContext ctx = context("resnet20", 3, 60);
  std::vector<int64_t> labels(60);
  for (int64_t i = 0; i < 60; ++i) labels[i] = i % 10 == 0 ? 0 : (i % 5 < 3 ? 2 : 1);
  ctx.train_labels = from_vector<int64_t>(labels, {60});
  return ctx;
}

TEST(ClassicMcl, NegativesAreOtherClassesAndThePositiveIsTheSample) {
  MclMethod m;
  m.options().set("negatives", "64");
  BuildContext ctx = uneven_context();
  m.build(ctx);
  const auto labels = to_vector<int64_t>(ctx.train_labels);
  const std::vector<int64_t> idx{0, 1, 2, 10, 17, 59, 33, 4};
  std::vector<int64_t> y;
  for (int64_t i : idx) y.push_back(labels[i]);
  const int64_t B = 8, K = 64;
  for (int round = 0; round < 3; ++round) {
    Tensor out = m.sample_indices(from_vector<int64_t>(idx), from_vector<int64_t>(y));
    ASSERT_EQ(out.shape(), (Shape{B * (K + 1)}));
    ASSERT_EQ(out.dtype(), DType::Int64);
    const auto v = to_vector<int64_t>(out);
    for (int64_t b = 0; b < B; ++b) {
      EXPECT_EQ(v[b * (K + 1)], idx[b]) << "the positive is the sample itself";
      for (int64_t k = 1; k <= K; ++k) {
        const int64_t j = v[b * (K + 1) + k];
        ASSERT_GE(j, 0);
        ASSERT_LT(j, 60);
        EXPECT_NE(labels[j], y[b]) << "sample " << b << " negative " << k << " is image " << j;
      }
    }
  }
}

// Many draws for one sample of each class: every image of another class is reached, and the
// counts pass a chi-square bound against the uniform distribution over those images. With
// 24,000 draws over M = 30..54 images, chi2 has M - 1 degrees of freedom (mean M - 1, sd
// sqrt(2 (M - 1)) <= 11); the bound M - 1 + 8 sd is far in its tail, while a sampler that is off
// by one position, skips or repeats an image of the class range, or draws from all N images
// (1/10 to 1/2 of the draws wasted on the sample's class) gives a chi2 in the hundreds or more.
TEST(ClassicMcl, NegativesAreUniformOverTheOtherClassesImages) {
  MclMethod m;
  const int64_t K = 24000;
  m.options().set("negatives", std::to_string(K));
  BuildContext ctx = uneven_context();
  m.build(ctx);
  const auto labels = to_vector<int64_t>(ctx.train_labels);
  const std::vector<int64_t> sample{0, 1, 3};  // classes 0, 2, 1
  std::vector<int64_t> y;
  for (int64_t i : sample) y.push_back(labels[i]);
  const auto v =
      to_vector<int64_t>(m.sample_indices(from_vector<int64_t>(sample), from_vector<int64_t>(y)));
  for (size_t b = 0; b < sample.size(); ++b) {
    std::vector<double> hits(60, 0.0);
    for (int64_t k = 1; k <= K; ++k) hits[v[b * (K + 1) + k]] += 1;
    int64_t M = 0;
    for (int64_t j = 0; j < 60; ++j) M += labels[j] != y[b];
    const double expected = static_cast<double>(K) / static_cast<double>(M);
    double chi2 = 0;
    for (int64_t j = 0; j < 60; ++j) {
      if (labels[j] == y[b]) {
        EXPECT_EQ(hits[j], 0.0) << "image " << j << " has the sample's class " << y[b];
        continue;
      }
      EXPECT_GT(hits[j], 0.0) << "image " << j << " of class " << labels[j] << " never drawn";
      chi2 += (hits[j] - expected) * (hits[j] - expected) / expected;
    }
    const double df = static_cast<double>(M - 1);
    EXPECT_LT(chi2, df + 8 * std::sqrt(2 * df)) << "class " << y[b] << ", M = " << M;
  }
}

TEST(ClassicMcl, NegativesFollowTheSeedAndTheSavedGeneratorState) {
  auto built = [](uint64_t seed) {
    auto m = std::make_unique<MclMethod>();
    m->options().set("negatives", "16");
    BuildContext ctx = uneven_context();
    ctx.seed = seed;
    m->build(ctx);
    return m;
  };
  const Tensor idx = from_vector<int64_t>({0, 1, 2, 3}), y = from_vector<int64_t>({0, 2, 2, 1});
  auto a = built(5), b = built(5), c = built(6);
  const auto first = to_vector<int64_t>(a->sample_indices(idx, y));
  EXPECT_EQ(first, to_vector<int64_t>(b->sample_indices(idx, y)));
  EXPECT_NE(first, to_vector<int64_t>(c->sample_indices(idx, y)));
  // The generator moves on (a new draw) and a checkpoint's state replays it.
  const nn::NamedTensors state = a->extra_state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "negative_generator");
  const auto second = to_vector<int64_t>(a->sample_indices(idx, y));
  EXPECT_NE(first, second);
  c->load_extra_state(state);
  EXPECT_EQ(second, to_vector<int64_t>(c->sample_indices(idx, y)));
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
