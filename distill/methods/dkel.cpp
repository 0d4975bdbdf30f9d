// DKEL's networks, EMA teacher and loss (seeds.md §6.4). Per iteration, e = epoch from 0:
//   PE_i    = KD(z_i <- z_en)                    PMind_i = mean_{j != i} KD(z_i <- m_j)
//   PMens_i = KD(z_i <- mean_{j != i} m_j)       PM_i    = w_e w_r PMens_i + (1 - w_e) w_r PMind_i
//   L = CE(z_en) + sum_i [CE(z_i) + w_r PE_i + PM_i]      (KD: T = 3, batchmean, detached)
// m_j: EMA model's peer j on view j (train mode, no gradient).
#include "distill/methods/dkel.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "optim/sgd.h"
#include "tensor/ops/copy.h"

namespace okd::distill {

DkelNet::DkelNet(nn::BackbonePtr base, int peers, int64_t classes, Generator& gen,
                 bool identical_fc_init)
    : nn::Module("DkelNet") {
  const int head = base->num_stages() - 1;
  net_ = register_module("net", std::make_shared<BranchedNet>(base, head - 1, peers, gen));
  const int64_t dim = base->feature_dim();
  ensemble_fc_ =
      register_module("ensemble_fc", std::make_shared<nn::Linear>(peers * dim, classes, gen));
  if (identical_fc_init) {
    // [REF-QUIRK] the reference deep-copies branch 1 before initialising, then re-initialises
    // the convs only: every peer's FC starts as a copy of the first.
    auto first = net_->classifier(0)->named_parameters();
    for (int b = 1; b < peers; ++b) {
      auto other = net_->classifier(b)->named_parameters();
      for (size_t i = 0; i < first.size(); ++i) ops::copy_(other[i].second, first[i].second);
    }
  }
}

DkelNet::Output DkelNet::forward(const std::vector<Tensor>& views, bool with_ensemble) {
  const int P = num_peers();
  OKD_CHECK(static_cast<int>(views.size()) == P, "dkel: expected ", P, " views, got ",
            views.size());
  Output o;
  std::vector<Tensor> pooled;
  for (int i = 0; i < P; ++i) {
    Tensor f = net_->branch_features(i, net_->trunk(views[i]));  // the trunk once per view
    Tensor p = net_->branch_pooled(i, f);
    pooled.push_back(p);
    o.peers.push_back(net_->branch_classify(i, p));
  }
  if (with_ensemble) o.ensemble = ensemble_fc_->forward(cat(pooled, 1));
  return o;
}

DkelMethod::DkelMethod() {
  options_.declare("peers", "3", "peer branches (each takes its own augmented view)");
  options_.declare("T", "3", "distillation temperature");
  options_.declare(
      "rampup", "reference",
      "reference: the released code's formula lambda*exp(-5(1-e/lambda)^2) (KD off "
      "for ~80 epochs with lambda 0.1) [REF-QUIRK]; intended: lambda*sigmoid_rampup(e, "
      "80)");
  options_.declare("rampup_lambda", "auto",
                   "lambda of the ramp-up; auto = 0.1 (reference) or 1.0 "
                   "(intended)");
  options_.declare("rampup_epochs", "80", "ramp-up length in epochs");
  options_.declare("exp_coef", "0.5", "decaying-ensemble weight w_e = exp(-exp_coef * e)");
  options_.declare("exp_cutoff", "0.01", "w_e is 0 once below this");
  options_.declare("ema_decay", "0.999", "EMA decay (alpha_t = min(1 - 1/(t+1), decay))");
  options_.declare("ema_keep_init", "false",
                   "use alpha = decay from the first step, keeping the teacher's initialisation "
                   "(a deviation from the reference)");
  options_.declare("teacher_init_iters", "1",
                   "the EMA teacher is trained for this + 1 mini-batches before training");
  options_.declare("teacher_init_lr_div", "100", "teacher initialisation lr = --lr / this");
  options_.declare("identical_fc_init", "true",
                   "the peers' FC layers start as copies of the first [REF-QUIRK]");
  options_.declare("shortcut", "B", "ResNet shortcut option ('run' = --shortcut)");
  options_.declare("init", "he_fanout", "weight init ('run' = --init)");
}

std::string DkelMethod::description() const {
  return "DKEL: shared trunk run per augmented view, three peer branches and a peer-ensemble "
         "head; a separately initialised EMA teacher teaches each peer through the other peers' "
         "EMA outputs (a decaying ensemble early on). Deploys the EMA trunk with one peer.";
}

void DkelMethod::build(const BuildContext& ctx) {
  const int P = static_cast<int>(options_.get_int("peers"));
  OKD_CHECK(P >= 2, "dkel.peers must be at least 2, got ", P);
  const std::string& ramp = options_.get("rampup");
  OKD_CHECK(ramp == "reference" || ramp == "intended",
            "dkel.rampup must be reference or intended, got '", ramp, "'");
  const bool same_fc = options_.get_bool("identical_fc_init");
  auto make = [&] {
    auto base = make_method_backbone(ctx, 0, options_.get("shortcut"), options_.get("init"));
    Generator gen(ctx.seed + 1000);
    return std::make_shared<DkelNet>(base, P, ctx.num_classes, gen, same_fc);
  };
  student_ = make();
  ema_model_ = make();
  // The teacher starts as a copy of the student (the same seeds build the same weights; the
  // copy makes it explicit).
  ema_model_->load_state_dict(student_->state_dict());
  for (auto& p : ema_model_->parameters()) p.requires_grad_(false);
  optim::EmaOptions eo;
  eo.decay = options_.get_double("ema_decay");
  eo.warmup = !options_.get_bool("ema_keep_init");
  ema_ = std::make_unique<optim::Ema>(*ema_model_, *student_, eo);
  base_lr_ = ctx.lr;
  teacher_initialised_ = false;
}

std::vector<ParamGroup> DkelMethod::param_groups() const {
  return {ParamGroup{"networks", student_->parameters(), std::nullopt, std::nullopt}};
}

double DkelMethod::rampup_weight(int64_t epoch) const {
  const bool reference = options_.get("rampup") == "reference";
  const std::string& l = options_.get("rampup_lambda");
  const double lambda =
      l == "auto" ? (reference ? 0.1 : 1.0) : options_.get_double("rampup_lambda");
  const double length = options_.get_double("rampup_epochs");
  const double e = static_cast<double>(epoch);
  return reference ? dkel_rampup_reference(e, lambda, length)
                   : dkel_rampup_intended(e, lambda, length);
}

double DkelMethod::ensemble_weight(int64_t epoch) const {
  return dkel_decay_weight(static_cast<double>(epoch), options_.get_double("exp_coef"),
                           options_.get_double("exp_cutoff"));
}

// The teacher's own initialisation: from the student's initial weights, plain SGD (lr/100, no
// momentum, weight decay 5e-4) on the mean of its peers' CE for teacher_init_iters + 1 steps.
// Deviation: the reference draws that many fresh mini-batches; okd repeats the first batch (the
// Method interface sees one batch at a time). With the reference EMA warm-up (alpha_0 = 0) the
// parameters are overwritten after the first step anyway; what survives is the BN buffers and
// the first iteration's teacher outputs.
void DkelMethod::initialise_teacher(const Batch& batch) {
  namespace F = nn::functional;
  auto params = ema_model_->parameters();
  for (auto& p : params) p.requires_grad_(true);
  optim::SGDOptions so;
  so.lr = base_lr_ / options_.get_double("teacher_init_lr_div");
  so.momentum = 0;
  so.weight_decay = 5e-4;
  optim::SGD sgd(params, so);
  const int64_t steps = options_.get_int("teacher_init_iters") + 1;
  for (int64_t s = 0; s < steps; ++s) {
    auto out = ema_model_->forward(batch.views, /*with_ensemble=*/false);
    std::vector<Tensor> ces;
    for (auto& z : out.peers) ces.push_back(F::cross_entropy(z, batch.labels));
    sgd.zero_grad();
    backward(mean_of(ces));
    sgd.step();
  }
  for (auto& p : params) {
    p.requires_grad_(false);
  }
  teacher_initialised_ = true;
}

StepResult DkelMethod::loss(const DkelNet::Output& live, const std::vector<Tensor>& m,
                            const Tensor& y, double w_r, double w_e) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = options_.get_double("T");
  const int P = static_cast<int>(live.peers.size());
  StepResult r;
  Tensor ce_en = F::cross_entropy(live.ensemble, y);
  Tensor total = ce_en;
  r.terms.emplace_back("ce_ensemble", ce_en);
  Tensor pe_sum, pm_sum;
  for (int i = 0; i < P; ++i) {
    const Tensor& z = live.peers[i];
    std::vector<Tensor> others;
    Tensor pm_ind;
    for (int j = 0; j < P; ++j) {
      if (j == i) continue;
      others.push_back(m[j]);
      Tensor t = kd_loss(z, m[j], kd);
      pm_ind = pm_ind.defined() ? pm_ind + t : t;
    }
    pm_ind = pm_ind * (1.0 / (P - 1));
    Tensor pm_ens = kd_loss(z, mean_of(others), kd);
    Tensor pe = kd_loss(z, live.ensemble, kd);
    Tensor pm = pm_ens * (w_e * w_r) + pm_ind * ((1 - w_e) * w_r);
    Tensor ce = F::cross_entropy(z, y);
    total = total + ce + pe * w_r + pm;
    r.terms.emplace_back("ce_peer" + std::to_string(i + 1), ce);
    pe_sum = pe_sum.defined() ? pe_sum + pe : pe;
    pm_sum = pm_sum.defined() ? pm_sum + pm : pm;
  }
  r.terms.emplace_back("pe", pe_sum);
  r.terms.emplace_back("pm", pm_sum);
  r.terms.emplace_back("w_rampup", scalar_term(w_r));
  r.terms.emplace_back("w_ensemble", scalar_term(w_e));
  r.loss = total;
  for (int i = 0; i < P; ++i) r.logits.emplace_back("peer" + std::to_string(i + 1), live.peers[i]);
  r.logits.emplace_back("ensemble", live.ensemble);
  return r;
}

