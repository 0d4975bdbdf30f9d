// dkel: Decoupled Knowledge with Ensemble Learning (seeds.md §6), a PCL-style method. A shared
// trunk runs once per augmented view; three peer branches (one view each) and a peer-ensemble
// head (an FC on the concatenated pooled features) are trained together. A temporal-mean (EMA)
// copy of the network, given its own short initialisation, teaches each peer through the other
// peers' EMA outputs: early on from their average with a fast-decaying weight (the "decaying
// ensemble"), later from each of them. The ensemble head is distilled into every peer. The
// reference ramp-up has a bug that is the default (dkel.rampup = reference); the intended one is
// an option. Deploys the EMA trunk with one peer branch.
#pragma once
#include <memory>

#include "distill/blocks/modules.h"
#include "distill/method.h"
#include "optim/ema.h"

namespace okd::distill {

// Trunk + peers (a BranchedNet, "net") + the peer-ensemble head ("ensemble_fc").
class DkelNet : public nn::Module {
 public:
  DkelNet(nn::BackbonePtr base, int peers, int64_t num_classes, Generator& gen,
          bool identical_fc_init);
  struct Output {
    std::vector<Tensor> peers;  // z_i, peer i on view i
    Tensor ensemble;            // z_en (undefined when with_ensemble is false)
  };
  Output forward(const std::vector<Tensor>& views, bool with_ensemble = true);
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  int num_peers() const { return net_->num_branches(); }

 private:
  std::shared_ptr<BranchedNet> net_;
  std::shared_ptr<nn::Linear> ensemble_fc_;
};

// Shared by dkel and pcl: the members ema_peer1..P, peer1..P, ensemble, and their test logits
// (the test images fed to every peer as identical views).
std::vector<std::string> ema_and_live_members(int peers);
std::vector<std::pair<std::string, Tensor>> ema_and_live_logits(DkelNet& ema, DkelNet& live,
                                                                const Tensor& images);

class DkelMethod : public Method {
 public:
  DkelMethod();
  std::string name() const override { return "dkel"; }
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
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  // Ramp-up and decaying-ensemble weights of an epoch (from 0).
  double rampup_weight(int64_t epoch) const;
  double ensemble_weight(int64_t epoch) const;
  // The loss from the live outputs and the EMA peers' logits (exposed for tests).
  StepResult loss(const DkelNet::Output& live, const std::vector<Tensor>& ema_peers,
                  const Tensor& labels, double w_r, double w_e) const;
  const std::shared_ptr<DkelNet>& student() const { return student_; }
  const std::shared_ptr<DkelNet>& ema_model() const { return ema_model_; }
  const optim::Ema& ema() const { return *ema_; }

 private:
  void initialise_teacher(const Batch& batch);
  std::shared_ptr<DkelNet> student_, ema_model_;
  std::unique_ptr<optim::Ema> ema_;
  bool teacher_initialised_ = false;
  double base_lr_ = 0.1;
};

}  // namespace okd::distill
