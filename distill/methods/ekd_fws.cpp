// EKD-FWSNet: network with shared classmate stages, and its loss (seeds.md §2.3):
//   L = CE(z_main) + aux * sum_j CE(z_cmj) + KL_w * KD(z_main <- mean_k z_k; T, mean_all, no
//   detach)
//     + att_w * mean_{N,H,W}(A_main - mean_k A_k)^2,   A_k = att_sum_z(f_k)
#include "distill/methods/ekd_fws.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

EkdNet::EkdNet(nn::BackbonePtr base, Generator& gen)
    : nn::Module("EkdNet"), base_(std::move(base)) {
  register_module("base", base_);
  feature_stages_ = base_->num_stages() - 2;
  OKD_CHECK(feature_stages_ >= 2, "ekd-fws needs a backbone with at least two feature stages");
  for (int s = 2; s <= feature_stages_; ++s)
    cm_stages_.push_back(register_module("cm_" + base_->stage(s).name, base_->make_stage(s, gen)));
  for (int j = 1; j < feature_stages_; ++j)
    cm_heads_.push_back(register_module("cm_head" + std::to_string(j),
                                        base_->make_stage(feature_stages_ + 1, gen)));
}

EkdNet::Output EkdNet::forward(const Tensor& x, double fa_dropout, Generator& fa_gen) {
  const int S = feature_stages_;
  std::vector<Tensor> h(S + 1);  // h[s]: output of feature stage s (h[0]: stem)
  h[0] = base_->run_stage(0, x);
  for (int s = 1; s <= S; ++s) h[s] = base_->run_stage(s, h[s - 1]);
  Output o;
  // The last feature map of a path: stage S's output through the head's layers before the pool
  // (nothing for a ResNet; the final BN-ReLU of a WRN, one per path).
  o.features.push_back(base_->head_features(h[S]));
  o.logits.push_back(base_->head_classify(o.features.back()));
  for (int j = 1; j < S; ++j) {
    // Path j leaves after stage j through the feature augmentation (its own dropout mask).
    Tensor y = dropout(h[j], fa_dropout, is_training(), fa_gen);
    for (int s = j + 1; s <= S; ++s) y = cm_stages_[s - 2]->forward(y);
    const auto& head = cm_heads_[j - 1]->items();
    const size_t pool = nn::head_pool_index(head);
    for (size_t i = 0; i < pool; ++i) y = head[i].second->forward(y);
    o.features.push_back(y);
    for (size_t i = pool; i < head.size(); ++i) y = head[i].second->forward(y);
    o.logits.push_back(y);
  }
  return o;
}

EkdFwsMethod::EkdFwsMethod() : fa_gen_(0) {
  options_.declare("kl_weight", "auto",
                   "weight of the mean-over-all KD term; auto = 60 on 100+ classes or ResNet-56+, "
                   "else 15 (the reference configs)");
  options_.declare("kl_reduction", "mean_all", "KD reduction: mean_all (reference) or batchmean");
  options_.declare("T", "3", "distillation temperature");
  options_.declare("att_weight", "1.0", "weight of the attention MSE");
  options_.declare("aux_ce_weight", "auto", "CE weight of each classmate path; auto = 1/(paths-1)");
  options_.declare("fa_dropout", "0.2",
                   "dropout p of the feature augmentation on classmate inputs");
  options_.declare("detach_teacher", "false",
                   "stop the gradient at the ensemble and attention teachers (the reference does "
                   "not)");
  options_.declare("shortcut", "A",
                   "ResNet shortcut option (A in the reference; 'run' = --shortcut)");
  options_.declare("init", "he_fanin",
                   "weight init (he_fanin on conv and Linear in the reference; 'run' = --init)");
}

std::string EkdFwsMethod::description() const {
  return "EKD-FWSNet: classmate paths leave the backbone after each stage and share the copies "
         "of the later stages; their logit-average ensemble teaches the main path (mean-over-all "
         "KL, T = 3, no detach) with a z-scored channel-sum attention MSE. Deploys the main path, "
         "a plain backbone.";
}

namespace {
int64_t resnet_depth(const std::string& arch) {
  if (arch.rfind("resnet", 0) != 0) return 0;
  size_t i = 6;
  int64_t d = 0;
  while (i < arch.size() && std::isdigit(static_cast<unsigned char>(arch[i])))
    d = d * 10 + (arch[i++] - '0');
  return d;
}
}  // namespace