StepResult DkelMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  if (!teacher_initialised_ && ema_->steps() == 0) initialise_teacher(batch);
  std::vector<Tensor> m;
  {
    NoGradGuard no_grad;  // the EMA model runs in train mode (its own BN statistics)
    m = ema_model_->forward(batch.views, /*with_ensemble=*/false).peers;
  }
  auto live = student_->forward(batch.views);
  return loss(live, m, batch.labels, rampup_weight(clock.epoch), ensemble_weight(clock.epoch));
}

void DkelMethod::after_update(const TrainClock&) { ema_->update(); }

std::vector<std::string> ema_and_live_members(int P) {
  std::vector<std::string> v;
  for (int i = 1; i <= P; ++i) v.push_back("ema_peer" + std::to_string(i));
  for (int i = 1; i <= P; ++i) v.push_back("peer" + std::to_string(i));
  v.push_back("ensemble");
  return v;
}

std::vector<std::pair<std::string, Tensor>> ema_and_live_logits(DkelNet& ema_net, DkelNet& live_net,
                                                                const Tensor& images) {
  const int P = live_net.num_peers();
  std::vector<Tensor> views(P, images);  // the test set is fed as identical copies
  auto ema = ema_net.forward(views, false);
  auto live = live_net.forward(views);
  std::vector<std::pair<std::string, Tensor>> v;
  for (int i = 0; i < P; ++i) v.emplace_back("ema_peer" + std::to_string(i + 1), ema.peers[i]);
  for (int i = 0; i < P; ++i) v.emplace_back("peer" + std::to_string(i + 1), live.peers[i]);
  v.emplace_back("ensemble", live.ensemble);
  return v;
}

