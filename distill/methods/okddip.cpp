// OKDDip's attention targets, networks and two-level loss (classic.md §8):
//   L = sum_i CE(z_i) + CE(z_L) + alpha w(e) [sum_i T^2 KL_T(t_i || z_i) + T^2 KL_T(zbar || z_L)]
#include "distill/methods/okddip.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

Tensor okddip_targets(const Tensor& q, const Tensor& k, const Tensor& z, Tensor* attention) {
  OKD_CHECK(q.dim() == 3 && q.shape() == k.shape() && z.dim() == 3 && z.shape()[1] == q.shape()[1],
            "okddip_targets: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", logits ",
            shape_str(z.shape()));
  Tensor energy = matmul(q, transpose(k, 1, 2));  // e_ij = q_i . k_j, no 1/sqrt(d)
  Tensor a = softmax(energy, 2);
  if (attention) *attention = a;
  return matmul(a, z);
}

OkddipNet::OkddipNet(nn::BackbonePtr base, int peers, Generator& gen) : nn::Module("OkddipNet") {
  const int head = base->num_stages() - 1;
  const int64_t d = base->feature_dim();
  OKD_CHECK(d >= 8, "okddip: feature dimension ", d, " is too small for the d/8 projection");
  net_ = register_module("net", std::make_shared<BranchedNet>(base, head - 1, peers + 1, gen));
  query_ = register_module("query", std::make_shared<nn::Linear>(d, d / 8, gen, /*bias=*/false));
  key_ = register_module("key", std::make_shared<nn::Linear>(d, d / 8, gen, /*bias=*/false));
}

OkddipNet::Output OkddipNet::forward(const Tensor& x) {
  Tensor h = net_->trunk(x);
  const int P = num_peers();
  Output o;
  std::vector<Tensor> qs, ks;
  for (int i = 0; i < P; ++i) {
    Tensor pooled = net_->branch_pooled(i, net_->branch_features(i, h));
    o.peers.push_back(net_->branch_classify(i, pooled));
    qs.push_back(query_->forward(pooled));
    ks.push_back(key_->forward(pooled));
  }
  o.leader = net_->branch_head(P, net_->branch_features(P, h));
  o.targets = okddip_targets(stack(qs, 1), stack(ks, 1), stack(o.peers, 1), &o.attention);
  return o;
}

OkddipMethod::OkddipMethod() {
  options_.declare("peers", "3", "auxiliary peers (the leader is one more branch)");
  options_.declare("T", "3", "distillation temperature");
  options_.declare("alpha", "1", "weight of the distillation terms");
  options_.declare("rampup_epochs", "80", "length of the sigmoid ramp-up");
  options_.declare("detach_targets", "false",
                   "detach the attention targets and the peer mean (the official code detaches "
                   "nothing; detaching leaves W_q, W_k untrained)");
  options_.declare("teacher_eps", "0", "added to the teacher probabilities (official: 1e-7)");
}

std::string OkddipMethod::description() const {
  return "OKDDip: shared trunk, 3 auxiliary peers taught by attention-weighted peer-logit "
         "targets (shared W_q, W_k, no detach) and a group leader taught by the peer mean "
         "(T = 3, ramp-up 80). Deploys the leader.";
}

void OkddipMethod::build(const BuildContext& ctx) {
  const int P = static_cast<int>(options_.get_int("peers"));
  OKD_CHECK(P >= 2, "okddip.peers must be at least 2, got ", P);
  auto base = make_method_backbone(ctx, 0);
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<OkddipNet>(base, P, gen);
}

int64_t OkddipMethod::deployed_num_parameters() const {
  // trunk + the leader's branch (same size as the backbone's own last stages)
  return net_->net()->deployed_num_parameters();
}

StepResult OkddipMethod::loss(const OkddipNet::Output& o, const Tensor& y, double w) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.detach_teacher = options_.get_bool("detach_targets");
  kd.teacher_eps = options_.get_double("teacher_eps");
  const double alpha = options_.get_double("alpha");
  StepResult r;
  Tensor total, kl_peers;
  for (size_t i = 0; i < o.peers.size(); ++i) {
    Tensor ce = F::cross_entropy(o.peers[i], y);
    Tensor kl = kd_loss(o.peers[i], select(o.targets, 1, static_cast<int64_t>(i)), kd);
    total = total.defined() ? total + ce : ce;
    kl_peers = kl_peers.defined() ? kl_peers + kl : kl;
    r.terms.emplace_back("ce_peer" + std::to_string(i + 1), ce);
    r.logits.emplace_back("peer" + std::to_string(i + 1), o.peers[i]);
  }
  Tensor zbar = mean_of(o.peers);
  Tensor ce_l = F::cross_entropy(o.leader, y);
  Tensor kl_l = kd_loss(o.leader, zbar, kd);
  r.loss = total + ce_l + (kl_peers + kl_l) * (alpha * w);
  r.terms.emplace_back("ce_leader", ce_l);
  r.terms.emplace_back("kl_peers", kl_peers);
  r.terms.emplace_back("kl_leader", kl_l);
  r.terms.emplace_back("w_rampup", scalar_term(w));
  r.logits.emplace_back("leader", o.leader);
  r.logits.emplace_back("peer_mean", zbar);
  return r;
}

StepResult OkddipMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  const double w =
      sigmoid_rampup(static_cast<double>(clock.epoch), options_.get_double("rampup_epochs"));
  return loss(net_->forward(batch.images()), batch.labels, w);
}

std::vector<std::string> OkddipMethod::members() const {
  std::vector<std::string> v;
  const int64_t P = options_.get_int("peers");
  for (int64_t i = 1; i <= P; ++i) v.push_back("peer" + std::to_string(i));
  v.push_back("leader");
  v.push_back("peer_mean");
  return v;
}

std::vector<std::pair<std::string, Tensor>> OkddipMethod::eval_logits(const Tensor& images) {
  auto o = net_->forward(images);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t i = 0; i < o.peers.size(); ++i)
    v.emplace_back("peer" + std::to_string(i + 1), o.peers[i]);
  v.emplace_back("leader", o.leader);
  v.emplace_back("peer_mean", mean_of(o.peers));
  return v;
}

std::string OkddipMethod::variant_summary() const {
  char buf[260];
  std::snprintf(buf, sizeof buf,
                "%s peers + leader, T %s, alpha %s, ramp-up %s epochs, detach_targets %s, "
                "teacher_eps %s, attention d/8 without 1/sqrt(d)",
                options_.get("peers").c_str(), options_.get("T").c_str(),
                options_.get("alpha").c_str(), options_.get("rampup_epochs").c_str(),
                options_.get("detach_targets").c_str(), options_.get("teacher_eps").c_str());
  return buf;
}

}  // namespace okd::distill
