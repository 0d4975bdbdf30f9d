// The classic methods (classic.md §3-§14): each section's unit values in float64 (against a
// closed-form double computation to 1e-9 relative, and against the spec's printed digits), the
// stop-gradient routing the spec states, and a short training smoke test of every classic method
// on an easy set (the offline ones with a teacher trained here first).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/adversarial.h"
#include "distill/methods/cl_ilr.h"
#include "distill/methods/classic_common.h"
#include "distill/methods/common.h"
#include "distill/methods/dml.h"
#include "distill/methods/kd.h"
#include "distill/methods/kdcl.h"
#include "distill/methods/multi_exit.h"
#include "distill/methods/okddip.h"
#include "distill/methods/one.h"
#include "distill/methods/pcl.h"
#include "distill_test_util.h"
#include "nn/functional.h"
#include "optim/sgd.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/reduce.h"

namespace okd::distill {
namespace {
using namespace okd::distill::test;

// ---- helpers ---------------------------------------------------------------------------------

#define EXPECT_REL(actual, expected) \
  EXPECT_NEAR((actual), (expected), 1e-9 * std::max(1.0, std::fabs(double(expected))))
// The spec prints 6 decimals (7 significant digits for some): half a unit in the last place.
#define EXPECT_SPEC(actual, expected, decimals) \
  EXPECT_NEAR((actual), (expected), 0.5 * std::pow(10.0, -(decimals)) + 1e-15)

Tensor row(std::vector<double> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return from_vector<double>(v, {1, n});
}
std::vector<double> vals(const Tensor& t) { return to_vector<double>(to(t, DType::Float64)); }

std::vector<double> ref_softmax(const std::vector<double>& z, double T = 1) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  std::vector<double> p(z.size());
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) s += (p[i] = std::exp((z[i] - m) / T));
  for (double& v : p) v /= s;
  return p;
}
// T^2 KL_T(softmax(t/T) || softmax(s/T)) for one sample.
double ref_kd(const std::vector<double>& s, const std::vector<double>& t, double T) {
  auto p = ref_softmax(t, T), q = ref_softmax(s, T);
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) kl += p[i] * (std::log(p[i]) - std::log(q[i]));
  return T * T * kl;
}
double ref_ce(const std::vector<double>& z, int y) { return -std::log(ref_softmax(z)[y]); }

std::vector<std::vector<float>> snapshot(const std::vector<Tensor>& params) {
  std::vector<std::vector<float>> v;
  for (const auto& p : params) v.push_back(to_vector<float>(p));
  return v;
}

// ---- KD (§3) ---------------------------------------------------------------------------------

TEST(ClassicKd, SoftTargetsKlAndStudentGradient) {
  const std::vector<double> zt{2, 1, 0};
  auto p = vals(softmax(row(zt), 1, 2.0));
  const double p_spec[] = {0.506480, 0.307196, 0.186324};
  auto p_ref = ref_softmax(zt, 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_REL(p[i], p_ref[i]);
    EXPECT_SPEC(p[i], p_spec[i], 6);
  }
  Tensor zs = row({0, 0, 0}).requires_grad_();
  KdOptions kd;
  kd.T = 2;
  Tensor l = kd_loss(zs, row(zt), kd);
  EXPECT_REL(l.item(), ref_kd({0, 0, 0}, zt, 2));
  EXPECT_SPEC(l.item(), 0.313684, 6);
  EXPECT_SPEC(l.item() / 4, 0.078421, 6);
  backward(l);
  auto g = vals(zs.grad());
  const double g_spec[] = {-0.346294, 0.052275, 0.294019};
  for (int i = 0; i < 3; ++i) {
    EXPECT_REL(g[i], 2.0 * (1.0 / 3 - p_ref[i]));  // T (q - p)
    EXPECT_SPEC(g[i], g_spec[i], 6);
  }
}

TEST(ClassicKd, FullLossAlpha09T4) {
  Tensor y = from_vector<int64_t>({0}, {1});
  const double L = kd_objective(row({1, 0, 0}), row({2, 1, 0}), y, 0.1, 0.9, 4).item();
  const double ce = ref_ce({1, 0, 0}, 0), kl = ref_kd({1, 0, 0}, {2, 1, 0}, 4) / 16;
  EXPECT_SPEC(ce, 0.551445, 6);
  EXPECT_SPEC(kl, 0.006163, 6);
  EXPECT_REL(L, 0.1 * ce + 0.9 * 16 * kl);
  EXPECT_SPEC(L, 0.143892, 6);
}

TEST(ClassicKd, HighTemperatureLimitIsLogitMatching) {
  auto grad_at = [](double T) {
    Tensor zs = row({1, 0, -1}).requires_grad_();
    KdOptions kd;
    kd.T = T;
    backward(kd_loss(zs, row({0.5, 0, -0.5}), kd));
    return vals(zs.grad());
  };
  const double limit[] = {1.0 / 6, 0, -1.0 / 6};
  // max_i |g_i - limit_i| / max_i |limit_i| (the middle element's limit is 0)
  auto max_rel = [&](const std::vector<double>& g) {
    double m = 0;
    for (int i = 0; i < 3; ++i) m = std::max(m, std::fabs(g[i] - limit[i]) / (1.0 / 6));
    return m;
  };
  auto g100 = grad_at(100);
  const double spec100[] = {0.1670785, -0.0008333, -0.1662452};
  for (int i = 0; i < 3; ++i) EXPECT_SPEC(g100[i], spec100[i], 7);
  EXPECT_NEAR(max_rel(grad_at(10)), 0.0498, 5e-5);
  EXPECT_NEAR(max_rel(g100), 0.0050, 5e-5);
  EXPECT_NEAR(max_rel(grad_at(1000)), 0.0005, 5e-5);
}

// ---- AT (§4) ---------------------------------------------------------------------------------

