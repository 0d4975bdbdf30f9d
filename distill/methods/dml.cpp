// DML's networks, loss and update orders (classic.md §5):
//   L_k = CE(z_k, y) + c * sum_{l != k} T^2 KL_T(sg(z_l) || z_k),   c = 1/(K-1) (or 1: "sum")
#include "distill/methods/dml.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/classic_common.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "optim/optimizer.h"

namespace okd::distill {

Tensor dml_network_loss(const std::vector<Tensor>& z, const Tensor& y, size_t k,
                        const DmlLossOptions& o, Tensor* kl_out) {
  KdOptions kd;
  kd.T = o.T;
  kd.detach_teacher = true;
  kd.teacher_eps = o.teacher_eps;
  Tensor kl;
  for (size_t l = 0; l < z.size(); ++l) {
    if (l == k) continue;
    Tensor t = kd_loss(z[k], z[l], kd);
    kl = kl.defined() ? kl + t : t;
  }
  if (o.mean_over_peers) kl = kl * (1.0 / static_cast<double>(z.size() - 1));
  if (kl_out) *kl_out = kl;
  return nn::functional::cross_entropy(z[k], y) + kl;
}

DmlMethod::DmlMethod() {
  options_.declare("peers", "2", "number of networks K");
  options_.declare("T", "1", "temperature of the mimicry KL (DML uses 1; the T^2 factor is kept)");
  options_.declare("peer_reduction", "mean",
                   "mean: 1/(K-1) sum over peers (the paper); sum: no 1/(K-1) (the official "
                   "TF code); identical for K = 2");
  options_.declare("teacher_eps", "0",
                   "added to the peer probabilities inside the KL (the TF code: 1e-8)");
  options_.declare("update", "simultaneous",
                   "simultaneous: one forward, sum of the L_k, one step (PyTorch reproductions); "
                   "sequential: update net 1, recompute its prediction, update net 2, ... (the "
                   "paper's algorithm)");
}

std::string DmlMethod::description() const {
  return "DML: K independent networks trained together; each learns from the labels and the "
         "KL to every peer's detached prediction (T = 1). Each network is deployed alone.";
}

void DmlMethod::build(const BuildContext& ctx) {
  const int64_t K = options_.get_int("peers");
  OKD_CHECK(K >= 2, "dml.peers must be at least 2, got ", K);
  const std::string& upd = options_.get("update");
  OKD_CHECK(upd == "simultaneous" || upd == "sequential",
            "dml.update must be simultaneous or sequential, got '", upd, "'");
  const std::string& red = options_.get("peer_reduction");
  OKD_CHECK(red == "mean" || red == "sum", "dml.peer_reduction must be mean or sum, got '", red,
            "'");
  nets_.clear();
  // Each network has its own initialisation (seed offset k).
  for (int64_t k = 0; k < K; ++k) nets_.push_back(make_method_backbone(ctx, 100 * k));
}

std::vector<std::pair<std::string, nn::ModulePtr>> DmlMethod::networks() const {
  std::vector<std::pair<std::string, nn::ModulePtr>> v;
  for (size_t k = 0; k < nets_.size(); ++k) v.emplace_back("net" + std::to_string(k + 1), nets_[k]);
  return v;
}

DmlLossOptions DmlMethod::loss_options() const {
  DmlLossOptions o;
  o.T = options_.get_double("T");
  o.mean_over_peers = options_.get("peer_reduction") == "mean";
  o.teacher_eps = options_.get_double("teacher_eps");
  return o;
}

StepResult DmlMethod::forward_train(const Batch& batch, const TrainClock&) {
  std::vector<Tensor> z;
  for (auto& net : nets_) z.push_back(net->forward(batch.images()));
  const DmlLossOptions o = loss_options();
  StepResult r;
  for (size_t k = 0; k < z.size(); ++k) {
    Tensor kl;
    Tensor lk = dml_network_loss(z, batch.labels, k, o, &kl);
    r.loss = r.loss.defined() ? r.loss + lk : lk;
    r.terms.emplace_back("ce_net" + std::to_string(k + 1), lk - kl);
    r.terms.emplace_back("kl_net" + std::to_string(k + 1), kl);
    r.logits.emplace_back("net" + std::to_string(k + 1), z[k]);
  }
  r.logits.emplace_back("ensemble", mean_of(z));
  if (options_.get("update") == "sequential") {
    last_batch_ = batch;
    last_logits_ = z;
  }
  return r;
}

// Sequential: for k = 1..K, L_k from net k's logits of the first forward (net k has not changed
// yet; its graph is retained) and the peers' current predictions: nets updated earlier in this
// step are recomputed (no gradient, BN running statistics restored so that they count one
// forward per step), later ones keep their first-forward logits.
void DmlMethod::update(StepResult& result, optim::Optimizer& main, const TrainClock& clock) {
  if (options_.get("update") != "sequential") {
    Method::update(result, main, clock);
    return;
  }
  const DmlLossOptions o = loss_options();
  std::vector<Tensor> z = last_logits_;
  const size_t K = nets_.size();
  for (size_t k = 0; k < K; ++k) {
    if (k > 0) {
      NoGradGuard no_grad;
      BufferSnapshot snapshot(*nets_[k - 1]);
      z[k - 1] = nets_[k - 1]->forward(last_batch_.images());
      snapshot.restore();
    }
    Tensor lk = dml_network_loss(z, last_batch_.labels, k, o);
    main.zero_grad();
    backward(lk, {}, /*retain_graph=*/k + 1 < K);
    main.step();
  }
  last_logits_.clear();
  last_batch_ = Batch{};
}

std::vector<std::string> DmlMethod::members() const {
  std::vector<std::string> v;
  const int64_t K = nets_.empty() ? options_.get_int("peers") : static_cast<int64_t>(nets_.size());
  for (int64_t k = 1; k <= K; ++k) v.push_back("net" + std::to_string(k));
  v.push_back("ensemble");
  return v;
}

std::vector<std::pair<std::string, Tensor>> DmlMethod::eval_logits(const Tensor& images) {
  std::vector<std::pair<std::string, Tensor>> v;
  std::vector<Tensor> z;
  for (size_t k = 0; k < nets_.size(); ++k) {
    z.push_back(nets_[k]->forward(images));
    v.emplace_back("net" + std::to_string(k + 1), z.back());
  }
  v.emplace_back("ensemble", mean_of(z));
  return v;
}

std::string DmlMethod::variant_summary() const {
  char buf[240];
  std::snprintf(buf, sizeof buf, "K %s, T %s, peer_reduction %s, teacher_eps %s, update %s",
                options_.get("peers").c_str(), options_.get("T").c_str(),
                options_.get("peer_reduction").c_str(), options_.get("teacher_eps").c_str(),
                options_.get("update").c_str());
  return buf;
}

}  // namespace okd::distill