std::vector<std::string> DkelMethod::members() const {
  return ema_and_live_members(student_ ? student_->num_peers()
                                       : static_cast<int>(options_.get_int("peers")));
}

std::vector<std::pair<std::string, Tensor>> DkelMethod::eval_logits(const Tensor& images) {
  return ema_and_live_logits(*ema_model_, *student_, images);
}

nn::NamedTensors DkelMethod::extra_state() const {
  nn::NamedTensors s;
  for (auto& [k, v] : ema_->state_dict()) s.emplace_back("ema." + k, v);
  s.emplace_back("teacher_initialised", scalar_tensor(teacher_initialised_ ? 1 : 0));
  return s;
}

void DkelMethod::load_extra_state(const nn::NamedTensors& state) {
  nn::NamedTensors ema_state;
  for (const auto& [k, v] : state) {
    if (k.rfind("ema.", 0) == 0) ema_state.emplace_back(k.substr(4), v);
    if (k == "teacher_initialised") teacher_initialised_ = v.item() != 0;
  }
  ema_->load_state_dict(ema_state);
}

std::string DkelMethod::variant_summary() const {
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "rampup %s (lambda %s), exp_coef %s, ema_decay %s, ema_keep_init %s, "
                "teacher_init_iters %s (repeats the first batch), identical_fc_init %s",
                options_.get("rampup").c_str(), options_.get("rampup_lambda").c_str(),
                options_.get("exp_coef").c_str(), options_.get("ema_decay").c_str(),
                options_.get("ema_keep_init").c_str(), options_.get("teacher_init_iters").c_str(),
                options_.get("identical_fc_init").c_str());
  return buf;
}

Recipe DkelMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "seeds.md §6.5 (official code)";
  r.nesterov = true;
  r.weight_decay = 5e-4;
  return r;
}

}  // namespace okd::distill