TEST(ClassicAt, AttentionMapsAndLoss) {
  // student: channel 0 = [1, 0], channel 1 = [1, 2]; teacher: both channels [0, 1]
  Tensor fs = from_vector<double>({1, 0, 1, 2}, {1, 2, 1, 2});
  Tensor ft = from_vector<double>({0, 1, 0, 1}, {1, 2, 1, 2});
  auto as = vals(l2_normalize_per_sample(attention_mean_square(fs)));
  EXPECT_REL(as[0], 1 / std::sqrt(5.0));
  EXPECT_REL(as[1], 2 / std::sqrt(5.0));
  EXPECT_SPEC(as[0], 0.447214, 6);
  EXPECT_SPEC(as[1], 0.894427, 6);
  const double mse = (std::pow(1 / std::sqrt(5.0), 2) + std::pow(2 / std::sqrt(5.0) - 1, 2)) / 2;
  const double l = attention_transfer_loss({fs}, {ft}, 1000).item();
  EXPECT_REL(l, 1000 * mse);
  EXPECT_SPEC(l / 1000, 0.105573, 6);
  EXPECT_SPEC(l, 105.5728, 4);
  // A larger student map is pooled to the teacher's size; the teacher gets no gradient.
  Tensor big = from_vector<double>({1, 1, 0, 0, 1, 1, 2, 2}, {1, 2, 1, 4}).requires_grad_();
  Tensor tg = clone(ft).requires_grad_();
  Tensor lp = attention_transfer_loss({adaptive_avg_pool2d(big, 1, 4)}, {tg}, 1000);
  EXPECT_GT(lp.item(), 0);
  Tensor lq = attention_transfer_loss({big}, {tg}, 1000);
  backward(lq);
  EXPECT_GT(abs_sum(big.grad()), 0);
  EXPECT_FALSE(tg.grad().defined());
}

// ---- DML (§5) --------------------------------------------------------------------------------

TEST(ClassicDml, LossesAndGradient) {
  Tensor y = from_vector<int64_t>({0}, {1});
  Tensor z1 = row({2, 0, 0}).requires_grad_(), z2 = row({0, 1, 0}).requires_grad_();
  DmlLossOptions o;
  const double L1 = dml_network_loss({z1, z2}, y, 0, o).item();
  const double L2 = dml_network_loss({z1, z2}, y, 1, o).item();
  EXPECT_REL(L1, ref_ce({2, 0, 0}, 0) + ref_kd({2, 0, 0}, {0, 1, 0}, 1));
  EXPECT_REL(L2, ref_ce({0, 1, 0}, 0) + ref_kd({0, 1, 0}, {2, 0, 0}, 1));
  EXPECT_SPEC(L1, 1.079879, 6);
  EXPECT_SPEC(L2, 2.330810, 6);
  Tensor kl;
  dml_network_loss({z1, z2}, y, 0, o, &kl);
  backward(kl);
  auto g = vals(z1.grad());
  auto p1 = ref_softmax({2, 0, 0}), p2 = ref_softmax({0, 1, 0});
  const double spec[] = {0.575044, -0.469610, -0.105435};
  for (int i = 0; i < 3; ++i) {
    EXPECT_REL(g[i], p1[i] - p2[i]);
    EXPECT_SPEC(g[i], spec[i], 6);
  }
  EXPECT_FALSE(z2.grad().defined());
  // sum vs mean over peers: identical for K = 2, K-1 times larger KL for K = 3.
  Tensor z3 = row({0, 0, 1});
  DmlLossOptions sum_o;
  sum_o.mean_over_peers = false;
  Tensor kl_mean, kl_sum;
  dml_network_loss({z1, z2, z3}, y, 0, o, &kl_mean);
  dml_network_loss({z1, z2, z3}, y, 0, sum_o, &kl_sum);
  EXPECT_REL(kl_sum.item(), 2 * kl_mean.item());
}

TEST(ClassicDml, LossOfOneNetworkNeverReachesThePeer) {
  DmlMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8);
  std::vector<Tensor> z;
  for (auto& n : m.nets()) z.push_back(n->forward(b.images()));
  backward(dml_network_loss(z, b.labels, 0, m.loss_options()));
  EXPECT_GT(grad_sum(m.nets()[0]->parameters()), 0.0);
  EXPECT_EQ(grad_sum(m.nets()[1]->parameters()), 0.0);
  // The two networks start from different initialisations.
  EXPECT_NE(to_vector<float>(m.nets()[0]->parameters()[0]),
            to_vector<float>(m.nets()[1]->parameters()[0]));
}

// Sequential: net 1's step equals the simultaneous one (same L_1), net 2 learns from net 1's
// updated prediction (so it differs), and the recomputation leaves net 1's BN statistics alone.
TEST(ClassicDml, SequentialUpdateUsesTheUpdatedPeer) {
  std::vector<std::vector<std::vector<float>>> after;
  for (const char* order : {"simultaneous", "sequential"}) {
    DmlMethod m;
    m.options().set("update", order);
    m.build(tiny_context());
    m.set_training(true);
    std::vector<Tensor> all;
    for (auto& n : m.nets())
      for (auto& p : n->parameters()) all.push_back(p);
    optim::SGDOptions so;
    so.lr = 0.1;
    so.momentum = 0.9;
    optim::SGD sgd(all, so);
    StepResult r = m.forward_train(tiny_batch(8, 8), TrainClock{});
    m.update(r, sgd, TrainClock{});
    after.push_back(snapshot(m.nets()[0]->parameters()));
    after.push_back(snapshot(m.nets()[1]->parameters()));
    for (const auto& [n, t] : m.nets()[0]->named_buffers())
      if (n.find("num_batches_tracked") != std::string::npos) {
        EXPECT_EQ(static_cast<int64_t>(t.item()), 1) << order << " " << n;
      }
  }
  EXPECT_EQ(after[0], after[2]);  // net 1: same step
  EXPECT_NE(after[1], after[3]);  // net 2: taught by the updated net 1
}

// ---- ONE (§6) --------------------------------------------------------------------------------

