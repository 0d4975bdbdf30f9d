// mate: Multi-exit self-distillation with Appropriate TEachers (seeds.md §4). RECONSTRUCTED: no
// official code exists and only the abstract was read, so the architecture, losses and weights
// are the spec's assumptions, each a named option. A multi-exit backbone (an exit head after
// every stage but the last) and K ensemble teachers t_k = sum_j softmax(Theta_k)_j z_j with a
// trainable K x K matrix Theta (from 0). Every exit learns from all teachers, mainly from its
// primary one (share beta); Theta learns from the teachers' CE (exits detached) and from the KD
// terms. Deploys the final exit.
#pragma once
#include "distill/blocks/modules.h"
#include "distill/method.h"

namespace okd::distill {

// The teachers from the exits' logits: t_k = sum_j softmax(theta[k])_j * z_j. With detach_exits
// the gradient reaches theta only.
std::vector<Tensor> mate_teachers(const Tensor& theta, const std::vector<Tensor>& exits,
                                  bool detach_exits);

class MateNet : public nn::Module {
 public:
  MateNet(nn::BackbonePtr base, Generator& gen);
  // Logits of every exit, shallowest first (the last is the backbone's own classifier).
  std::vector<Tensor> forward(const Tensor& x);
  int num_exits() const { return static_cast<int>(exits_.size()) + 1; }
  const nn::BackbonePtr& base() const { return base_; }
  Tensor theta;  // [K, K], registered as "theta"

 private:
  nn::BackbonePtr base_;
  std::vector<std::shared_ptr<ExitHead>> exits_;
};

class MateMethod : public Method {
 public:
  MateMethod();
  std::string name() const override { return "mate"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  std::vector<ParamGroup> param_groups() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override;
  int64_t deployed_num_parameters() const override { return net_->base()->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  // The loss from the exits' logits at KD weight lambda (exposed for tests).
  StepResult loss(const std::vector<Tensor>& exits, const Tensor& labels, double lambda) const;
  const std::shared_ptr<MateNet>& net() const { return net_; }

 private:
  std::shared_ptr<MateNet> net_;
};

}  // namespace okd::distill
