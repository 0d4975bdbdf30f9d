// one: On-the-fly Native Ensemble (classic.md §6). A shared trunk (all stages but the last) feeds
// m branches (copies of the last stage + classifier) and a gate on the trunk output:
//   g = softmax(ReLU(BN1d(FC(GAP(trunk)))))  [N, m]         z_e = sum_i g_i * z_i (logits)
//   L = sum_i CE(z_i) + CE(z_e) + w(e) sum_i T^2 KL_T(sg(z_e) || z_i)        (T = 3, ramp 80)
// The teacher is detached (official code), so the gate learns only from CE(z_e). Deploys
// trunk + branch 1; "ensemble" is the gated teacher (ONE-E).
#pragma once
#include <memory>

#include "distill/blocks/modules.h"
#include "distill/method.h"

namespace okd::distill {

// g = softmax over branches of ReLU(scores), scores [N, m] (after the gate's BN).
Tensor one_gate_weights(const Tensor& scores);
// z_e = sum_i g[:, i] * z_i, g [N, m], each z_i [N, C].
Tensor gated_ensemble(const Tensor& gate, const std::vector<Tensor>& logits);

class OneNet : public nn::Module {
 public:
  OneNet(nn::BackbonePtr base, int branches, Generator& gen);
  struct Output {
    std::vector<Tensor> branches;  // z_i
    Tensor gate;                   // g [N, m]
    Tensor ensemble;               // z_e
  };
  Output forward(const Tensor& x);
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  const std::shared_ptr<nn::Linear>& gate_fc() const { return gate_fc_; }
  const std::shared_ptr<nn::BatchNorm>& gate_bn() const { return gate_bn_; }

 private:
  std::shared_ptr<BranchedNet> net_;
  std::shared_ptr<nn::Linear> gate_fc_;
  std::shared_ptr<nn::BatchNorm> gate_bn_;
};

class OneMethod : public Method {
 public:
  OneMethod();
  std::string name() const override { return "one"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "branch1"; }
  int64_t deployed_num_parameters() const override {
    return net_->net()->deployed_num_parameters();
  }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  // The loss from the network's output at ramp-up weight w (exposed for tests).
  StepResult loss(const OneNet::Output& out, const Tensor& labels, double w) const;
  const std::shared_ptr<OneNet>& net() const { return net_; }

 private:
  std::shared_ptr<OneNet> net_;
};

}  // namespace okd::distill