TEST(ClassicOne, GateAndGatedEnsemble) {
  Tensor g = one_gate_weights(row({1, -1, 0.5}));
  auto gv = vals(g);
  auto g_ref = ref_softmax({1, 0, 0.5});
  const double g_spec[] = {0.506480, 0.186324, 0.307196};
  for (int i = 0; i < 3; ++i) {
    EXPECT_REL(gv[i], g_ref[i]);
    EXPECT_SPEC(gv[i], g_spec[i], 6);
  }
  auto ze = vals(gated_ensemble(g, {row({1, 0}), row({0, 1}), row({2, 2})}));
  EXPECT_REL(ze[0], g_ref[0] + 2 * g_ref[2]);
  EXPECT_REL(ze[1], g_ref[1] + 2 * g_ref[2]);
  EXPECT_SPEC(ze[0], 1.120872, 6);
  EXPECT_SPEC(ze[1], 0.800715, 6);
}

TEST(ClassicOne, ParameterCountsResNet32Cifar100) {
  OneMethod m;
  m.build(tiny_context("resnet32", 100));
  EXPECT_EQ(m.num_parameters(), 1193189);
  EXPECT_EQ(m.deployed_num_parameters(), 472756);
}

TEST(ClassicOne, KlTermsGiveNoGradientToTheGate) {
  OneMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8);
  auto out = m.net()->forward(b.images());
  StepResult r = m.loss(out, b.labels, 1.0);
  for (auto& [n, t] : r.terms)
    if (n == "kl") backward(t);
  auto gate = params_with_prefix(*m.net(), "gate_");
  ASSERT_EQ(gate.size(), 4u);  // FC weight, bias, BN weight, bias
  EXPECT_EQ(grad_sum(gate), 0.0);
  EXPECT_GT(grad_sum(params_with_prefix(*m.net(), "net.branch1.")), 0.0);
  // CE(z_e) does train the gate.
  clear_grads(m.net()->parameters());
  auto out2 = m.net()->forward(b.images());
  backward(nn::functional::cross_entropy(out2.ensemble, b.labels));
  EXPECT_GT(grad_sum(gate), 0.0);
}

// ---- CL-ILR (§7) ------------------------------------------------------------------------------

TEST(ClassicClIlr, RescaleOperator) {
  Tensor x = row({1.5, -2, 0.25}).requires_grad_();
  Tensor y = grad_rescale(x, 4);
  EXPECT_EQ(vals(y), vals(x));  // identity forward, bit for bit
  backward(sum(y));
  for (double g : vals(x.grad())) EXPECT_REL(g, 0.25);
  // f = w x, h1 = a f, h2 = b f, L = h1 + h2: dL/dw = (a + b) x, halved by R_2.
  const double xv = 3, a = 2, b = -0.5;
  for (bool rescale : {false, true}) {
    Tensor w = row({0.7}).requires_grad_();
    Tensor f = w * xv;
    if (rescale) f = grad_rescale(f, 2);
    backward(sum(f * a + f * b));
    EXPECT_REL(vals(w.grad())[0], (a + b) * xv / (rescale ? 2 : 1));
  }
}

TEST(ClassicClIlr, TargetsAreTheOtherHeadsMeanLogits) {
  auto t = clilr_targets({row({1, 0}), row({0, 1}), row({2, 0}), row({0, 0})});
  const double expected[4][2] = {{2.0 / 3, 1.0 / 3}, {1, 0}, {1.0 / 3, 1.0 / 3}, {1, 1.0 / 3}};
  const double spec[4][2] = {{0.666667, 0.333333}, {1, 0}, {0.333333, 0.333333}, {1, 0.333333}};
  for (int h = 0; h < 4; ++h)
    for (int c = 0; c < 2; ++c) {
      EXPECT_REL(vals(t[h])[c], expected[h][c]);
      EXPECT_SPEC(vals(t[h])[c], spec[h][c], 6);
    }
}

TEST(ClassicClIlr, ParameterCountsOfBothLayouts) {
  ClIlrMethod tree;
  tree.build(tiny_context("resnet32", 100));
  EXPECT_EQ(tree.num_parameters(), 1642016);
  EXPECT_EQ(tree.deployed_num_parameters(), 472756);
  ClIlrMethod simple;
  simple.options().set("layout", "simple");
  simple.build(tiny_context("resnet32", 100));
  EXPECT_EQ(simple.num_parameters(), 1553248);
}

// With rescaling the trunk (stem + stage 1, 4 consumers through 2 levels) gets 1/4 and each
// stage-2 copy 1/2 of the unrescaled gradient; the forward is unchanged. Paper targets are
// detached: the KL alone gives head 2 no gradient through head 1's target.
TEST(ClassicClIlr, BackpropRescalingAndDetachedTargets) {
  ClIlrMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8);
  auto trunk = params_with_prefix(*m.net(), "base.layer1.");
  auto mid = params_with_prefix(*m.net(), "mid1.");
  std::vector<double> g_trunk, g_mid, loss;
  for (bool rescale : {false, true}) {
    clear_grads(m.net()->parameters());
    m.net()->set_rescale(rescale);
    BufferSnapshot bn(*m.net());
    auto z = m.net()->forward(b.images());
    bn.restore();
    Tensor l = m.loss(z, b.labels, 0).loss;
    loss.push_back(l.item());
    backward(l);
    g_trunk.push_back(grad_sum(trunk));
    g_mid.push_back(grad_sum(mid));
  }
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_NEAR(g_trunk[1] / g_trunk[0], 0.25, 1e-5);
  EXPECT_NEAR(g_mid[1] / g_mid[0], 0.5, 1e-5);
  // KL of head 1 alone: its own path gets gradient, head 2's classifier none (paper, detached).
  clear_grads(m.net()->parameters());
  auto z = m.net()->forward(b.images());
  KdOptions kd;
  kd.T = 2;
  backward(kd_loss(z[0], clilr_targets(z)[0], kd));
  EXPECT_GT(grad_sum(params_with_prefix(*m.net(), "base.fc.")), 0.0);
  EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "head1.")), 0.0);
  // The OKDDip variant does not detach: the same KL reaches the other heads.
  ClIlrMethod o;
  o.options().set("variant", "okddip");
  o.build(tiny_context());
  o.set_training(true);
  EXPECT_EQ(o.layout(), "simple");
  EXPECT_EQ(o.temperature(), 3.0);
  auto zo = o.net()->forward(b.images());
  StepResult r = o.loss(zo, b.labels, 100);
  for (auto& [n, t] : r.terms)
    if (n == "kl") backward(t);
  EXPECT_GT(grad_sum(params_with_prefix(*o.net(), "head1.")), 0.0);
}

