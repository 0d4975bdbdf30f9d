// okddip: Online KD with Diverse Peers (classic.md §8). A shared trunk (all stages but the last)
// feeds m-1 = 3 auxiliary peers and a group leader (copies of the last stage + classifier).
// Two shared bias-free projections W_q, W_k (d -> d/8) of the peers' pooled features give
// per-sample attention over the peers (j = i included, no 1/sqrt(d) scaling):
//   a_ij = softmax_j(<W_q h_i, W_k h_j>)      t_i = sum_j a_ij z_j      zbar = mean_i z_i
//   L = sum_i CE(z_i) + CE(z_L) + alpha w(e) [sum_i T^2 KL_T(t_i || z_i) + T^2 KL_T(zbar || z_L)]
// Nothing is detached (official code): the first-level KL is what trains W_q and W_k.
// Deploys trunk + leader.
#pragma once
#include <memory>

#include "distill/blocks/modules.h"
#include "distill/method.h"

namespace okd::distill {

// Attention targets from queries and keys [N, P, dk] and peer logits [N, P, C]: t [N, P, C];
// the attention [N, P, P] goes to *attention when given.
Tensor okddip_targets(const Tensor& q, const Tensor& k, const Tensor& logits,
                      Tensor* attention = nullptr);

class OkddipNet : public nn::Module {
 public:
  OkddipNet(nn::BackbonePtr base, int peers, Generator& gen);
  struct Output {
    std::vector<Tensor> peers;  // z_i
    Tensor leader;              // z_L
    Tensor targets;             // t [N, P, C]
    Tensor attention;           // a [N, P, P]
  };
  Output forward(const Tensor& x);
  int num_peers() const { return net_->num_branches() - 1; }
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  const std::shared_ptr<nn::Linear>& query() const { return query_; }
  const std::shared_ptr<nn::Linear>& key() const { return key_; }

 private:
  std::shared_ptr<BranchedNet> net_;  // branches 0..P-1: peers, branch P: the leader
  std::shared_ptr<nn::Linear> query_, key_;
};

class OkddipMethod : public Method {
 public:
  OkddipMethod();
  std::string name() const override { return "okddip"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "leader"; }
  int64_t deployed_num_parameters() const override;
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;

  StepResult loss(const OkddipNet::Output& out, const Tensor& labels, double w) const;
  const std::shared_ptr<OkddipNet>& net() const { return net_; }

 private:
  std::shared_ptr<OkddipNet> net_;
};

}  // namespace okd::distill
