// AFD and AMLN: DML logits plus least-squares adversarial feature alignment, three steps per
// iteration (classic.md §11, §12; see adversarial.h for the losses).
#include "distill/methods/adversarial.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/modules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "optim/optimizer.h"

namespace okd::distill {

AdversarialMutualMethod::AdversarialMutualMethod(bool all_blocks, const std::string& T,
                                                 const std::string& l1)
    : all_blocks_(all_blocks) {
  options_.declare("peers", "2", "number of networks K (peer of k: k-1 mod K)");
  options_.declare("T", T, "temperature of the logit KL");
  options_.declare("lambda_kl", "1", "weight of the logit KL");
  options_.declare("lambda_adv", "1", "weight of the generator (fool-the-discriminator) loss");
  options_.declare("lambda_l1", l1, "weight of the L1 feature alignment (amln; off by default)");
  options_.declare("d_lr", "2e-4", "discriminators' Adam lr");
  options_.declare("d_beta1", "0.5", "discriminators' Adam beta1");
  options_.declare("d_lr_schedule", "false",
                   "scale the discriminators' lr by the run's lr schedule (default: constant)");
}

void AdversarialMutualMethod::build(const BuildContext& ctx) {
  const int64_t K = options_.get_int("peers");
  OKD_CHECK(K >= 2, name(), ".peers must be at least 2, got ", K);
  nets_.clear();
  for (int64_t k = 0; k < K; ++k) nets_.push_back(make_method_backbone(ctx, 100 * k));
  // Stage-output shapes for this image size (eval mode: no BN statistics change).
  std::vector<Shape> shapes;
  {
    NoGradGuard no_grad;
    nets_[0]->eval();
    auto o = run_backbone(*nets_[0], zeros({1, ctx.in_channels, ctx.image_size, ctx.image_size}));
    for (const auto& t : o.stage_outputs) shapes.push_back(t.shape());
    nets_[0]->train();
  }
  const Shape final_shape = shapes.back();
  const int64_t cf = final_shape[1], hf = final_shape[2];
  const size_t first = all_blocks_ ? 0 : shapes.size() - 1;
  disc_ = std::make_shared<nn::Module>("Discriminators");
  adapt_ = std::make_shared<nn::Module>("Adapters");
  d_.assign(K, {});
  a_.assign(K, {});
  Generator gen(ctx.seed + 2000);
  for (int64_t k = 0; k < K; ++k)
    for (size_t b = first; b < shapes.size(); ++b) {
      const std::string tag = "net" + std::to_string(k + 1) + "_block" + std::to_string(b + 1);
      d_[k].push_back(disc_->register_module(tag, std::make_shared<FeatureDiscriminator>(cf, gen)));
      const int64_t cb = shapes[b][1], hb = shapes[b][2];
      if (cb == cf && hb == hf) {
        a_[k].push_back(nullptr);
        continue;
      }
      OKD_CHECK(hb % hf == 0, name(), ": stage ", b + 1, " output ", hb, " is not a multiple of ",
                hf);
      // conv3x3 stride 2 -> BN -> ReLU per halving (the first maps cb -> cf); conv1x1 if none.
      auto seq = std::make_shared<nn::Sequential>();
      int64_t c = cb;
      for (int64_t r = hb / hf; r > 1; r /= 2) {
        OKD_CHECK(r % 2 == 0, name(), ": resolution ratio ", hb / hf, " is not a power of two");
        seq->push_back(he_conv(c, cf, 3, 2, 1, 1, gen));
        seq->push_back(nn::BatchNorm2d(cf));
        seq->push_back(std::make_shared<nn::ReLU>());
        c = cf;
      }
      if (seq->size() == 0) {
        seq->push_back(he_conv(cb, cf, 1, 1, 0, 1, gen));
        seq->push_back(nn::BatchNorm2d(cf));
        seq->push_back(std::make_shared<nn::ReLU>());
      }
      a_[k].push_back(adapt_->register_module(tag, seq));
    }
  optim::AdamOptions ao;
  ao.lr = options_.get_double("d_lr");
  ao.beta1 = options_.get_double("d_beta1");
  ao.beta2 = 0.999;
  ao.weight_decay = 0;
  d_opt_ = std::make_unique<optim::Adam>(disc_->parameters(), ao);
}

std::vector<std::pair<std::string, nn::ModulePtr>> AdversarialMutualMethod::networks() const {
  std::vector<std::pair<std::string, nn::ModulePtr>> v;
  for (size_t k = 0; k < nets_.size(); ++k) v.emplace_back("net" + std::to_string(k + 1), nets_[k]);
  v.emplace_back("discriminators", disc_);
  if (!adapt_->named_parameters().empty()) v.emplace_back("adapters", adapt_);
  return v;
}

std::vector<ParamGroup> AdversarialMutualMethod::param_groups() const {
  // The networks and the adaptation modules; the discriminators have their own Adam.
  ParamGroup g{"networks", {}, std::nullopt, std::nullopt};
  for (const auto& n : nets_)
    for (const auto& p : n->parameters()) g.params.push_back(p);
  for (const auto& p : adapt_->parameters()) g.params.push_back(p);
  return {g};
}

std::vector<std::vector<Tensor>> AdversarialMutualMethod::adapted_features(
    const Tensor& x, std::vector<Tensor>* logits) {
  std::vector<std::vector<Tensor>> feats(nets_.size());
  const size_t first = all_blocks_ ? 0 : std::string::npos;
  for (size_t k = 0; k < nets_.size(); ++k) {
    BackboneOutputs o = run_backbone(*nets_[k], x);
    if (logits) logits->push_back(o.logits);
    const size_t start = first == std::string::npos ? o.stage_outputs.size() - 1 : 0;
    for (size_t b = start; b < o.stage_outputs.size(); ++b) {
      const auto& a = a_[k][b - start];
      feats[k].push_back(a ? a->forward(o.stage_outputs[b]) : o.stage_outputs[b]);
    }
  }
  return feats;
}

StepResult AdversarialMutualMethod::forward_train(const Batch& batch, const TrainClock&) {
  namespace F = nn::functional;
  std::vector<Tensor> z;
  for (auto& n : nets_) z.push_back(n->forward(batch.images()));
  KdOptions kd;
  kd.T = options_.get_double("T");
  const double l_kl = options_.get_double("lambda_kl");
  StepResult r;
  for (size_t k = 0; k < z.size(); ++k) {
    Tensor ce = F::cross_entropy(z[k], batch.labels);
    Tensor kl = kd_loss(z[k], z[peer_of(k)], kd);
    Tensor lk = ce + kl * l_kl;
    r.loss = r.loss.defined() ? r.loss + lk : lk;
    r.terms.emplace_back("ce_net" + std::to_string(k + 1), ce);
    r.terms.emplace_back("kl_net" + std::to_string(k + 1), kl);
    r.logits.emplace_back("net" + std::to_string(k + 1), z[k]);
  }
  r.logits.emplace_back("ensemble", mean_of(z));
  last_batch_ = batch;
  return r;
}

void AdversarialMutualMethod::step_logits(StepResult& result, optim::Optimizer& main) {
  main.zero_grad();
  backward(result.loss);
  main.step();
}

Tensor AdversarialMutualMethod::step_generators(optim::Optimizer& main, const TrainClock&) {
  auto feats = adapted_features(last_batch_.images());
  const double l_adv = options_.get_double("lambda_adv"), l_l1 = options_.get_double("lambda_l1");
  Tensor g;
  last_fake_.assign(nets_.size(), {});
  last_real_.assign(nets_.size(), {});
  for (size_t k = 0; k < nets_.size(); ++k) {
    const size_t peer = peer_of(k);
    for (size_t b = 0; b < feats[k].size(); ++b) {
      Tensor t = lsgan_generator_loss(d_[k][b]->forward(feats[k][b])) * l_adv;
      if (l_l1 != 0) t = t + mean(abs(feats[k][b] - detach(feats[peer][b]))) * l_l1;
      g = g.defined() ? g + t : t;
      last_fake_[k].push_back(detach(feats[k][b]));
      last_real_[k].push_back(detach(feats[peer][b]));
    }
  }
  main.zero_grad();
  backward(g);
  main.step();  // the discriminators are not in the main optimizer: they stay as they are
  return detach(g);
}

Tensor AdversarialMutualMethod::step_discriminators(const TrainClock& clock) {
  Tensor l;
  for (size_t k = 0; k < nets_.size(); ++k)
    for (size_t b = 0; b < last_fake_[k].size(); ++b) {
      // Real first, then fake, as L_D is written (classic.md §11): each train-mode forward moves
      // the discriminator's BN running statistics, so the order is part of the result and must
      // not be left to the compiler's order of evaluating arguments (GCC ran the fake first).
      Tensor d_real = d_[k][b]->forward(last_real_[k][b]);
      Tensor d_fake = d_[k][b]->forward(last_fake_[k][b]);
      Tensor t = lsgan_discriminator_loss(d_real, d_fake);
      l = l.defined() ? l + t : t;
    }
  const double lr =
      options_.get_double("d_lr") * (options_.get_bool("d_lr_schedule") ? clock.lr_factor : 1.0);
  for (auto& grp : d_opt_->param_groups()) grp.lr = lr;
  d_opt_->zero_grad();
  backward(l);
  d_opt_->step();
  last_fake_.clear();
  last_real_.clear();
  return detach(l);
}

void AdversarialMutualMethod::update(StepResult& result, optim::Optimizer& main,
                                     const TrainClock& clock) {
  step_logits(result, main);
  Tensor g = step_generators(main, clock);
  Tensor d = step_discriminators(clock);
  result.terms.emplace_back("g_adv", g);
  result.terms.emplace_back("d_lsgan", d);
  last_batch_ = Batch{};
}

std::vector<std::string> AdversarialMutualMethod::members() const {
  std::vector<std::string> v;
  const int64_t K = options_.get_int("peers");
  for (int64_t k = 1; k <= K; ++k) v.push_back("net" + std::to_string(k));
  v.push_back("ensemble");
  return v;
}

std::vector<std::pair<std::string, Tensor>> AdversarialMutualMethod::eval_logits(
    const Tensor& images) {
  std::vector<std::pair<std::string, Tensor>> v;
  std::vector<Tensor> z;
  for (size_t k = 0; k < nets_.size(); ++k) {
    z.push_back(nets_[k]->forward(images));
    v.emplace_back("net" + std::to_string(k + 1), z.back());
  }
  v.emplace_back("ensemble", mean_of(z));
  return v;
}

nn::NamedTensors AdversarialMutualMethod::extra_state() const {
  nn::NamedTensors s;
  for (auto& [k, v] : d_opt_->state_dict()) s.emplace_back("d_opt." + k, v);
  return s;
}

void AdversarialMutualMethod::load_extra_state(const nn::NamedTensors& state) {
  nn::NamedTensors opt;
  for (const auto& [k, v] : state)
    if (k.rfind("d_opt.", 0) == 0) opt.emplace_back(k.substr(6), v);
  d_opt_->load_state_dict(opt);
}

std::string AdversarialMutualMethod::variant_summary() const {
  char buf[400];
  std::snprintf(
      buf, sizeof buf,
      "%sK %s (cyclic peers), T %s [A], lambda_kl %s, lambda_adv %s, lambda_l1 %s, "
      "LSGAN discriminators on %s, Adam lr %s beta1 %s%s; 3-step update (logits, "
      "generators, discriminators)",
      all_blocks_ ? "APPROXIMATION reconstructed from the abstract; " : "",
      options_.get("peers").c_str(), options_.get("T").c_str(), options_.get("lambda_kl").c_str(),
      options_.get("lambda_adv").c_str(), options_.get("lambda_l1").c_str(),
      all_blocks_ ? "every stage (adapted to the last map's shape)" : "the last feature map",
      options_.get("d_lr").c_str(), options_.get("d_beta1").c_str(),
      options_.get_bool("d_lr_schedule") ? " (scheduled)" : " (constant)");
  return buf;
}

AfdMethod::AfdMethod() : AdversarialMutualMethod(false, "3", "0") {}

std::string AfdMethod::description() const {
  return "AFD: two networks exchange logits (DML-style KL, T = 3) and last-feature-map "
         "distributions through LSGAN discriminators (peer real, own fake; Adam); three update "
         "steps per iteration. Each network is deployed alone.";
}

AmlnMethod::AmlnMethod() : AdversarialMutualMethod(true, "1", "0") {
  // --help lists the options: say there that this is a labelled approximation.
  for (auto& spec : options_.specs())
    if (spec.key == "peers")
      spec.help += " [amln is an APPROXIMATION reconstructed from the paper's abstract]";
}

std::string AmlnMethod::description() const {
  return "AMLN (APPROXIMATION reconstructed from the abstract, not the paper's exact method): "
         "DML logits (T = 1) plus a discriminator per stage on adapted stage outputs (peer real, "
         "own fake), AFD's three-step update. Each network is deployed alone.";
}

}  // namespace okd::distill