// ---- OKDDip (§8) -----------------------------------------------------------------------------

TEST(ClassicOkddip, AttentionRowsAndTargets) {
  Tensor q = from_vector<double>({1, 0, 0, 1, 1, 1}, {1, 3, 2});
  Tensor k = from_vector<double>({1, 0, 0, 1, 0, 0}, {1, 3, 2});
  Tensor z = from_vector<double>({1, 0, 0, 1, 3, 3}, {1, 3, 2});
  Tensor a;
  auto t = vals(okddip_targets(q, k, z, &a));
  auto av = vals(a);
  // closed form: row i = softmax_j(q_i . k_j)
  const std::vector<std::vector<double>> energies{{1, 0, 0}, {0, 1, 0}, {1, 1, 0}};
  const double a_spec[3][3] = {{0.576117, 0.211942, 0.211942},
                               {0.211942, 0.576117, 0.211942},
                               {0.422319, 0.422319, 0.155362}};
  const double zz[3][2] = {{1, 0}, {0, 1}, {3, 3}};
  const double t_spec[3][2] = {{1.211942, 0.847766}, {0.847766, 1.211942}, {0.888406, 0.888406}};
  for (int i = 0; i < 3; ++i) {
    auto r = ref_softmax(energies[i]);
    for (int j = 0; j < 3; ++j) {
      EXPECT_REL(av[i * 3 + j], r[j]);
      EXPECT_SPEC(av[i * 3 + j], a_spec[i][j], 6);
    }
    for (int c = 0; c < 2; ++c) {
      double ref = 0;
      for (int j = 0; j < 3; ++j) ref += r[j] * zz[j][c];
      EXPECT_REL(t[i * 2 + c], ref);
      EXPECT_SPEC(t[i * 2 + c], t_spec[i][c], 6);
    }
  }
  // W_q = W_k = 0: every target is the peer mean.
  Tensor zero = zeros({1, 3, 2}, DType::Float64);
  auto tm = vals(okddip_targets(zero, zero, z, nullptr));
  for (int i = 0; i < 3; ++i) {
    EXPECT_REL(tm[i * 2 + 0], 4.0 / 3);
    EXPECT_REL(tm[i * 2 + 1], 4.0 / 3);
  }
}

TEST(ClassicOkddip, FirstLevelKlTrainsTheProjectionsUnlessDetached) {
  for (bool detach : {false, true}) {
    OkddipMethod m;
    m.options().set("detach_targets", detach ? "true" : "false");
    m.build(tiny_context());
    m.set_training(true);
    Batch b = tiny_batch(4, 8);
    StepResult r = m.loss(m.net()->forward(b.images()), b.labels, 1.0);
    for (auto& [n, t] : r.terms)
      if (n == "kl_peers") backward(t);
    const double gq = abs_sum(m.net()->query()->weight.grad());
    const double gk = abs_sum(m.net()->key()->weight.grad());
    if (detach) {
      EXPECT_EQ(gq, 0.0);
      EXPECT_EQ(gk, 0.0);
    } else {
      EXPECT_GT(gq, 0.0);
      EXPECT_GT(gk, 0.0);
    }
    // The leader is not in the attention: the first-level KL never reaches it.
    EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "net.branch3.")), 0.0);
  }
  // ResNet-32, C100: 3 peers + leader + the two 64 -> 8 projections (classic.md §2.4).
  OkddipMethod big;
  big.build(tiny_context("resnet32", 100));
  EXPECT_EQ(big.num_parameters(), 1554272);
  EXPECT_EQ(big.deployed_num_parameters(), 472756);
}

// ---- KDCL (§9) -------------------------------------------------------------------------------

TEST(ClassicKdcl, MinLogitNaiveAndMean) {
  Tensor y0 = from_vector<int64_t>({0}, {1});
  Tensor za = row({2, 1, 0}), zb = row({1, 3, 0});
  EXPECT_EQ(vals(kdcl_minlogit({za, zb}, y0)), (std::vector<double>{0, -1, -2}));
  EXPECT_SPEC(ref_ce({2, 1, 0}, 0), 0.407606, 6);
  EXPECT_SPEC(ref_ce({1, 3, 0}, 0), 2.169846, 6);
  EXPECT_EQ(vals(kdcl_naive({za, zb}, y0)), vals(za));
  EXPECT_EQ(vals(kdcl_naive({zb, za}, y0)), vals(za));
  KdclMethod m;
  m.options().set("ensemble", "mean");
  EXPECT_EQ(vals(m.ensemble_target({za, zb}, y0)), (std::vector<double>{1.5, 2, 0}));
  Tensor y1 = from_vector<int64_t>({1}, {1});
  EXPECT_EQ(vals(kdcl_minlogit({row({0, 2, 0}), row({1, 0, 3})}, y1)),
            (std::vector<double>{-2, 0, -2}));
  // Naive is per sample: a two-sample batch takes each row from a different student.
  Tensor y01 = from_vector<int64_t>({0, 1}, {2});
  Tensor a2 = from_vector<double>({2, 1, 0, 2, 1, 0}, {2, 3});
  Tensor b2 = from_vector<double>({1, 3, 0, 1, 3, 0}, {2, 3});
  EXPECT_EQ(vals(kdcl_naive({a2, b2}, y01)), (std::vector<double>{2, 1, 0, 1, 3, 0}));
}

TEST(ClassicKdcl, LinearAndGeneralWeights) {
  Tensor y = from_vector<int64_t>({0}, {1});
  auto a10 = kdcl_linear_weights({row({5, 0, 0}), row({0, 0, 0})}, y, 10, 1.0);
  auto a100 = kdcl_linear_weights({row({5, 0, 0}), row({0, 0, 0})}, y, 100, 1.0);
  EXPECT_REL(a10[0] + a10[1], 1.0);
  EXPECT_GT(a10[0], 0.9);
  EXPECT_GT(a100[0], a10[0]);
  EXPECT_GT(a100[0], 0.999);  // -> (1, 0)
  auto w = kdcl_general_weights({1, 0, 0, 4}, 2);
  EXPECT_REL(w[0], 0.8);
  EXPECT_REL(w[1], 0.2);
  auto wu = kdcl_general_weights({1, 1, 1, 1}, 2);  // singular: uniform
  EXPECT_REL(wu[0], 0.5);
}

