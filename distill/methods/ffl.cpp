// FFL's forward and loss (seeds.md §3.3):
//   L = CE(z1) + CE(z2) + CE(zf) + w(e) [KD(z1 <- zf) + KD(z2 <- zf) + KD(zf <- (z1 + z2)/2)]
//   KD: T = 3, batchmean, teacher detached, 1e-7 on the teacher probabilities.
#include "distill/methods/ffl.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

FflMethod::FflMethod() {
  options_.declare("T", "3", "distillation temperature");
  options_.declare("teacher_eps", "1e-7", "added to the teacher probabilities inside the KL");
  options_.declare("rampup_epochs", "80", "length of the sigmoid ramp-up of the KD terms");
  options_.declare("share_trunk", "true",
                   "share the stem and all stages but the last between the sub-networks "
                   "(the released code); false: two separate networks");
  options_.declare("fusion_wd", "1e-5", "weight decay of the fusion module");
  options_.declare("shortcut", "B", "ResNet shortcut option ('run' = --shortcut)");
  options_.declare("init", "he_fanout", "weight init ('run' = --init)");
}

std::string FflMethod::description() const {
  return "FFL: two sub-networks (shared trunk, duplicated last stage) and a depthwise-separable "
         "fusion module on their concatenated feature maps; the fused classifier and the "
         "sub-networks teach each other (T = 3, ramp-up 80 epochs). Deploys sub-network 1.";
}

void FflMethod::build(const BuildContext& ctx) {
  auto base = make_method_backbone(ctx, 0, options_.get("shortcut"), options_.get("init"));
  Generator gen(ctx.seed + 1000);
  const int head = base->num_stages() - 1;
  const int split = options_.get_bool("share_trunk") ? head - 1 : 0;
  net_ = std::make_shared<BranchedNet>(base, split, 2, gen);
  const int64_t c = base->stage(head - 1).out_channels;
  fusion_ = std::make_shared<FusionModule>(2 * c, c, ctx.num_classes, gen);
}

std::vector<ParamGroup> FflMethod::param_groups() const {
  ParamGroup nets{"networks", net_->parameters(), std::nullopt, std::nullopt};
  ParamGroup fusion{"fusion", fusion_->parameters(), std::nullopt,
                    options_.get_double("fusion_wd")};
  return {nets, fusion};
}

FflMethod::Output FflMethod::forward(const Tensor& x) {
  Tensor h = net_->trunk(x);
  Tensor f1 = net_->branch_features(0, h), f2 = net_->branch_features(1, h);
  Output o;
  o.z1 = net_->branch_head(0, f1);
  o.z2 = net_->branch_head(1, f2);
  o.zf = fusion_->forward({f1, f2}).logits;  // not detached: the fused CE trains the branches
  return o;
}

StepResult FflMethod::loss(const Output& o, const Tensor& y, double w) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.teacher_eps = options_.get_double("teacher_eps");
  kd.detach_teacher = true;
  Tensor ce1 = F::cross_entropy(o.z1, y), ce2 = F::cross_entropy(o.z2, y);
  Tensor cef = F::cross_entropy(o.zf, y);
  Tensor kd1 = kd_loss(o.z1, o.zf, kd), kd2 = kd_loss(o.z2, o.zf, kd);
  Tensor ens = (o.z1 + o.z2) * 0.5;
  Tensor kdf = kd_loss(o.zf, ens, kd);
  StepResult r;
  r.loss = ce1 + ce2 + cef + (kd1 + kd2 + kdf) * w;
  r.terms = {{"ce_sub1", ce1}, {"ce_sub2", ce2},  {"ce_fused", cef},           {"kd_sub1", kd1},
             {"kd_sub2", kd2}, {"kd_fused", kdf}, {"w_rampup", scalar_term(w)}};
  r.logits = {{"sub1", o.z1}, {"sub2", o.z2}, {"fused", o.zf}};
  return r;
}

StepResult FflMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  const double w =
      sigmoid_rampup(static_cast<double>(clock.epoch), options_.get_double("rampup_epochs"));
  return loss(forward(batch.images()), batch.labels, w);
}

std::vector<std::pair<std::string, Tensor>> FflMethod::eval_logits(const Tensor& images) {
  Output o = forward(images);
  return {{"sub1", o.z1}, {"sub2", o.z2}, {"fused", o.zf}};
}

std::string FflMethod::variant_summary() const {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "T %s, teacher_eps %s, ramp-up %s epochs, share_trunk %s, fusion_wd %s",
                options_.get("T").c_str(), options_.get("teacher_eps").c_str(),
                options_.get("rampup_epochs").c_str(), options_.get("share_trunk").c_str(),
                options_.get("fusion_wd").c_str());
  return buf;
}

Recipe FflMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "seeds.md §3.4 (official code: epochs 0..300, fusion module weight decay 1e-5)";
  r.epochs = 301;
  r.nesterov = true;
  r.weight_decay = 1e-4;
  r.padding = "reflect";
  return r;
}

}  // namespace okd::distill
