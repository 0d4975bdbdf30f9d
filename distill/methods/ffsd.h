// ffsd: Feature Fusion and Self-Distillation (seeds.md §5). Two common students learn from each
// other (DML, T = 2); a fusion module on their detached last feature maps is taught by their
// average; the fused prediction and fused map teach a separate leader (with a TransFusion head
// used only for a loss). The second student is pushed away from a shifted version of the first
// student's attention (diversity), and transposed-conv decoders map a network's last feature map
// back to its shallower stages (self-distillation). Deploys the leader, a plain backbone.
//
// Update order: the reference steps students, fusion module, leader and decoders one after
// another, each on losses computed from the activations of the forward passes at the start of
// the iteration. Every cross-network term is detached (a test proves it), so okd sums the losses
// and runs one backward: each parameter receives exactly the gradient of its own loss, and each
// group keeps its own optimizer state (Nesterov SGD for the networks, weight decay 1e-5 for the
// fusion module, Adam with coupled L2 for the decoders).
#pragma once
#include <memory>

#include "distill/blocks/modules.h"
#include "distill/method.h"
#include "optim/adam.h"

namespace okd::distill {

// The leader: a backbone ("base") and its TransFusion head ("transfusion").
class FfsdLeader : public nn::Module {
 public:
  FfsdLeader(nn::BackbonePtr base, int64_t students, Generator& gen);
  nn::BackbonePtr base;
  std::shared_ptr<SeparableConvBlock> transfusion;
};

class FfsdMethod : public Method {
 public:
  FfsdMethod();
  std::string name() const override { return "ffsd"; }
  // Static within an epoch: Adam reads its step count on the device (optim/adam.cpp).
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override;
  std::vector<ParamGroup> param_groups() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  void update(StepResult& result, optim::Optimizer& main, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "leader"; }
  int64_t deployed_num_parameters() const override { return leader_->base->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  // The four losses of an iteration (their sum is StepResult::loss), for the no-leakage test.
  struct Losses {
    Tensor students, fusion, leader, decoders;
  };
  Losses compute(const Batch& batch, int64_t epoch, StepResult* result);

  const std::vector<nn::BackbonePtr>& students() const { return students_; }
  const std::shared_ptr<FfsdLeader>& leader() const { return leader_; }
  const std::shared_ptr<FusionModule>& fusion() const { return fusion_; }
  const std::shared_ptr<nn::Module>& decoders() const { return decoders_; }

 private:
  std::vector<nn::BackbonePtr> students_;
  std::shared_ptr<FfsdLeader> leader_;
  std::shared_ptr<FusionModule> fusion_;
  std::vector<std::shared_ptr<SelfDistillDecoder>> student_decoders_;  // students 2..M
  std::shared_ptr<SelfDistillDecoder> leader_decoder_;
  std::shared_ptr<nn::Module> decoders_;  // holds all decoders: student2..M, leader
  std::unique_ptr<optim::Adam> decoder_opt_;
};

}  // namespace okd::distill