TEST(ClassicKdcl, StudentsSeeTheirOwnViewAndTheTargetIsDetached) {
  KdclMethod m;
  m.build(tiny_context());
  m.set_training(true);
  EXPECT_EQ(m.num_views(), 2);
  Batch b = tiny_batch(4, 8, 2);
  std::vector<Tensor> z{m.nets()[0]->forward(b.views[0]), m.nets()[1]->forward(b.views[1])};
  Tensor t = m.ensemble_target(z, b.labels);
  EXPECT_FALSE(t.requires_grad());
  KdOptions kd;
  kd.T = 2;
  backward(kd_loss(z[0], t, kd));
  EXPECT_GT(grad_sum(m.nets()[0]->parameters()), 0.0);
  EXPECT_EQ(grad_sum(m.nets()[1]->parameters()), 0.0);
  // The general ensemble's weights come from the previous epoch's batches.
  KdclMethod g;
  g.options().set("ensemble", "general");
  g.build(tiny_context());
  g.set_training(true);
  g.forward_train(b, TrainClock{});
  EXPECT_EQ(g.general_weights(), (std::vector<double>{0.5, 0.5}));
  g.on_epoch_start(TrainClock{1, 2, 0, 1});
  EXPECT_NE(g.general_weights(), (std::vector<double>{0.5, 0.5}));
  EXPECT_REL(g.general_weights()[0] + g.general_weights()[1], 1.0);
}

// ---- PCL (§10) -------------------------------------------------------------------------------

TEST(ClassicPcl, EmaDecayAndRampValues) {
  PclMethod m;
  m.build(tiny_context());
  EXPECT_EQ(m.ema().alpha(0), 0.0);
  EXPECT_REL(m.ema().alpha(1), 0.5);
  EXPECT_REL(m.ema().alpha(2), 2.0 / 3);
  EXPECT_SPEC(m.ema().alpha(2), 0.666667, 6);
  EXPECT_REL(m.ema().alpha(9), 0.9);
  EXPECT_REL(m.ema().alpha(999), 0.999);
  EXPECT_REL(m.ema().alpha(5000), 0.999);
  const double spec[][2] = {{0, 0.006738}, {1, 0.007629}, {40, 0.286505}, {79, 0.999219}};
  for (const auto& [e, w] : spec) {
    EXPECT_REL(sigmoid_rampup(e, 80), std::exp(-5 * std::pow(1 - e / 80, 2)));
    EXPECT_SPEC(sigmoid_rampup(e, 80), w, 6);
  }
  EXPECT_EQ(sigmoid_rampup(80, 80), 1.0);
  EXPECT_EQ(sigmoid_rampup(200, 80), 1.0);
}

TEST(ClassicPcl, FirstEmaUpdateCopiesTheStudentAndTeacherIsFrozen) {
  PclMethod m;
  m.build(tiny_context());
  m.set_training(true);
  for (const auto& p : m.ema_model()->parameters()) EXPECT_FALSE(p.requires_grad());
  ASSERT_EQ(m.param_groups().size(), 1u);
  EXPECT_EQ(m.param_groups()[0].params.size(), m.student()->parameters().size());
  StepResult r = m.forward_train(tiny_batch(4, 8, 3), TrainClock{});
  auto sp = m.student()->parameters();
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  optim::SGD sgd(sp, so);
  m.update(r, sgd, TrainClock{});
  m.after_update(TrainClock{});
  auto ep = m.ema_model()->parameters();
  ASSERT_EQ(ep.size(), sp.size());
  for (size_t i = 0; i < sp.size(); ++i)
    EXPECT_EQ(to_vector<float>(ep[i]), to_vector<float>(sp[i]));
  // Peer FCs are initialised independently (unlike dkel's reference quirk).
  auto net = m.student()->net();
  EXPECT_NE(to_vector<float>(net->classifier(0)->named_parameters()[0].second),
            to_vector<float>(net->classifier(1)->named_parameters()[0].second));
}

TEST(ClassicPcl, AveragedEmaBuffersFollowTheStudent) {
  PclMethod m;
  m.options().set("ema_buffers", "average");
  m.build(tiny_context());
  m.set_training(true);
  StepResult r = m.forward_train(tiny_batch(4, 8, 3), TrainClock{});
  optim::SGD sgd(m.student()->parameters(), optim::SGDOptions{});
  m.update(r, sgd, TrainClock{});
  {
    // Make the EMA model's own statistics differ: only the averaging can bring them back.
    NoGradGuard ng;
    for (auto& [n, b] : m.ema_model()->named_buffers())
      if (b.dtype() == DType::Float32) ops::copy_(b, b * 0.0 + 100.0);
  }
  m.after_update(TrainClock{});  // a_0 = 0: the EMA buffers become the student's
  auto s = m.student()->named_buffers(), e = m.ema_model()->named_buffers();
  ASSERT_EQ(s.size(), e.size());
  for (size_t i = 0; i < s.size(); ++i)
    EXPECT_EQ(vals(e[i].second), vals(s[i].second)) << s[i].first;
}

TEST(ClassicPcl, EnsembleHeadLearnsOnlyFromItsOwnCe) {
  PclMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8, 3);
  auto head = params_with_prefix(*m.student(), "ensemble_fc.");
  ASSERT_EQ(head.size(), 2u);
  auto live = m.student()->forward(b.views);
  StepResult r = m.loss(live, {live.peers[0], live.peers[1], live.peers[2]}, b.labels, 1.0);
  for (auto& [n, t] : r.terms)
    if (n == "kl_ensemble") backward(t);
  EXPECT_EQ(grad_sum(head), 0.0);
  EXPECT_GT(grad_sum(params_with_prefix(*m.student(), "net.branch1.")), 0.0);
  clear_grads(m.student()->parameters());
  auto live2 = m.student()->forward(b.views);
  backward(nn::functional::cross_entropy(live2.ensemble, b.labels));
  EXPECT_GT(grad_sum(head), 0.0);
  // peer 2's stage-3 weights
  EXPECT_GT(grad_sum(params_with_prefix(*m.student(), "net.branch1.layer3.")), 0.0);
  // The EMA teachers' logits carry no gradient.
  NoGradGuard ng;
  EXPECT_FALSE(m.ema_model()->forward(b.views, false).peers[0].requires_grad());
}

