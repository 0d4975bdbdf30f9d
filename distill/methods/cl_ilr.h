// cl-ilr: Collaborative Learning with intermediate-level representation sharing (classic.md §7).
// H classifier heads on one network share low-level stages, hierarchically (the default tree
// 1-2-4: stem + stage 1 shared by all heads, stage 2 copied twice, each copy shared by 2 heads,
// the last stage + classifier once per head) or simply (all stages but the last shared, H heads).
// Backpropagation rescaling: each shared tensor with g consumers passes through R_g (identity
// forward, gradient x 1/g), so shared layers see single-head gradient magnitudes.
//   t_h = mean_{j != h} z_j                               (the other heads' logits)
//   paper (default): L = sum_h [ beta CE(z_h) + (1 - beta) T^2 KL_T(sg(t_h) || z_h) ]  beta .5, T 2
//   okddip:          L = sum_h CE(z_h) + w(e) sum_h T^2 KL_T(t_h || z_h)   T 3, ramp 80, simple,
//                    no stop-gradient (the OKDDip authors' re-implementation)
// Deploys the path of head 1; "ensemble" is the mean of the heads' logits.
#pragma once
#include <memory>

#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// t_h = (1/(H-1)) sum_{j != h} z_j for every head h (same graph as the inputs).
std::vector<Tensor> clilr_targets(const std::vector<Tensor>& heads);

class ClIlrNet : public nn::Module {
 public:
  // hierarchical: trunk = stages before num_stages-3, 2 copies of stage num_stages-3, heads
  // copies of the rest; simple: trunk = stages before num_stages-2, heads copies of the rest.
  ClIlrNet(nn::BackbonePtr base, bool hierarchical, int heads, bool rescale, Generator& gen);
  std::vector<Tensor> forward(const Tensor& x);
  int num_heads() const { return static_cast<int>(heads_.size()); }
  bool hierarchical() const { return !mids_.empty(); }
  const nn::BackbonePtr& base() const { return base_; }
  void set_rescale(bool on) { rescale_ = on; }

 private:
  using Layers = std::vector<std::pair<std::string, nn::LayerPtr>>;
  static Tensor run(const std::vector<Layers>& stages, const Tensor& x);
  nn::BackbonePtr base_;
  int trunk_end_ = 0;                       // stages [0, trunk_end_) are the trunk
  std::vector<std::vector<Layers>> mids_;   // hierarchical: the copies of the middle stage
  std::vector<std::vector<Layers>> heads_;  // per head: its stages up to the classifier
  bool rescale_ = true;
};

class ClIlrMethod : public Method {
 public:
  ClIlrMethod();
  std::string name() const override { return "cl-ilr"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "head1"; }
  int64_t deployed_num_parameters() const override { return net_->base()->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;

  StepResult loss(const std::vector<Tensor>& heads, const Tensor& labels, int64_t epoch) const;
  const std::shared_ptr<ClIlrNet>& net() const { return net_; }
  // The resolved choices ("auto" options filled in from the variant).
  bool okddip_variant() const { return options_.get("variant") == "okddip"; }
  double temperature() const;
  bool detach_targets() const;
  std::string layout() const;

 private:
  std::shared_ptr<ClIlrNet> net_;
};

}  // namespace okd::distill
