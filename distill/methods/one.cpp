// ONE's gate, gated ensemble and loss (classic.md §6):
//   L = sum_i CE(z_i) + CE(z_e) + w(e) sum_i T^2 KL_T(sg(z_e) || z_i)
#include "distill/methods/one.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

Tensor one_gate_weights(const Tensor& scores) { return softmax(relu(scores), 1); }

Tensor gated_ensemble(const Tensor& g, const std::vector<Tensor>& z) {
  OKD_CHECK(g.dim() == 2 && g.shape()[1] == static_cast<int64_t>(z.size()), "gated_ensemble: gate ",
            shape_str(g.shape()), " for ", z.size(), " branches");
  Tensor e;
  for (size_t i = 0; i < z.size(); ++i) {
    Tensor t = narrow(g, 1, static_cast<int64_t>(i), 1) * z[i];  // [N, 1] broadcast over classes
    e = e.defined() ? e + t : t;
  }
  return e;
}

OneNet::OneNet(nn::BackbonePtr base, int branches, Generator& gen) : nn::Module("OneNet") {
  const int head = base->num_stages() - 1;
  const int64_t trunk_channels = base->stage(head - 2).out_channels;
  net_ = register_module("net", std::make_shared<BranchedNet>(base, head - 1, branches, gen));
  gate_fc_ =
      register_module("gate_fc", std::make_shared<nn::Linear>(trunk_channels, branches, gen));
  gate_bn_ = register_module("gate_bn", nn::BatchNorm1d(branches));
}

OneNet::Output OneNet::forward(const Tensor& x) {
  Tensor h = net_->trunk(x);
  Output o;
  for (int b = 0; b < net_->num_branches(); ++b)
    o.branches.push_back(net_->branch_head(b, net_->branch_features(b, h)));
  Tensor pooled = flatten(adaptive_avg_pool2d(h, 1, 1), 1);
  o.gate = one_gate_weights(gate_bn_->forward(gate_fc_->forward(pooled)));
  o.ensemble = gated_ensemble(o.gate, o.branches);
  return o;
}

OneMethod::OneMethod() {
  options_.declare("branches", "3", "number of branches m");
  options_.declare("T", "3", "distillation temperature");
  options_.declare("rampup_epochs", "80", "length of the sigmoid ramp-up of the KL term");
  options_.declare("detach_teacher", "true",
                   "detach the gated teacher (official code); false: the OKDDip "
                   "re-implementation's variant, the KL also trains the gate");
  options_.declare("teacher_eps", "0", "added to the teacher probabilities (official: 1e-7)");
}

std::string OneMethod::description() const {
  return "ONE: shared trunk, m = 3 branches copying the last stage, a gate on the trunk weighting "
         "the branch logits into a detached online teacher distilled into every branch (T = 3, "
         "ramp-up 80 epochs). Deploys branch 1.";
}

void OneMethod::build(const BuildContext& ctx) {
  const int m = static_cast<int>(options_.get_int("branches"));
  OKD_CHECK(m >= 2, "one.branches must be at least 2, got ", m);
  auto base = make_method_backbone(ctx, 0);
  OKD_CHECK(base->num_stages() >= 4, "one: ", ctx.arch, " has too few stages to split");
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<OneNet>(base, m, gen);
}

StepResult OneMethod::loss(const OneNet::Output& o, const Tensor& y, double w) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.detach_teacher = options_.get_bool("detach_teacher");
  kd.teacher_eps = options_.get_double("teacher_eps");
  StepResult r;
  Tensor ce_e = F::cross_entropy(o.ensemble, y);
  Tensor total = ce_e, kl_sum;
  for (size_t i = 0; i < o.branches.size(); ++i) {
    Tensor ce = F::cross_entropy(o.branches[i], y);
    Tensor kl = kd_loss(o.branches[i], o.ensemble, kd);
    total = total + ce;
    kl_sum = kl_sum.defined() ? kl_sum + kl : kl;
    r.terms.emplace_back("ce_branch" + std::to_string(i + 1), ce);
    r.logits.emplace_back("branch" + std::to_string(i + 1), o.branches[i]);
  }
  r.loss = total + kl_sum * w;
  r.terms.emplace_back("ce_ensemble", ce_e);
  r.terms.emplace_back("kl", kl_sum);
  r.terms.emplace_back("w_rampup", scalar_term(w));
  r.logits.emplace_back("ensemble", o.ensemble);
  return r;
}

StepResult OneMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  const double w =
      sigmoid_rampup(static_cast<double>(clock.epoch), options_.get_double("rampup_epochs"));
  return loss(net_->forward(batch.images()), batch.labels, w);
}

std::vector<std::string> OneMethod::members() const {
  std::vector<std::string> v;
  const int64_t m = options_.get_int("branches");
  for (int64_t i = 1; i <= m; ++i) v.push_back("branch" + std::to_string(i));
  v.push_back("ensemble");
  return v;
}

std::vector<std::pair<std::string, Tensor>> OneMethod::eval_logits(const Tensor& images) {
  auto o = net_->forward(images);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t i = 0; i < o.branches.size(); ++i)
    v.emplace_back("branch" + std::to_string(i + 1), o.branches[i]);
  v.emplace_back("ensemble", o.ensemble);
  return v;
}

std::string OneMethod::variant_summary() const {
  char buf[240];
  std::snprintf(buf, sizeof buf,
                "m %s, T %s, ramp-up %s epochs, detach_teacher %s, teacher_eps %s, gate "
                "GAP->FC->BN1d->ReLU->softmax on the trunk",
                options_.get("branches").c_str(), options_.get("T").c_str(),
                options_.get("rampup_epochs").c_str(), options_.get("detach_teacher").c_str(),
                options_.get("teacher_eps").c_str());
  return buf;
}

Recipe OneMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "classic.md §6 (official script: no Nesterov, weight decay 1e-4, x0.1 at 151 and 225)";
  r.nesterov = false;
  r.weight_decay = 1e-4;
  r.milestones = std::vector<double>{151, 225};
  return r;
}

}  // namespace okd::distill