// ---- BYOT / EED / Phuong (§14) ---------------------------------------------------------------

TEST(ClassicByot, ExitParameterCountsResNet32Cifar100) {
  ByotMethod m;
  BuildContext ctx = tiny_context("resnet32", 100);
  ctx.image_size = 32;
  m.build(ctx);
  EXPECT_EQ(m.net()->num_exits(), 3);
  EXPECT_EQ(params_with_prefix(*m.net(), "exit1.").size(), 14u);
  int64_t e1 = 0, e2 = 0;
  for (const auto& p : params_with_prefix(*m.net(), "exit1.")) e1 += p.numel();
  for (const auto& p : params_with_prefix(*m.net(), "exit2.")) e2 += p.numel();
  EXPECT_EQ(e1, 12164);
  EXPECT_EQ(e2, 9348);
  EXPECT_EQ(m.deployed_num_parameters(), 472756);
  EXPECT_EQ(m.num_parameters(), 472756 + 12164 + 9348);
}

TEST(ClassicByot, IdenticalExitsLeaveOnlyCeAndTeacherGetsNoKdGradient) {
  ByotMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8);
  // With z_i = z_S and f_i = f_S every KD and hint term is zero.
  auto o = m.net()->forward(b.images());
  MultiExitNet::Output same;
  for (size_t i = 0; i < o.logits.size(); ++i) {
    same.logits.push_back(o.logits.back());
    same.features.push_back(o.features.back());
  }
  StepResult r = m.loss(same, b.labels);
  double ce = 0;
  for (auto& [n, t] : r.terms) {
    if (n == "kd" || n == "hint") {
      EXPECT_NEAR(t.item(), 0.0, 1e-6) << n;
    }
    if (n.rfind("ce_exit", 0) == 0) ce += t.item();
  }
  EXPECT_NEAR(r.loss.item(), 0.7 * ce, 1e-5);
  // KD + hint from the real exits: no gradient into stage 3 or the final classifier.
  clear_grads(m.net()->parameters());
  StepResult r2 = m.loss(m.net()->forward(b.images()), b.labels);
  Tensor kd_hint;
  for (auto& [n, t] : r2.terms)
    if (n == "kd" || n == "hint") kd_hint = kd_hint.defined() ? kd_hint + t : t;
  backward(kd_hint);
  EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "base.layer3.")), 0.0);
  EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "base.fc.")), 0.0);
  EXPECT_GT(grad_sum(params_with_prefix(*m.net(), "exit1.")), 0.0);
  EXPECT_GT(grad_sum(params_with_prefix(*m.net(), "base.layer1.")), 0.0);
}

TEST(ClassicEed, MaskedFeatureMseAndDetachedEnsemble) {
  Tensor f = row({1, -1, 0}).requires_grad_();
  const double l = eed_masked_feature_mse(f, row({0, -2, 0.5})).item();
  EXPECT_REL(l, 1.25 / 3);
  EXPECT_SPEC(l, 0.416667, 6);
  EedMethod m;
  m.build(tiny_context());
  m.set_training(true);
  Batch b = tiny_batch(4, 8);
  auto o = m.net()->forward(b.images());
  // The teachers are detached: exit 1's distillation terms never reach exit 2.
  Tensor zbar = detach(mean_of(o.logits)), fbar = detach(mean_of(o.features));
  backward(nn::functional::mse_loss(o.logits[0], zbar) +
           eed_masked_feature_mse(o.features[0], fbar));
  EXPECT_GT(grad_sum(params_with_prefix(*m.net(), "exit1.")), 0.0);
  EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "exit2.")), 0.0);
  EXPECT_EQ(grad_sum(params_with_prefix(*m.net(), "base.fc.")), 0.0);
}

TEST(ClassicPhuong, TemperatureAnnealingStopsAt27Updates) {
  Tensor teacher = row({4, 0, 0, 0});
  double T = 1;
  int updates = 0;
  for (int i = 0; i < 100; ++i) {
    const double next = phuong_anneal(T, teacher);
    if (next == T) break;
    T = next;
    ++updates;
  }
  EXPECT_EQ(updates, 27);
  EXPECT_REL(T, std::pow(1.05, 27));
  EXPECT_SPEC(T, 3.733456, 6);
  const double pmax = ref_softmax({4, 0, 0, 0}, T)[0];
  EXPECT_SPEC(pmax, 0.493196, 6);
  EXPECT_LT(pmax, 0.5);
  // The method anneals after each step and keeps T in its state.
  PhuongMethod m;
  m.build(tiny_context());
  EXPECT_EQ(m.temperature(), 1.0);
  MultiExitNet::Output o;
  Tensor z1 = row({0, 1, 0, 0}).requires_grad_();
  o.logits = {z1, row({4, 0, 0, 0})};
  Tensor y = from_vector<int64_t>({0}, {1});
  StepResult r = m.loss(o, y);
  // s = 10/2, C = 0.5, T = 1: 5 [0.5 (CE_1 + CE_2) + 0.5 H(softmax(z_2), softmax(z_1))]
  auto p = ref_softmax({4, 0, 0, 0}), q = ref_softmax({0, 1, 0, 0});
  double h = 0;
  for (int c = 0; c < 4; ++c) h -= p[c] * std::log(q[c]);
  EXPECT_REL(r.loss.item(),
             5 * (0.5 * (ref_ce({0, 1, 0, 0}, 0) + ref_ce({4, 0, 0, 0}, 0)) + 0.5 * h));
  m.after_update(TrainClock{});
  EXPECT_REL(m.temperature(), 1.05);
  PhuongMethod restored;
  restored.build(tiny_context());
  restored.load_extra_state(m.extra_state());
  EXPECT_REL(restored.temperature(), 1.05);
}

