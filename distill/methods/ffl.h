// ffl: Feature Fusion Learning (seeds.md §3). Two sub-networks share the low-level stages and
// duplicate the last one; their last feature maps, concatenated, feed a depthwise-separable
// fusion module with its own classifier. The fused classifier teaches both sub-networks and the
// logit average of the sub-networks teaches the fused classifier (T = 3, teachers detached, 1e-7
// on the teacher probabilities, sigmoid ramp-up over 80 epochs). The fusion inputs are NOT
// detached. The fusion module has its own weight decay (1e-5). Deploys sub-network 1 (FFL-S).
#pragma once
#include "distill/blocks/modules.h"
#include "distill/method.h"

namespace okd::distill {

class FflMethod : public Method {
 public:
  FflMethod();
  std::string name() const override { return "ffl"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}, {"fusion", fusion_}};
  }
  std::vector<ParamGroup> param_groups() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override { return {"sub1", "sub2", "fused"}; }
  std::string deployed_member() const override { return "sub1"; }
  int64_t deployed_num_parameters() const override { return net_->deployed_num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  struct Output {
    Tensor z1, z2, zf;  // sub-network and fused logits
  };
  Output forward(const Tensor& images);
  // The loss from the three logits at ramp-up weight w (exposed for tests).
  StepResult loss(const Output& out, const Tensor& labels, double w) const;
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  const std::shared_ptr<FusionModule>& fusion() const { return fusion_; }

 private:
  std::shared_ptr<BranchedNet> net_;
  std::shared_ptr<FusionModule> fusion_;
};

}  // namespace okd::distill
