// Multi-exit networks and the BYOT, EED and Phuong & Lampert losses (classic.md §14).
#include "distill/methods/multi_exit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/modules.h"
#include "distill/methods/classic_common.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"

namespace okd::distill {

namespace {

// EED's exit: conv3x3 stride 2 (no bias) -> BN -> ReLU per width, GAP, FC.
class ConvChainExit : public nn::Layer {
 public:
  ConvChainExit(int64_t in, const std::vector<int64_t>& widths, int64_t classes, Generator& gen)
      : nn::Layer("ConvChainExit") {
    convs_ = std::make_shared<nn::Sequential>();
    int64_t c = in;
    for (int64_t w : widths) {
      convs_->push_back(he_conv(c, w, 3, 2, 1, 1, gen));
      convs_->push_back(nn::BatchNorm2d(w));
      convs_->push_back(std::make_shared<nn::ReLU>());
      c = w;
    }
    register_module("convs", convs_);
    fc_ = register_module("fc", std::make_shared<nn::Linear>(c, classes, gen));
  }
  Tensor features(const Tensor& x) {
    return flatten(adaptive_avg_pool2d(convs_->forward(x), 1, 1), 1);
  }
  Tensor classify(const Tensor& f) { return fc_->forward(f); }
  Tensor forward(const Tensor& x) override { return classify(features(x)); }