// ---- AFD / AMLN (§11, §12) -------------------------------------------------------------------

TEST(ClassicAfd, LsganTerms) {
  Tensor real = from_vector<double>({0.8}, {1, 1}), fake = from_vector<double>({0.3}, {1, 1});
  EXPECT_REL(lsgan_discriminator_loss(real, fake).item(), 0.04 + 0.09);
  EXPECT_REL(lsgan_discriminator_loss(real, fake).item(), 0.13);
  EXPECT_REL(lsgan_generator_loss(fake).item(), 0.49);
  // LeakyReLU(0.2)
  EXPECT_EQ(vals(leaky_relu(row({2, -1, 0}), 0.2)), (std::vector<double>{2, -0.2, 0}));
}

// Step 2 (generators) moves the networks but not the discriminators; step 3 (discriminators)
// moves the discriminators but not the networks.
void check_step_isolation(AdversarialMutualMethod& m) {
  m.build(tiny_context());
  m.set_training(true);
  auto nets = m.param_groups()[0].params;
  auto disc = m.discriminators()->parameters();
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  optim::SGD sgd(nets, so);
  StepResult r = m.forward_train(tiny_batch(4, 8), TrainClock{});
  m.step_logits(r, sgd);
  auto d0 = snapshot(disc), n0 = snapshot(nets);
  Tensor g = m.step_generators(sgd, TrainClock{});
  EXPECT_TRUE(std::isfinite(g.item()));
  EXPECT_EQ(snapshot(disc), d0);
  EXPECT_NE(snapshot(nets), n0);
  auto n1 = snapshot(nets);
  Tensor d = m.step_discriminators(TrainClock{});
  EXPECT_TRUE(std::isfinite(d.item()));
  EXPECT_EQ(snapshot(nets), n1);
  EXPECT_NE(snapshot(disc), d0);
}

TEST(ClassicAfd, UpdateStepsAreIsolated) {
  AfdMethod m;
  check_step_isolation(m);
  EXPECT_EQ(m.peer_of(0), 1u);
  EXPECT_EQ(m.peer_of(1), 0u);
  EXPECT_EQ(m.discriminators()->named_children().size(), 2u);  // one per network
}

TEST(ClassicAmln, AdaptedBlocksHaveTheLastMapsShapeAndStepsAreIsolated) {
  AmlnMethod m;
  check_step_isolation(m);
  auto feats = m.adapted_features(tiny_batch(4, 8).images());
  ASSERT_EQ(feats.size(), 2u);
  ASSERT_EQ(feats[0].size(), 3u);  // a discriminator per stage
  for (const auto& f : feats[0]) EXPECT_EQ(f.shape(), feats[0][2].shape());
  EXPECT_EQ(m.discriminators()->named_children().size(), 6u);
  EXPECT_NE(m.variant_summary().find("APPROXIMATION"), std::string::npos);
  EXPECT_NE(m.description().find("APPROXIMATION"), std::string::npos);
}

// ---- every classic method: a few steps on a small, easy set ---------------------------------

// 16 images of 4 classes, each class a different constant colour plus noise (as test_methods).
Batch easy_batch(int views) {
  Generator gen(11);
  const int n = 16, s = 8;
  Batch b;
  std::vector<int64_t> y(n);
  for (int i = 0; i < n; ++i) y[i] = i % 4;
  b.labels = from_vector<int64_t>(y, {n});
  for (int v = 0; v < views; ++v) {
    std::vector<float> px(n * 3 * s * s);
    auto nz = to_vector<float>(randn({n * 3 * s * s}, gen));
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c)
        for (int k = 0; k < s * s; ++k) {
          const size_t idx = (static_cast<size_t>(i) * 3 + c) * s * s + k;
          px[idx] = (c == y[i] % 3 ? 1.0f : -1.0f) * (y[i] == 3 ? -1.0f : 1.0f) + 0.3f * nz[idx];
        }
    b.views.push_back(from_vector<float>(px, {n, 3, s, s}));
  }
  return b;
}

// A teacher for kd/at: a baseline resnet20 trained on the easy set, saved as train_cifar saves
// a network (<dir>/net.safetensors with the arch in the metadata). Made once per process.
std::string easy_teacher_dir() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = ::testing::TempDir() + "okd_classic_teacher_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto teacher = make_method("baseline");
  teacher->build(tiny_context("resnet20", 4));
  optim::SGDOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  optim::SGD sgd(teacher->param_groups()[0].params, so);
  Batch b = easy_batch(1);
  teacher->set_training(true);
  for (int step = 0; step < 20; ++step) {
    StepResult r = teacher->forward_train(b, TrainClock{});
    teacher->update(r, sgd, TrainClock{});
  }
  {
    // Settle the BN running statistics: the teacher runs in eval mode.
    NoGradGuard no_grad;
    for (int i = 0; i < 30; ++i) teacher->eval_logits(b.images());
  }
  nn::save_safetensors(dir + "/net.safetensors", teacher->networks()[0].second->state_dict(),
                       {{"arch", "resnet20"}, {"method", "baseline"}, {"network", "net"}});
  return dir;
}

class ClassicEveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(ClassicEveryMethod, TrainsOnAnEasySetWithFiniteTermsAndEveryMember) {
  // "method" or "method:key=value,key=value"; TEACHER stands for the easy-set teacher.
  const std::string param = GetParam();
  const size_t colon = param.find(':');
  auto m = make_method(param.substr(0, colon));
  if (colon != std::string::npos) {
    std::stringstream opts(param.substr(colon + 1));
    for (std::string kv; std::getline(opts, kv, ',');) {
      std::string v = kv.substr(kv.find('=') + 1);
      if (v == "TEACHER") v = easy_teacher_dir();
      m->options().set(kv.substr(0, kv.find('=')), v);
    }
  }
  m->build(tiny_context("resnet20", 4));
  optim::SGDOptions so;
  // Offline KD (kd, at) puts T^2 = 16 on the KL to a fixed teacher: at lr 0.05 its 12 steps
  // oscillate and where step 11 lands depends on float rounding (measured: loss 0.27 at step 5,
  // 6.3 at step 10 with one conv kernel, 0.28 with another). lr 0.02 converges with both.
  so.lr = param.find("teacher=") != std::string::npos ? 0.02 : 0.05;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  optim::SGD sgd(optimizer_groups(*m, so.lr, so.weight_decay), so);
  Batch b = easy_batch(m->num_views());
  double first_loss = 0, last_loss = 0;
  const int steps = 12;
  StepResult last;
  for (int step = 0; step < steps; ++step) {
    m->set_training(true);
    TrainClock clock{100, 300, step, steps};  // past every ramp-up: all terms active
    if (step == 0) m->on_epoch_start(clock);
    StepResult r = m->forward_train(b, clock);
    for (auto& [n, t] : r.terms) ASSERT_TRUE(std::isfinite(t.item())) << n << " step " << step;
    (step == 0 ? first_loss : last_loss) = r.loss.item();
    m->update(r, sgd, clock);
    m->after_update(clock);
    for (auto& [n, t] : r.terms) ASSERT_TRUE(std::isfinite(t.item())) << n << " step " << step;
    last = r;
  }
  auto labels = to_vector<int64_t>(b.labels);
  auto correct_of = [&](const Tensor& z) {
    auto pred = to_vector<int64_t>(ops::argmax(z, 1));
    int c = 0;
    for (size_t i = 0; i < pred.size(); ++i) c += pred[i] == labels[i];
    return c;
  };
  for (auto& [n, z] : last.logits) {
    const int c = correct_of(z);
    std::printf("%s %s: train accuracy %d/16, loss %.3f -> %.3f\n", param.c_str(), n.c_str(), c,
                first_loss, last_loss);
    EXPECT_GE(c, 15) << n;
  }
  m->set_training(false);
  NoGradGuard ng;
  auto logits = m->eval_logits(b.images());
  std::vector<std::string> names;
  for (auto& [n, z] : logits) names.push_back(n);
  EXPECT_EQ(names, m->members());
  EXPECT_NE(std::find(names.begin(), names.end(), m->deployed_member()), names.end());
  EXPECT_LT(last_loss, first_loss);
  EXPECT_FALSE(m->variant_summary().empty());
}

// at: the attention maps of 8x8 images have 16x fewer positions per stage than CIFAR's 32x32, and
// each l2-normalised map's squared differences scale like 1/HW, so beta 1000 there is beta 62.5
// here (with 1000 the student reached 12/16 in 12 steps).
INSTANTIATE_TEST_SUITE_P(Classic, ClassicEveryMethod,
                         ::testing::Values("dml", "kd:teacher=TEACHER",
                                           "at:teacher=TEACHER,beta=62.5", "one", "okddip", "kdcl",
                                           "cl-ilr", "pcl", "byot", "eed", "phuong", "afd",
                                           "amln"));

// The reference recipes (train_cifar --recipe reference) of the methods whose recipe is not the
// common protocol (classic.md §15).
TEST(ClassicRecipes, ReferenceRecipesOfSection15) {
  Recipe kd = KdMethod().reference_recipe("cifar100", "resnet20");
  EXPECT_EQ(kd.epochs.value(), 240);
  EXPECT_EQ(kd.batch_size.value(), 64);
  EXPECT_EQ(kd.lr.value(), 0.05);
  EXPECT_EQ(kd.milestones.value(), (std::vector<double>{150, 180, 210}));
  EXPECT_EQ(AtMethod().reference_recipe("cifar100", "resnet20").epochs.value(), 240);
  Recipe one = OneMethod().reference_recipe("cifar100", "resnet32");
  EXPECT_EQ(one.weight_decay.value(), 1e-4);
  EXPECT_FALSE(one.nesterov.value());
  EXPECT_EQ(one.milestones.value(), (std::vector<double>{151, 225}));
  Recipe byot = ByotMethod().reference_recipe("cifar100", "resnet18_cifar");
  EXPECT_EQ(byot.epochs.value(), 200);
  EXPECT_EQ(byot.milestones.value(), (std::vector<double>{75, 130, 180}));
  EXPECT_EQ(EedMethod().reference_recipe("cifar100", "resnet18_cifar").epochs.value(), 200);
  Recipe ph = PhuongMethod().reference_recipe("cifar100", "resnet32");
  EXPECT_EQ(ph.batch_size.value(), 64);
  EXPECT_EQ(ph.weight_decay.value(), 1e-4);
  EXPECT_TRUE(ph.nesterov.value());
  for (const char* m : {"dml", "okddip", "kdcl", "cl-ilr", "pcl", "afd", "amln"}) {
    Recipe r = make_method(m)->reference_recipe("cifar100", "resnet32");
    EXPECT_EQ(r.epochs.value(), 300) << m;
    EXPECT_EQ(r.milestones.value(), (std::vector<double>{150, 225})) << m;
    EXPECT_TRUE(r.nesterov.value()) << m;
  }
}

TEST(ClassicKd, MissingTeacherIsAClearError) {
  KdMethod m;
  try {
    m.build(tiny_context("resnet20", 4));
    FAIL() << "no error without a teacher";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kd.teacher is required"), std::string::npos)
        << e.what();
  }
  m.options().set("teacher", "/nonexistent/run");
  try {
    m.build(tiny_context("resnet20", 4));
    FAIL() << "no error for a missing checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no teacher checkpoint found"), std::string::npos)
        << e.what();
  }
  // A run directory layout is found, and the teacher is frozen in eval mode.
  const std::string run = easy_teacher_dir() + "_run";
  std::filesystem::create_directories(run + "/checkpoints/best");
  std::filesystem::copy_file(easy_teacher_dir() + "/net.safetensors",
                             run + "/checkpoints/best/net.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  m.options().set("teacher", run);
  m.build(tiny_context("resnet20", 4));
  m.set_training(true);
  EXPECT_FALSE(m.teacher()->is_training());
  for (const auto& p : m.teacher()->parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_EQ(m.networks().size(), 1u);
}

}  // namespace
}  // namespace okd::distill
