// The distillation building blocks against the exact values of seeds.md (§2.7, §3.7, §5.7, §6.8)
// and classic.md §1.3, in float64 to 1e-9 relative, plus gradient checks of the composed losses.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/modules.h"
#include "distill/blocks/schedules.h"

namespace okd::distill {
namespace {

Tensor row(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector<double>(v, {1, n});
}
double value(const Tensor& t) { return t.item(); }

#define EXPECT_REL(actual, expected) \
  EXPECT_NEAR((actual), (expected), 1e-9 * std::max(1.0, std::fabs(double(expected))))

KdOptions kd_opts(double T, KdReduction r = KdReduction::kBatchMean, bool detach = true,
                  double eps = 0) {
  KdOptions o;
  o.T = T;
  o.reduction = r;
  o.detach_teacher = detach;
  o.teacher_eps = eps;
  return o;
}

// ---- EKD-FWSNet (seeds.md §2.7) ----

TEST(KdBlocks, EkdT1MeanAllKlAndTeacherGradient) {
  Tensor z_main = row({1, 2, 3}), z_cm1 = row({2, 0, 1}), z_cm2 = row({0, 1, -1});
  Tensor ens = (z_main + z_cm1 + z_cm2) / 3.0;
  const double mean_all =
      value(kd_loss(z_main, ens, kd_opts(3, KdReduction::kMeanAll, /*detach=*/false)));
  const double batchmean = value(kd_loss(z_main, ens, kd_opts(3)));
  EXPECT_REL(mean_all, 0.1100985124);
  EXPECT_REL(60 * mean_all, 6.6059107439);
  EXPECT_REL(batchmean, 0.3302955372);
  EXPECT_REL(batchmean / mean_all, 3.0);  // exactly C

  // Not detached: the classmate logits inside the teacher receive a non-zero gradient, and the
  // tape's gradient equals finite differences.
  auto f = [](const TensorList& in) {
    Tensor ens = (in[0] + in[1] + in[2]) / 3.0;
    return kd_loss(in[0], ens, kd_opts(3, KdReduction::kMeanAll, false));
  };
  TensorList in{row({1, 2, 3}).requires_grad_(), row({2, 0, 1}).requires_grad_(),
                row({0, 1, -1}).requires_grad_()};
  GradcheckResult g = gradcheck(f, in);
  EXPECT_TRUE(g.passed) << g.message;
  Tensor loss = f(in);
  backward(loss);
  double grad_norm = 0;
  for (double v : to_vector<double>(in[1].grad())) grad_norm += std::fabs(v);
  EXPECT_GT(grad_norm, 1e-4);
  // Detached: no gradient reaches the teacher's inputs.
  TensorList in2{row({1, 2, 3}).requires_grad_(), row({2, 0, 1}).requires_grad_(),
                 row({0, 1, -1}).requires_grad_()};
  Tensor det = kd_loss(in2[0], (in2[0] + in2[1] + in2[2]) / 3.0, kd_opts(3));
  backward(det);
  EXPECT_FALSE(in2[1].grad().defined());
}

TEST(KdBlocks, EkdT2AttentionZScore) {
  // channel 0 = [[1, 2], [3, 4]], channel 1 = 0
  Tensor f = from_vector<double>({1, 2, 3, 4, 0, 0, 0, 0}, {1, 2, 2, 2});
  auto a = to_vector<double>(attention_sum_zscore(f));
  const double expected[] = {-1.1618950039, -0.3872983346, 0.3872983346, 1.1618950039};
  ASSERT_EQ(a.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_REL(a[i], expected[i]);
}

TEST(KdBlocks, EkdT3AttentionMse) {
  auto map = [](std::vector<double> m) {
    std::vector<double> v = m;
    v.resize(8, 0.0);  // second channel zero: the channel sum is m
    return attention_sum_zscore(from_vector<double>(v, {1, 2, 2, 2}));
  };
  Tensor a_main = map({1, 2, 3, 4}), a_cm1 = map({4, 3, 2, 1}), a_cm2 = map({1, 1, 1, 5});
  auto c2 = to_vector<double>(a_cm2);
  EXPECT_REL(c2[0], -0.5);
  EXPECT_REL(c2[3], 1.5);
  Tensor d = a_main - (a_main + a_cm1 + a_cm2) / 3.0;
  EXPECT_REL(value(mean(d * d)), 0.4460349987);
}

// ---- FFL (seeds.md §3.7) ----

TEST(KdBlocks, FflT1ThreeKdTermsWithTeacherEps) {
  Tensor z1 = row({1, 2, 3}), z2 = row({3, 2, 1}), zf = row({0.5, 0.5, 2.0}), ens = row({2, 2, 2});
  KdOptions o = kd_opts(3, KdReduction::kBatchMean, true, 1e-7);
  const double a = value(kd_loss(z1, zf, o)), b = value(kd_loss(z2, zf, o));
  const double c = value(kd_loss(zf, ens, o));
  EXPECT_REL(a, 0.0684179310);
  EXPECT_REL(b, 1.1351827879);
  EXPECT_REL(c, 0.2618831053);
  EXPECT_REL(a + b + c, 1.4654838242);
}

TEST(KdBlocks, SigmoidRampup) {
  // seeds.md §3.7 T2 and classic.md §1.3
  EXPECT_REL(sigmoid_rampup(0, 80), 0.0067379470);
  EXPECT_REL(sigmoid_rampup(1, 80), 0.0076291316);
  EXPECT_REL(sigmoid_rampup(40, 80), 0.2865047969);
  EXPECT_REL(sigmoid_rampup(79, 80), 0.9992190551);
  EXPECT_EQ(sigmoid_rampup(80, 80), 1.0);
  EXPECT_EQ(sigmoid_rampup(200, 80), 1.0);
}

TEST(KdBlocks, FflT4FusionModuleParameterCount) {
  Generator gen(0);
  FusionModule fm(128, 64, 100, gen);
  EXPECT_EQ(fm.num_parameters(), 16228);
  // Shapes: two [2, 64, 8, 8] maps -> G [2, 64, 8, 8], logits [2, 100].
  Tensor a = randn({2, 64, 8, 8}, gen), b = randn({2, 64, 8, 8}, gen);
  auto out = fm.forward({a, b});
  EXPECT_EQ(out.fused_map.shape(), (Shape{2, 64, 8, 8}));
  EXPECT_EQ(out.logits.shape(), (Shape{2, 100}));
}

// ---- FFSD (seeds.md §5.7) ----

TEST(KdBlocks, FfsdT1DmlAtTemperature2) {
  Tensor z1 = row({1, 2, 3}), z2 = row({2, 2, 0});
  EXPECT_REL(value(kd_loss(z1, z2, kd_opts(2))), 1.1855626419);
  EXPECT_REL(value(kd_loss(z2, z1, kd_opts(2))), 1.3931354335);
}

TEST(KdBlocks, FfsdT2AttentionMeanSquare) {
  Tensor f = from_vector<double>({1, 2, 3, 4, 3, 2, 1, 0}, {1, 2, 2, 2});
  Tensor a = attention_mean_square(f);
  EXPECT_EQ(a.shape(), (Shape{1, 1, 2, 2}));
  auto v = to_vector<double>(a);
  const double expected[] = {5, 4, 5, 8};
  for (int i = 0; i < 4; ++i) EXPECT_REL(v[i], expected[i]);
}

TEST(KdBlocks, FfsdT3AttentionLoss) {
  EXPECT_REL(value(normalized_mse(row({1, 2, 3, 4}), row({4, 3, 2, 1}))), 0.1666666667);
}

TEST(KdBlocks, FfsdT4DiversityTargetAndLoss) {
  Tensor y = row({1, 2, 3, 4, 5, 6}), x = row({6, 5, 4, 3, 2, 1});
  auto t = to_vector<double>(diversity_target(y));
  const double expected[] = {0.1048284837, 4.7696960071, 9.2249065632,
                             9.1200780795, 9.0152495958, 8.9104211121};
  ASSERT_EQ(t.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_REL(t[i], expected[i]);
  EXPECT_REL(value(diversity_loss(x, y)), 54.7422161172);
  // The target carries no gradient; x does.
  auto f = [](const TensorList& in) { return diversity_loss(in[0], in[1]); };
  TensorList in{row({6, 5, 4, 3, 2, 1}).requires_grad_(), row({1, 2, 3, 4, 5, 6})};
  GradcheckResult g = gradcheck(f, in);
  EXPECT_TRUE(g.passed) << g.message;
}

TEST(KdBlocks, FfsdShiftedInput) {
  // DT(Y) = Y + (y' - l2n(a(Y))) * ||a(Y)|| / c on every channel: with a(Y) computed by hand.
  Generator gen(3);
  Tensor Y = to(randn({2, 4, 3, 3}, gen), DType::Float64);
  Tensor out = diversity_shifted_input(Y);
  Tensor a = reshape(attention_mean_square(Y), {2, 9});
  Tensor n = norm(a, 2.0, {1}, true);
  Tensor shift = (diversity_target(a) - a / n) * n / 4.0;
  Tensor expected = Y + reshape(shift, {2, 1, 3, 3});
  auto o = to_vector<double>(out), e = to_vector<double>(expected);
  for (size_t i = 0; i < o.size(); ++i) EXPECT_REL(o[i], e[i]);
}

TEST(KdBlocks, FfsdT5Warmup) {
  const double expected[] = {0.0407622040, 0.1652988882, 0.4493289641, 0.8187307531, 1.0, 1.0};
  for (int e = 1; e <= 6; ++e) EXPECT_REL(ffsd_warmup(e), expected[e - 1]);
}

TEST(KdBlocks, FfsdT6DecoderShapes) {
  Generator gen(0);
  SelfDistillDecoder dec(64, 2, gen);
  auto outs = dec.forward(randn({2, 64, 8, 8}, gen));
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0].shape(), (Shape{2, 16, 32, 32}));  // lines up with stage 1
  EXPECT_EQ(outs[1].shape(), (Shape{2, 32, 16, 16}));  // lines up with stage 2
}

TEST(KdBlocks, AttentionLossGradcheck) {
  auto f = [](const TensorList& in) {
    return normalized_mse(attention_mean_square(in[0]), attention_mean_square(in[1]));
  };
  Generator gen(5);
  TensorList in{to(randn({2, 3, 2, 2}, gen), DType::Float64).requires_grad_(),
                to(randn({2, 3, 2, 2}, gen), DType::Float64).requires_grad_()};
  GradcheckResult g = gradcheck(f, in);
  EXPECT_TRUE(g.passed) << g.message;
  auto z = [](const TensorList& in) { return attention_sum_zscore(in[0]); };
  TensorList zin{to(randn({2, 3, 2, 3}, gen), DType::Float64).requires_grad_()};
  GradcheckResult gz = gradcheck(z, zin);
  EXPECT_TRUE(gz.passed) << gz.message;
}

// ---- DKEL (seeds.md §6.8) ----

TEST(KdBlocks, DkelT1PeerEnsembleAndMeanTeachers) {
  Tensor z1 = row({1, 0, 0}), m2 = row({0, 1, 0}), m3 = row({0, 0, 1}), zen = row({1, 1, 1});
  const double pe = value(kd_loss(z1, zen, kd_opts(3)));
  const double pm_ind =
      0.5 * (value(kd_loss(z1, m2, kd_opts(3))) + value(kd_loss(z1, m3, kd_opts(3))));
  const double pm_ens = value(kd_loss(z1, (m2 + m3) / 2.0, kd_opts(3)));
  EXPECT_REL(pe, 0.1148466174);
  EXPECT_REL(pm_ind, 0.3495208306);
  EXPECT_REL(pm_ens, 0.2494013938);
  const double we = dkel_decay_weight(1, 0.5, 0.01);
  EXPECT_REL(we, 0.6065306597);
  EXPECT_REL(we * pm_ens + (1 - we) * pm_ind, 0.2887953225);
}

TEST(KdBlocks, DkelT2DecayWeight) {
  EXPECT_EQ(dkel_decay_weight(0, 0.5, 0.01), 1.0);
  EXPECT_REL(dkel_decay_weight(2, 0.5, 0.01), 0.3678794412);
  EXPECT_REL(dkel_decay_weight(9, 0.5, 0.01), 0.0111089965);
  EXPECT_EQ(dkel_decay_weight(10, 0.5, 0.01), 0.0);
}

TEST(KdBlocks, DkelT3RampupVariants) {
  EXPECT_REL(dkel_rampup_intended(0, 1), 0.0067379470);
  EXPECT_REL(dkel_rampup_intended(1, 1), 0.0076291316);
  EXPECT_REL(dkel_rampup_intended(2, 1), 0.0086247009);
  EXPECT_REL(dkel_rampup_intended(3, 1), 0.0097349649);
  EXPECT_REL(dkel_rampup_intended(40, 1), 0.2865047969);
  EXPECT_EQ(dkel_rampup_intended(80, 1), 1.0);
  EXPECT_EQ(dkel_rampup_intended(81, 1), 1.0);
  EXPECT_REL(dkel_rampup_reference(0, 1), 0.0067379470);
  EXPECT_EQ(dkel_rampup_reference(1, 1), 1.0);
  EXPECT_REL(dkel_rampup_reference(2, 1), 0.0067379470);
  EXPECT_NEAR(dkel_rampup_reference(3, 1), 2.06e-9, 0.01e-9);
  EXPECT_LT(dkel_rampup_reference(40, 1), 1e-300);
  EXPECT_LT(dkel_rampup_reference(80, 1), 1e-300);
  EXPECT_EQ(dkel_rampup_reference(81, 1), 1.0);
  EXPECT_REL(dkel_rampup_reference(0, 0.1), 0.0006737947);
  EXPECT_NEAR(dkel_rampup_reference(1, 0.1) / 1.3e-177, 1.0, 0.05);
  EXPECT_EQ(dkel_rampup_reference(2, 0.1), 0.0);
  EXPECT_REL(dkel_rampup_reference(81, 0.1), 0.1);
}

}  // namespace
}  // namespace okd::distill
