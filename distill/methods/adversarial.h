// afd and amln: mutual learning with adversarial feature alignment (classic.md §11, §12).
// K peer networks (default 2) exchange logits as in DML and feature distributions through
// discriminators: D_k learns to call the peer's features "real" and network k's own "fake";
// network k learns to fool D_k. Peer of k: k' = k-1 mod K (the cyclic scheme; the other network
// for K = 2). Least-squares GAN terms:
//   L_logit,k = CE(z_k) + l_kl T^2 KL_T(sg z_k' || z_k)
//   L_G,k     = l_adv sum_b mean[(D_k^b(A_k^b(F_k^b)) - 1)^2] [+ l_l1 sum_b mean|A_k^b F_k^b - sg
//   A_k'^b F_k'^b|] L_D,k     = sum_b mean[(D_k^b(sg A_k'^b F_k'^b) - 1)^2] + mean[D_k^b(sg A_k^b
//   F_k^b)^2]
// Per iteration: (1) step the networks on sum_k L_logit,k; (2) recompute the features and step
// the networks on sum_k L_G,k (discriminators frozen); (3) step the discriminators (Adam) on
// sum_k L_D,k.
//   afd:  one block, the last feature map, no adaptation (A = identity), T = 3 [A].
//   amln: a RECONSTRUCTION from the abstract (an approximation, not the paper's method): every
//         stage's output adapted to the last feature map's shape (strided conv3x3-BN-ReLU chain,
//         identity for the last stage), a discriminator per stage, T = 1, l_l1 = 0.
// Every network is deployed alone; discriminators and adaptation modules are discarded.
#pragma once
#include <memory>

#include "distill/method.h"
#include "distill/methods/classic_common.h"
#include "nn/models/backbone.h"
#include "optim/adam.h"

namespace okd::distill {

class AdversarialMutualMethod : public Method {
 public:
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override;
  std::vector<ParamGroup> param_groups() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  void update(StepResult& result, optim::Optimizer& main, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "net1"; }
  int64_t deployed_num_parameters() const override { return nets_.at(0)->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;

  // The three steps of update(), exposed for tests. Steps 2 and 3 return their losses.
  void step_logits(StepResult& result, optim::Optimizer& main);
  Tensor step_generators(optim::Optimizer& main, const TrainClock& clock);
  Tensor step_discriminators(const TrainClock& clock);
  // The adapted features A_k^b(F_k^b) of every network (outer: network, inner: block).
  std::vector<std::vector<Tensor>> adapted_features(const Tensor& images,
                                                    std::vector<Tensor>* logits = nullptr);
  const std::vector<nn::BackbonePtr>& nets() const { return nets_; }
  const std::shared_ptr<nn::Module>& discriminators() const { return disc_; }
  const std::shared_ptr<nn::Module>& adapters() const { return adapt_; }
  size_t peer_of(size_t k) const { return (k + nets_.size() - 1) % nets_.size(); }

 protected:
  // all_blocks: a discriminator per stage output (amln) or only on the last feature map (afd).
  AdversarialMutualMethod(bool all_blocks, const std::string& T, const std::string& l1);
  bool all_blocks_;
  std::vector<nn::BackbonePtr> nets_;
  std::shared_ptr<nn::Module> disc_, adapt_;
  // [network][block]
  std::vector<std::vector<std::shared_ptr<FeatureDiscriminator>>> d_;
  std::vector<std::vector<nn::LayerPtr>> a_;  // null: identity
  std::unique_ptr<optim::Adam> d_opt_;
  Batch last_batch_;
  std::vector<std::vector<Tensor>> last_fake_, last_real_;  // detached, for step 3
};

class AfdMethod : public AdversarialMutualMethod {
 public:
  AfdMethod();
  std::string name() const override { return "afd"; }
  // Static within an epoch: Adam reads its step count on the device (optim/adam.cpp).
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
};

class AmlnMethod : public AdversarialMutualMethod {
 public:
  AmlnMethod();
  std::string name() const override { return "amln"; }
  // Static within an epoch: Adam reads its step count on the device (optim/adam.cpp).
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
};

}  // namespace okd::distill
