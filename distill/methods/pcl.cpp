// PCL's loss and temporal-mean teachers (classic.md §10):
//   L = CE(z_e) + sum_j [ CE(z_j) + w T^2 KL_T(sg(z_e) || z_j) + w/(m-1) sum_{l!=j} T^2 KL_T(z'_l
//   || z_j) ]
#include "distill/methods/pcl.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "tensor/ops/copy.h"

namespace okd::distill {

PclMethod::PclMethod() {
  options_.declare("peers", "3", "peer branches m (each on its own augmented view)");
  options_.declare("T", "3", "distillation temperature");
  options_.declare("rampup_epochs", "80",
                   "length of the sigmoid ramp-up (classic.md §1.3; not the public "
                   "reproduction's buggy e/lambda ramp)");
  options_.declare("ema_decay", "0.999", "EMA a_max (a_t = min(1 - 1/(t+1), a_max))");
  options_.declare("ema_buffers", "own",
                   "own: the EMA model's BN statistics follow its own train-mode forwards (the "
                   "reproduction); average: EMA-average the BN buffers too");
}

std::string PclMethod::description() const {
  return "PCL: shared trunk run per augmented view, 3 peers and a peer-ensemble head on their "
         "concatenated features distilled into every peer, plus temporal-mean (EMA) peers "
         "teaching the other peers (T = 3, ramp-up 80). Deploys EMA peer 1.";
}

void PclMethod::build(const BuildContext& ctx) {
  const int P = static_cast<int>(options_.get_int("peers"));
  OKD_CHECK(P >= 2, "pcl.peers must be at least 2, got ", P);
  const std::string& b = options_.get("ema_buffers");
  OKD_CHECK(b == "own" || b == "average", "pcl.ema_buffers must be own or average, got '", b, "'");
  auto make = [&] {
    auto base = make_method_backbone(ctx, 0);
    Generator gen(ctx.seed + 1000);
    return std::make_shared<DkelNet>(base, P, ctx.num_classes, gen, /*identical_fc_init=*/false);
  };
  student_ = make();
  ema_model_ = make();
  ema_model_->load_state_dict(student_->state_dict());
  for (auto& p : ema_model_->parameters()) p.requires_grad_(false);
  optim::EmaOptions eo;
  eo.decay = options_.get_double("ema_decay");
  eo.warmup = true;
  ema_ = std::make_unique<optim::Ema>(*ema_model_, *student_, eo);
}

std::vector<ParamGroup> PclMethod::param_groups() const {
  return {ParamGroup{"networks", student_->parameters(), std::nullopt, std::nullopt}};
}

StepResult PclMethod::loss(const DkelNet::Output& live, const std::vector<Tensor>& m,
                           const Tensor& y, double w) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.detach_teacher = true;
  const int P = static_cast<int>(live.peers.size());
  StepResult r;
  Tensor ce_e = F::cross_entropy(live.ensemble, y);
  Tensor ce_sum, pe_sum, pm_sum;
  for (int j = 0; j < P; ++j) {
    const Tensor& z = live.peers[j];
    Tensor ce = F::cross_entropy(z, y);
    Tensor pe = kd_loss(z, live.ensemble, kd);
    Tensor pm;
    for (int l = 0; l < P; ++l) {
      if (l == j) continue;
      Tensor t = kd_loss(z, m[l], kd);
      pm = pm.defined() ? pm + t : t;
    }
    pm = pm * (1.0 / (P - 1));
    ce_sum = ce_sum.defined() ? ce_sum + ce : ce;
    pe_sum = pe_sum.defined() ? pe_sum + pe : pe;
    pm_sum = pm_sum.defined() ? pm_sum + pm : pm;
    r.terms.emplace_back("ce_peer" + std::to_string(j + 1), ce);
    r.logits.emplace_back("peer" + std::to_string(j + 1), z);
  }
  r.loss = ce_e + ce_sum + (pe_sum + pm_sum) * w;
  r.terms.emplace_back("ce_ensemble", ce_e);
  r.terms.emplace_back("kl_ensemble", pe_sum);
  r.terms.emplace_back("kl_mean_teachers", pm_sum);
  r.terms.emplace_back("w_rampup", scalar_term(w));
  r.logits.emplace_back("ensemble", live.ensemble);
  return r;
}

StepResult PclMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  std::vector<Tensor> m;
  {
    NoGradGuard no_grad;  // the EMA model runs in train mode (its own BN statistics)
    m = ema_model_->forward(batch.views, /*with_ensemble=*/false).peers;
  }
  auto live = student_->forward(batch.views);
  const double w =
      sigmoid_rampup(static_cast<double>(clock.epoch), options_.get_double("rampup_epochs"));
  return loss(live, m, batch.labels, w);
}

void PclMethod::after_update(const TrainClock&) {
  const double a = ema_->alpha(ema_->steps());
  ema_->update();
  if (options_.get("ema_buffers") != "average") return;
  // theta' <- a theta' + (1 - a) theta for the float buffers; counters are copied.
  NoGradGuard no_grad;
  auto src = student_->named_buffers();
  auto dst = ema_model_->named_buffers();
  for (size_t i = 0; i < dst.size(); ++i) {
    const Tensor& d = dst[i].second;
    const Tensor& s = src[i].second;
    if (d.dtype() == DType::Float32 || d.dtype() == DType::Float64)
      ops::copy_(d, d * a + s * (1.0 - a));
    else
      ops::copy_(d, s);
  }
}

std::vector<std::string> PclMethod::members() const {
  return ema_and_live_members(static_cast<int>(options_.get_int("peers")));
}

std::vector<std::pair<std::string, Tensor>> PclMethod::eval_logits(const Tensor& images) {
  return ema_and_live_logits(*ema_model_, *student_, images);
}

nn::NamedTensors PclMethod::extra_state() const {
  nn::NamedTensors s;
  for (auto& [k, v] : ema_->state_dict()) s.emplace_back("ema." + k, v);
  return s;
}

void PclMethod::load_extra_state(const nn::NamedTensors& state) {
  nn::NamedTensors ema_state;
  for (const auto& [k, v] : state)
    if (k.rfind("ema.", 0) == 0) ema_state.emplace_back(k.substr(4), v);
  ema_->load_state_dict(ema_state);
}

std::string PclMethod::variant_summary() const {
  char buf[260];
  std::snprintf(buf, sizeof buf,
                "m %s, T %s, sigmoid ramp-up %s epochs (not the reproduction's e/lambda bug), "
                "ema_decay %s, ema_buffers %s, network shared with dkel (DkelNet, independent "
                "peer FC init)",
                options_.get("peers").c_str(), options_.get("T").c_str(),
                options_.get("rampup_epochs").c_str(), options_.get("ema_decay").c_str(),
                options_.get("ema_buffers").c_str());
  return buf;
}

}  // namespace okd::distill
