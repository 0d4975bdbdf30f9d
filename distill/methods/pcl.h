// pcl: Peer Collaborative Learning (classic.md §10). The network is DKEL's (DkelNet, reused): a
// shared trunk run once per augmented view, m = 3 peer branches (peer j on view j) and a
// peer-ensemble head FC(m*D -> C) on the concatenated pooled peer features. A temporal-mean (EMA)
// copy of the network (no gradient, run in train mode on the same views) gives the peer mean
// teachers. With z_e the ensemble head, z_j peer j and z'_l the EMA model's peer l on view l:
//   L = CE(z_e) + sum_j [ CE(z_j) + w(e) T^2 KL_T(sg(z_e) || z_j)
//                         + w(e)/(m-1) sum_{l != j} T^2 KL_T(z'_l || z_j) ]     (T 3, ramp 80)
// The EMA is updated after every optimizer step (a_t = min(1 - 1/(t+1), 0.999)). Deploys the EMA
// trunk with EMA peer 1.
#pragma once
#include <memory>

#include "distill/method.h"
#include "distill/methods/dkel.h"
#include "optim/ema.h"

namespace okd::distill {

class PclMethod : public Method {
 public:
  PclMethod();
  std::string name() const override { return "pcl"; }
  // Static within an epoch: the EMA's warm-up alpha comes from its device step counter
  // (optim/ema.h), the ramp-ups change per epoch (recaptured). tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", student_}, {"ema", ema_model_}};
  }
  std::vector<ParamGroup> param_groups() const override;
  int num_views() const override { return static_cast<int>(options_.get_int("peers")); }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  void after_update(const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "ema_peer1"; }
  int64_t deployed_num_parameters() const override {
    return ema_model_->net()->deployed_num_parameters();
  }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;

  // The loss from the live outputs and the EMA peers' logits at ramp-up weight w.
  StepResult loss(const DkelNet::Output& live, const std::vector<Tensor>& ema_peers,
                  const Tensor& labels, double w) const;
  const std::shared_ptr<DkelNet>& student() const { return student_; }
  const std::shared_ptr<DkelNet>& ema_model() const { return ema_model_; }
  const optim::Ema& ema() const { return *ema_; }

 private:
  std::shared_ptr<DkelNet> student_, ema_model_;
  std::unique_ptr<optim::Ema> ema_;
};

}  // namespace okd::distill