 private:
  std::shared_ptr<nn::Sequential> convs_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace

// ---- exits and the network -------------------------------------------------------------------

BottleneckExit::BottleneckExit(int64_t in, int64_t cf, int64_t k, int64_t classes, Generator& gen)
    : nn::Layer("BottleneckExit") {
  OKD_CHECK(cf >= 4, "BottleneckExit: final channels ", cf, " < 4");
  const int64_t mid = cf / 4;
  convs_ = std::make_shared<nn::Sequential>();
  convs_->push_back(he_conv(in, mid, 1, 1, 0, 1, gen, /*bias=*/true));
  convs_->push_back(nn::BatchNorm2d(mid));
  convs_->push_back(std::make_shared<nn::ReLU>());
  convs_->push_back(he_conv(mid, mid, k, k, 0, 1, gen, /*bias=*/true));
  convs_->push_back(nn::BatchNorm2d(mid));
  convs_->push_back(std::make_shared<nn::ReLU>());
  convs_->push_back(he_conv(mid, cf, 1, 1, 0, 1, gen, /*bias=*/true));
  convs_->push_back(nn::BatchNorm2d(cf));
  convs_->push_back(std::make_shared<nn::ReLU>());
  register_module("convs", convs_);
  fc_ = register_module("fc", std::make_shared<nn::Linear>(cf, classes, gen));
}

Tensor BottleneckExit::features(const Tensor& x) {
  return flatten(adaptive_avg_pool2d(convs_->forward(x), 1, 1), 1);
}

Tensor BottleneckExit::forward(const Tensor& x) { return fc_->forward(features(x)); }

MultiExitNet::MultiExitNet(nn::BackbonePtr base, const std::string& design, int64_t image_size,
                           int64_t in_channels, Generator& gen)
    : nn::Module("MultiExitNet"), base_(std::move(base)) {
  OKD_CHECK(design == "bottleneck" || design == "conv_chain",
            "exit design must be bottleneck or conv_chain, got '", design, "'");
  register_module("base", base_);
  // The stage outputs' shapes for this image size (eval mode: no BN statistics change).
  std::vector<Shape> shapes;
  {
    NoGradGuard no_grad;
    base_->eval();
    BackboneOutputs o = run_backbone(*base_, zeros({1, in_channels, image_size, image_size}));
    for (const auto& t : o.stage_outputs) shapes.push_back(t.shape());
    base_->train();
  }
  OKD_CHECK(shapes.size() >= 2, "multi-exit: the backbone has fewer than 2 feature stages");
  const int64_t cf = shapes.back()[1], hf = shapes.back()[2];
  const int64_t classes = base_->num_classes();
  for (size_t s = 0; s + 1 < shapes.size(); ++s) {
    const int64_t cs = shapes[s][1], hs = shapes[s][2];
    OKD_CHECK(hs % hf == 0, "multi-exit: stage ", s + 1, " output ", hs, "x", hs,
              " is not a multiple of the final ", hf, "x", hf);
    const int64_t k = hs / hf;
    const std::string name = "exit" + std::to_string(s + 1);
    if (design == "bottleneck") {
      auto e = register_module(name, std::make_shared<BottleneckExit>(cs, cf, k, classes, gen));
      exits_.push_back(e);
      exit_features_.push_back([e](const Tensor& x) { return e->features(x); });
      exit_classify_.push_back([e](const Tensor& f) { return e->classifier()->forward(f); });
    } else {
      std::vector<int64_t> widths;
      int64_t c = cs;
      for (int64_t r = k; r > 1; r /= 2) {
        OKD_CHECK(r % 2 == 0, "multi-exit conv_chain: resolution ratio ", k,
                  " is not a power of two");
        c = std::min(c * 2, cf);
        widths.push_back(c);
      }
      OKD_CHECK(!widths.empty(), "multi-exit conv_chain: stage ", s + 1,
                " already has the final resolution; use --exits bottleneck");
      widths.back() = cf;
      auto e = register_module(name, std::make_shared<ConvChainExit>(cs, widths, classes, gen));
      exits_.push_back(e);
      exit_features_.push_back([e](const Tensor& x) { return e->features(x); });
      exit_classify_.push_back([e](const Tensor& f) { return e->classify(f); });
    }
  }
}

MultiExitNet::Output MultiExitNet::forward(const Tensor& x) {
  BackboneOutputs b = run_backbone(*base_, x);
  Output o;
  for (size_t i = 0; i < exits_.size(); ++i) {
    Tensor f = exit_features_[i](b.stage_outputs[i]);
    o.features.push_back(f);
    o.logits.push_back(exit_classify_[i](f));
  }
  o.features.push_back(b.pooled);
  o.logits.push_back(b.logits);
  return o;
}

// ---- shared method parts ---------------------------------------------------------------------

MultiExitMethod::MultiExitMethod(const std::string& design) {
  options_.declare("exits", design, "exit design: bottleneck (BYOT) | conv_chain (EED)");
}

void MultiExitMethod::build(const BuildContext& ctx) {
  auto base = make_method_backbone(ctx, 0);
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<MultiExitNet>(base, options_.get("exits"), ctx.image_size,
                                        ctx.in_channels, gen);
}

StepResult MultiExitMethod::forward_train(const Batch& batch, const TrainClock&) {
  return loss(net_->forward(batch.images()), batch.labels);
}

std::vector<std::string> MultiExitMethod::members() const {
  std::vector<std::string> v;
  for (int i = 1; i <= net_->num_exits(); ++i) v.push_back("exit" + std::to_string(i));
  v.push_back("ensemble");
  return v;
}

std::string MultiExitMethod::deployed_member() const {
  return "exit" + std::to_string(net_ ? net_->num_exits() : 0);
}

std::vector<std::pair<std::string, Tensor>> MultiExitMethod::eval_logits(const Tensor& images) {
  auto o = net_->forward(images);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t i = 0; i < o.logits.size(); ++i)
    v.emplace_back("exit" + std::to_string(i + 1), o.logits[i]);
  v.emplace_back("ensemble", mean_of(o.logits));
  return v;
}

namespace {
void add_exit_logits(StepResult& r, const MultiExitNet::Output& o) {
  for (size_t i = 0; i < o.logits.size(); ++i)
    r.logits.emplace_back("exit" + std::to_string(i + 1), o.logits[i]);
  r.logits.emplace_back("ensemble", mean_of(o.logits));
}
Tensor accumulate_term(const Tensor& a, const Tensor& b) { return a.defined() ? a + b : b; }
}  // namespace

// ---- BYOT ------------------------------------------------------------------------------------

ByotMethod::ByotMethod() : MultiExitMethod("bottleneck") {
  options_.declare("T", "3", "distillation temperature");
  options_.declare(
      "alpha", "0.3",
      "KD weight; every CE gets 1 - alpha (paper gives none: the authors' later code)");
  options_.declare("lambda", "0.03", "feature hint weight (per-sample squared L2, batch mean)");
  options_.declare("deepest_ce", "one_minus_alpha",
                   "weight of the deepest exit's CE: one_minus_alpha (ICCV form) | one (later "
                   "code)");
}

std::string ByotMethod::description() const {
  return "BYOT (Be Your Own Teacher): bottleneck exits after every stage; the deepest exit "
         "teaches the shallow ones by detached soft targets (T = 3, alpha 0.3) and a feature hint "
         "(lambda 0.03). Deploys the deepest exit.";
}

StepResult ByotMethod::loss(const MultiExitNet::Output& o, const Tensor& y) {
  namespace F = nn::functional;
  const double alpha = options_.get_double("alpha"), lambda = options_.get_double("lambda");
  const std::string& deep = options_.get("deepest_ce");
  OKD_CHECK(deep == "one_minus_alpha" || deep == "one",
            "byot.deepest_ce must be one_minus_alpha or one, got '", deep, "'");
  KdOptions kd;
  kd.T = options_.get_double("T");
  const size_t S = o.logits.size();
  const Tensor f_teacher = detach(o.features.back());
  StepResult r;
  Tensor total, kd_sum, hint_sum;
  for (size_t i = 0; i < S; ++i) {
    Tensor ce = F::cross_entropy(o.logits[i], y);
    const double w = (i + 1 == S && deep == "one") ? 1.0 : 1.0 - alpha;
    total = accumulate_term(total, ce * w);
    r.terms.emplace_back("ce_exit" + std::to_string(i + 1), ce);
    if (i + 1 == S) break;
    Tensor k = kd_loss(o.logits[i], o.logits.back(), kd);
    Tensor d = o.features[i] - f_teacher;
    Tensor hint = sum(d * d) * (1.0 / static_cast<double>(d.shape()[0]));
    kd_sum = accumulate_term(kd_sum, k);
    hint_sum = accumulate_term(hint_sum, hint);
  }
  r.loss = total + kd_sum * alpha + hint_sum * lambda;
  r.terms.emplace_back("kd", kd_sum);
  r.terms.emplace_back("hint", hint_sum);
  add_exit_logits(r, o);
  return r;
}

std::string ByotMethod::variant_summary() const {
  char buf[260];
  std::snprintf(buf, sizeof buf,
                "exits %s, T %s, alpha %s [A: authors' later code], lambda %s [A], deepest CE "
                "weight %s, hint = per-sample squared L2 averaged over the batch",
                options_.get("exits").c_str(), options_.get("T").c_str(),
                options_.get("alpha").c_str(), options_.get("lambda").c_str(),
                options_.get("deepest_ce").c_str());
  return buf;
}

// ---- EED -------------------------------------------------------------------------------------

Tensor eed_masked_feature_mse(const Tensor& f, const Tensor& teacher) {
  Tensor t = detach(teacher);
  // 1{f > 0 or t > 0} = 1{max(f, t) > 0}, as 0/1 values of f's dtype (no gradient)
  Tensor mask = ops::to(ops::gt(ops::maximum(detach(f), t), 0.0), f.dtype());
  Tensor d = f - t;
  return mean(d * d * mask);
}

EedMethod::EedMethod() : MultiExitMethod("conv_chain") {
  options_.declare("output_loss", "mse",
                   "mse: MSE of each exit's logits to the exit ensemble (the code's default); "
                   "kl: kl_weight * T^2 KL_T");
  options_.declare("T", "3", "temperature of the kl output loss");
  options_.declare("kl_weight", "0.1", "weight of the kl output loss");
  options_.declare("feature_loss", "true", "masked feature MSE to the exit ensemble's features");
}

std::string EedMethod::description() const {
  return "EED (exit-ensemble distillation): conv-chain exits after every stage; the detached "
         "ensemble of all exits (the final one included) teaches every exit by logit MSE and a "
         "masked feature MSE. Deploys the final exit.";
}

StepResult EedMethod::loss(const MultiExitNet::Output& o, const Tensor& y) {
  namespace F = nn::functional;
  const std::string& out = options_.get("output_loss");
  OKD_CHECK(out == "mse" || out == "kl", "eed.output_loss must be mse or kl, got '", out, "'");
  Tensor zbar = detach(mean_of(o.logits)), fbar = detach(mean_of(o.features));
  KdOptions kd;
  kd.T = options_.get_double("T");
  const bool with_features = options_.get_bool("feature_loss");
  StepResult r;
  Tensor ce_sum, out_sum, feat_sum;
  for (size_t i = 0; i < o.logits.size(); ++i) {
    Tensor ce = F::cross_entropy(o.logits[i], y);
    ce_sum = accumulate_term(ce_sum, ce);
    r.terms.emplace_back("ce_exit" + std::to_string(i + 1), ce);
    out_sum = accumulate_term(
        out_sum, out == "mse" ? F::mse_loss(o.logits[i], zbar) : kd_loss(o.logits[i], zbar, kd));
    if (with_features)
      feat_sum = accumulate_term(feat_sum, eed_masked_feature_mse(o.features[i], fbar));
  }
  const double out_w = out == "mse" ? 1.0 : options_.get_double("kl_weight");
  r.loss = ce_sum + out_sum * out_w;
  r.terms.emplace_back(out == "mse" ? "mse_logits" : "kd", out_sum);
  if (with_features) {
    r.loss = r.loss + feat_sum;
    r.terms.emplace_back("feature_mse", feat_sum);
  }
  add_exit_logits(r, o);
  return r;
}

std::string EedMethod::variant_summary() const {
  char buf[260];
  std::snprintf(
      buf, sizeof buf,
      "exits %s, output loss %s%s, masked feature MSE %s, teachers = detached mean "
      "of all exits (final included)",
      options_.get("exits").c_str(), options_.get("output_loss").c_str(),
      options_.get("output_loss") == "kl"
          ? (" (" + options_.get("kl_weight") + " x T^2 KL, T " + options_.get("T") + ")").c_str()
          : "",
      options_.get("feature_loss").c_str());
  return buf;
}

// ---- Phuong & Lampert ------------------------------------------------------------------------

double phuong_anneal(double T, const Tensor& z, double threshold, double factor) {
  Tensor t = scalar_tensor(T, DType::Float64, z.device());
  phuong_anneal_(t, z, threshold, factor);
  return t.item();
}

void phuong_anneal_(const Tensor& T, const Tensor& z, double threshold, double factor) {
  OKD_CHECK(T.dim() == 0 && T.dtype() == DType::Float64 && T.device() == z.device(),
            "phuong_anneal_: T must be a float64 scalar on the logits' device, got ", T.desc());
  NoGradGuard no_grad;
  Tensor p = softmax(div(detach(z), ops::to(T, z.dtype())), 1);
  Tensor grow = ops::gt(mean(amax(p, {1})), threshold);
  ops::copy_(T, ops::where(grow, ops::mul(T, factor), T));
}

PhuongMethod::PhuongMethod() : MultiExitMethod("conv_chain") {
  options_.declare("T", "anneal",
                   "anneal: from 1, x anneal_factor after a step whose batch-mean max teacher "
                   "probability exceeds anneal_threshold; or a constant (the variant uses 4)");
  options_.declare("anneal_factor", "1.05", "temperature growth factor");
  options_.declare("anneal_threshold", "0.5", "batch-mean max probability that triggers growth");
  options_.declare("C", "0.5", "distillation weight (the CE gets 1 - C)");
  options_.declare("scale", "auto", "overall scale s; auto: 2 * 5 / (number of exits)");
}

std::string PhuongMethod::description() const {
  return "Phuong & Lampert: the last exit teaches every earlier exit (soft-target CE, weight "
         "0.5) with a temperature annealed from 1 to keep the teacher soft. Deploys the last "
         "exit.";
}

void PhuongMethod::build(const BuildContext& ctx) {
  MultiExitMethod::build(ctx);
  T0_ = options_.get("T") == "anneal" ? 1.0 : options_.get_double("T");
  T_ = Tensor();
  last_teacher_ = Tensor();
}

const Tensor& PhuongMethod::temperature_on(const Device& device) {
  if (!T_.defined() || T_.device() != device)
    T_ = T_.defined() ? ops::to(T_, device) : scalar_tensor(T0_, DType::Float64, device);
  return T_;
}

double PhuongMethod::temperature() const { return T_.defined() ? T_.item() : T0_; }

StepResult PhuongMethod::loss(const MultiExitNet::Output& o, const Tensor& y) {
  namespace F = nn::functional;
  const size_t n = o.logits.size();
  const double C = options_.get_double("C");
  const double s = options_.get("scale") == "auto" ? 10.0 / static_cast<double>(n)
                                                   : options_.get_double("scale");
  // T as a scalar of the logits' dtype on their device (no gradient)
  const Tensor T = ops::to(temperature_on(o.logits.back().device()), o.logits.back().dtype());
  StepResult r;
  Tensor ce_sum, soft_sum;
  for (size_t i = 0; i < n; ++i) {
    Tensor ce = F::cross_entropy(o.logits[i], y);
    ce_sum = accumulate_term(ce_sum, ce);
    r.terms.emplace_back("ce_exit" + std::to_string(i + 1), ce);
    if (i + 1 < n)
      soft_sum = accumulate_term(soft_sum, soft_cross_entropy(o.logits[i], o.logits.back(), T));
  }
  r.loss = (ce_sum * (1 - C) + soft_sum * (T * T) * C) * s;
  r.terms.emplace_back("soft_ce", soft_sum);
  // A copy: in a float64 run T is T_ itself, which after_update anneals in place, so the term
  // would show the next step's temperature.
  r.terms.emplace_back("T", ops::clone(T));
  last_teacher_ = detach(o.logits.back());
  add_exit_logits(r, o);
  return r;
}

void PhuongMethod::after_update(const TrainClock&) {
  if (options_.get("T") != "anneal" || !last_teacher_.defined()) return;
  phuong_anneal_(temperature_on(last_teacher_.device()), last_teacher_,
                 options_.get_double("anneal_threshold"), options_.get_double("anneal_factor"));
  last_teacher_ = Tensor();
}

nn::NamedTensors PhuongMethod::extra_state() const {
  return {{"temperature", from_vector<double>({temperature()}, {1})}};
}

void PhuongMethod::load_extra_state(const nn::NamedTensors& state) {
  for (const auto& [k, v] : state)
    if (k == "temperature") {
      T0_ = to_vector<double>(v).at(0);
      T_ = Tensor();  // made again from T0_ on the next step's device
    }
}

std::string PhuongMethod::variant_summary() const {
  char buf[260];
  std::snprintf(buf, sizeof buf,
                "exits %s [A: the reference uses MSDNet], T %s (now %.4f), C %s, scale %s",
                options_.get("exits").c_str(), options_.get("T").c_str(), temperature(),
                options_.get("C").c_str(), options_.get("scale").c_str());
  return buf;
}

// byot and eed: 200 epochs, x0.1 at 75/130/180, plain momentum (classic.md §14.1, §14.2);
// phuong overrides it.
Recipe MultiExitMethod::reference_recipe(const std::string& dataset,
                                         const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source =
      "classic.md §14.1/§14.2 (200 epochs, batch 128, lr 0.1 x0.1 at 75/130/180, no Nesterov)";
  r.epochs = 200;
  r.batch_size = 128;
  r.nesterov = false;
  r.weight_decay = 5e-4;
  r.milestones = std::vector<double>{75, 130, 180};
  return r;
}

Recipe PhuongMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "classic.md §14.3 (official code: Nesterov, weight decay 1e-4, batch 64, 300 epochs)";
  r.batch_size = 64;
  r.weight_decay = 1e-4;
  return r;
}

}  // namespace okd::distill
