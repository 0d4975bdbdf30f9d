// dml: Deep Mutual Learning (classic.md §5). K independent networks (default 2) see the same
// batch; each learns from the labels and from every peer's detached prediction:
//   L_k = CE(z_k, y) + (1/(K-1)) sum_{l != k} T^2 KL_T(sg(z_l) || z_k)      (T = 1)
// L_k updates only network k. Update orders: simultaneous (one forward, the sum of the L_k,
// one step) or sequential (the paper's algorithm: update net 1, recompute its prediction, update
// net 2, ...). Every network is deployed alone; their logit mean is reported as "ensemble".
#pragma once
#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

struct DmlLossOptions {
  double T = 1.0;
  bool mean_over_peers = true;  // 1/(K-1) (the paper); false sums (the official TF code)
  double teacher_eps = 0.0;     // added to the peer probabilities (the TF code: 1e-8)
};

// L_k for network k from the logits of all K networks (the peers are detached).
Tensor dml_network_loss(const std::vector<Tensor>& logits, const Tensor& labels, size_t k,
                        const DmlLossOptions& o, Tensor* kl_out = nullptr);

class DmlMethod : public Method {
 public:
  DmlMethod();
  std::string name() const override { return "dml"; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  void update(StepResult& result, optim::Optimizer& main, const TrainClock& clock) override;
  // Every peer's forward, CE + KL with constant T and weights, backward and SGD (both update
  // orders): static apart from the batch.
  std::string capture_blocker() const override { return ""; }
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "net1"; }
  int64_t deployed_num_parameters() const override { return nets_.at(0)->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;

  const std::vector<nn::BackbonePtr>& nets() const { return nets_; }
  DmlLossOptions loss_options() const;

 private:
  std::vector<nn::BackbonePtr> nets_;
  // The sequential order needs the batch and the first forward's logits again in update().
  Batch last_batch_;
  std::vector<Tensor> last_logits_;
};

}  // namespace okd::distill
