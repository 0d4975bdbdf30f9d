// baseline: one network trained with cross-entropy. The reference every KD method is measured
// against (same recipe, seed and epochs).
#pragma once
#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

class BaselineMethod : public Method {
 public:
  BaselineMethod();
  std::string name() const override { return "baseline"; }
  std::string description() const override {
    return "One network trained with cross-entropy (no distillation): the reference.";
  }
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  // Forward, cross-entropy, backward, SGD: nothing but the batch changes from step to step.
  std::string capture_blocker() const override { return ""; }
  std::vector<std::string> members() const override { return {"net"}; }
  std::string deployed_member() const override { return "net"; }
  int64_t deployed_num_parameters() const override { return net_->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;

 private:
  nn::BackbonePtr net_;
};

}  // namespace okd::distill