void EkdFwsMethod::build(const BuildContext& ctx) {
  auto base = make_method_backbone(ctx, 0, options_.get("shortcut"), options_.get("init"));
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<EkdNet>(base, gen);
  fa_gen_.manual_seed(ctx.seed + 2000);
  const std::string& kw = options_.get("kl_weight");
  kl_weight_ = kw == "auto" ? ((ctx.num_classes >= 100 || resnet_depth(ctx.arch) >= 56) ? 60 : 15)
                            : options_.get_double("kl_weight");
  const std::string& aw = options_.get("aux_ce_weight");
  aux_ce_weight_ =
      aw == "auto" ? 1.0 / (net_->num_paths() - 1) : options_.get_double("aux_ce_weight");
}

std::vector<std::string> EkdFwsMethod::members() const {
  std::vector<std::string> m{"main"};
  for (int j = 1; j < net_->num_paths(); ++j) m.push_back("cm" + std::to_string(j));
  m.push_back("ensemble");
  return m;
}

StepResult EkdFwsMethod::loss(const EkdNet::Output& out, const Tensor& labels) const {
  namespace F = nn::functional;
  StepResult r;
  const int P = static_cast<int>(out.logits.size());
  Tensor ce_main = F::cross_entropy(out.logits[0], labels);
  Tensor total = ce_main;
  r.terms.emplace_back("ce_main", ce_main);
  for (int j = 1; j < P; ++j) {
    Tensor ce = F::cross_entropy(out.logits[j], labels);
    r.terms.emplace_back("ce_cm" + std::to_string(j), ce);
    total = total + ce * aux_ce_weight_;
  }
  const bool detach_t = options_.get_bool("detach_teacher");
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.reduction = parse_kd_reduction(options_.get("kl_reduction"));
  kd.detach_teacher = detach_t;
  Tensor ensemble = mean_of(out.logits);
  Tensor kl = kd_loss(out.logits[0], ensemble, kd);
  r.terms.emplace_back("kd", kl);
  total = total + kl * kl_weight_;

  std::vector<Tensor> maps;
  for (const auto& f : out.features) maps.push_back(attention_sum_zscore(f));
  Tensor target = mean_of(maps);
  if (detach_t) target = detach(target);
  Tensor diff = maps[0] - target;
  Tensor att = mean(diff * diff);
  r.terms.emplace_back("att", att);
  total = total + att * options_.get_double("att_weight");
  r.loss = total;
  for (int j = 0; j < P; ++j)
    r.logits.emplace_back(j == 0 ? "main" : "cm" + std::to_string(j), out.logits[j]);
  r.logits.emplace_back("ensemble", ensemble);
  return r;
}

StepResult EkdFwsMethod::forward_train(const Batch& batch, const TrainClock&) {
  return loss(net_->forward(batch.images(), options_.get_double("fa_dropout"), fa_gen_),
              batch.labels);
}

std::vector<std::pair<std::string, Tensor>> EkdFwsMethod::eval_logits(const Tensor& images) {
  auto out = net_->forward(images, options_.get_double("fa_dropout"), fa_gen_);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t j = 0; j < out.logits.size(); ++j)
    v.emplace_back(j == 0 ? "main" : "cm" + std::to_string(j), out.logits[j]);
  v.emplace_back("ensemble", mean_of(out.logits));
  return v;
}

nn::NamedTensors EkdFwsMethod::extra_state() const {
  return {{"fa_generator", generator_state(fa_gen_)}};
}

void EkdFwsMethod::load_extra_state(const nn::NamedTensors& state) {
  for (const auto& [k, v] : state)
    if (k == "fa_generator") set_generator_state(fa_gen_, v);
}

std::string EkdFwsMethod::variant_summary() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "kl_weight %g (%s), T %s, aux_ce_weight %g, fa_dropout %s, detach_teacher %s, "
                "shortcut %s, init %s",
                kl_weight_, options_.get("kl_reduction").c_str(), options_.get("T").c_str(),
                aux_ce_weight_, options_.get("fa_dropout").c_str(),
                options_.get("detach_teacher").c_str(), options_.get("shortcut").c_str(),
                options_.get("init").c_str());
  return buf;
}

Recipe EkdFwsMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "seeds.md §2.4 (official code; its scheduler steps at epoch start: drops at 149, 249)";
  r.epochs = 300;
  r.lr = resnet_depth(arch) >= 56 ? 0.01 : 0.1;
  r.nesterov = false;
  r.weight_decay = 1e-4;
  r.milestones = std::vector<double>{149, 249};
  r.normalize = "imagenet";
  if (dataset == "cifar10") {
    r.augment = "flip-rrc";
    r.rrc_min_scale = 0.5;
  }
  return r;
}

}  // namespace okd::distill
