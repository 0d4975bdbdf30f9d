// ekd-fws: EKD-FWSNet (seeds.md §2). One network with "classmate" paths that leave the backbone
// after each stage but the last and run shared copies of the later stages (the weight-sharing
// part): for a CIFAR ResNet, cm1 = cm_stage3(cm_stage2(fa(h1))) and cm2 = cm_stage3(fa(h2)).
// The logit-average ensemble of all paths teaches the main path with a mean-over-all KL (weight
// 60 on CIFAR-100 / 15 on CIFAR-10, T = 3), and a z-scored channel-sum attention MSE pulls the
// main path's last feature map towards the paths' mean. Nothing is detached. Deploys the main
// path, which is exactly the plain backbone.
#pragma once
#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// The EKD network: the backbone (main path, registered as "base") plus the classmate copies
// "cm_<stage>" (one per stage after the first, shared by every path that runs it) and one head
// "cm_head<j>" per classmate path.
class EkdNet : public nn::Module {
 public:
  EkdNet(nn::BackbonePtr base, Generator& gen);
  struct Output {
    std::vector<Tensor> logits;    // main, cm1, cm2, ...
    std::vector<Tensor> features;  // the last stage's output of each path
  };
  // fa = feature augmentation applied where a classmate path leaves (dropout p, active in
  // training only).
  Output forward(const Tensor& x, double fa_dropout, Generator& fa_gen);
  int num_paths() const { return static_cast<int>(cm_heads_.size()) + 1; }
  const nn::BackbonePtr& base() const { return base_; }
  // The classmate copy of feature stage s (1-based, s >= 2).
  const std::shared_ptr<nn::NamedSequential>& classmate_stage(int s) const {
    return cm_stages_.at(s - 2);
  }

 private:
  nn::BackbonePtr base_;
  int feature_stages_;                                           // S: stages between stem and head
  std::vector<std::shared_ptr<nn::NamedSequential>> cm_stages_;  // stages 2..S
  std::vector<std::shared_ptr<nn::NamedSequential>> cm_heads_;   // paths 1..S-1
};

class EkdFwsMethod : public Method {
 public:
  EkdFwsMethod();
  std::string name() const override { return "ekd-fws"; }
  // Static within an epoch: its dropout masks come from the generator's device counter (each
  // replay draws new ones, tensor/random.h). tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "main"; }
  int64_t deployed_num_parameters() const override { return net_->base()->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  // The loss of one batch from the paths' logits and last feature maps (exposed for tests).
  StepResult loss(const EkdNet::Output& out, const Tensor& labels) const;
  const std::shared_ptr<EkdNet>& net() const { return net_; }

 private:
  std::shared_ptr<EkdNet> net_;
  Generator fa_gen_;
  double kl_weight_ = 0, aux_ce_weight_ = 0;
};

}  // namespace okd::distill
