// byot, eed and phuong: multi-exit self-distillation (classic.md §14). A backbone gets an exit
// (classifier) after every stage but the last; the backbone's own classifier is the last exit.
// Exit designs, each reaching the final feature size C_f at the final resolution:
//   bottleneck (BYOT): conv1x1(C_s -> C_f/4) -> BN -> ReLU -> conv kxk stride k -> BN -> ReLU
//                      -> conv1x1(-> C_f) -> BN -> ReLU -> GAP -> FC   (convs with bias)
//   conv_chain (EED):  conv3x3 stride 2 (no bias) -> BN -> ReLU, channels doubling to C_f, per
//                      halving of the resolution -> GAP -> FC                (distill::ExitHead)
// Losses (z_i logits, f_i pooled exit features, S the deepest exit):
//   byot:   sum_i (1-a) CE(z_i) + sum_{i<S} [ a T^2 KL_T(sg z_S || z_i) + l mean_b ||f_i - sg
//   f_S||^2 ] eed:    sum_i CE(z_i) + sum_i MSE(z_i, sg zbar) + sum_i mean[(f_i - sg fbar)^2
//   1{f_i>0 | fbar>0}] phuong: s [ (1-C) sum_i CE(z_i) + C T^2 sum_{i<S} H(softmax(sg z_S / T),
//   softmax(z_i / T)) ]
//           s = 10/S, C = 0.5; T from 1, x1.05 after a step whose batch-mean max_c softmax(z_S/T)
//           exceeds 0.5 (never decreases)
// Deploys the deepest exit (the plain backbone); "ensemble" is the mean of the exits' logits.
#pragma once
#include <memory>

#include "distill/method.h"
#include "nn/layers.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// BYOT's exit (see above): in_channels -> width -> out_channels at 1/k the resolution.
class BottleneckExit : public nn::Layer {
 public:
  BottleneckExit(int64_t in_channels, int64_t final_channels, int64_t k, int64_t num_classes,
                 Generator& gen);
  Tensor forward(const Tensor& x) override;
  Tensor features(const Tensor& x);  // pooled [N, C_f]
  nn::LayerPtr classifier() const { return fc_; }

 private:
  std::shared_ptr<nn::Sequential> convs_;
  std::shared_ptr<nn::Linear> fc_;
};

class MultiExitNet : public nn::Module {
 public:
  // design: "bottleneck" or "conv_chain"; image_size and in_channels fix the exits' geometry.
  MultiExitNet(nn::BackbonePtr base, const std::string& design, int64_t image_size,
               int64_t in_channels, Generator& gen);
  struct Output {
    std::vector<Tensor> logits;    // shallowest first; the last is the backbone's classifier
    std::vector<Tensor> features;  // pooled features of each exit, [N, C_f]
  };
  Output forward(const Tensor& x);
  int num_exits() const { return static_cast<int>(exits_.size()) + 1; }
  const nn::BackbonePtr& base() const { return base_; }

 private:
  nn::BackbonePtr base_;
  std::vector<nn::LayerPtr> exits_;
  std::vector<std::function<Tensor(const Tensor&)>> exit_features_, exit_classify_;
};

// Shared parts of the three methods: the network, members, evaluation.
class MultiExitMethod : public Method {
 public:
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}};
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override;
  int64_t deployed_num_parameters() const override { return net_->base()->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;

  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;
  // The method's loss terms (total in .loss) from the exits' outputs.
  virtual StepResult loss(const MultiExitNet::Output& out, const Tensor& labels) = 0;
  const std::shared_ptr<MultiExitNet>& net() const { return net_; }

 protected:
  explicit MultiExitMethod(const std::string& default_exit_design);
  std::shared_ptr<MultiExitNet> net_;
};

class ByotMethod : public MultiExitMethod {
 public:
  ByotMethod();
  std::string name() const override { return "byot"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  std::string variant_summary() const override;
  StepResult loss(const MultiExitNet::Output& out, const Tensor& labels) override;
};

// mean over all elements of (f - t)^2 * 1{f > 0 or t > 0} (t detached).
Tensor eed_masked_feature_mse(const Tensor& f, const Tensor& teacher);

class EedMethod : public MultiExitMethod {
 public:
  EedMethod();
  std::string name() const override { return "eed"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  std::string variant_summary() const override;
  StepResult loss(const MultiExitNet::Output& out, const Tensor& labels) override;
};

// One annealing update: T * factor if the batch-mean max softmax(teacher / T) > threshold.
double phuong_anneal(double T, const Tensor& teacher_logits, double threshold = 0.5,
                     double factor = 1.05);
// The same update in place on a float64 scalar tensor T on the teacher's device, with no host
// read: T = where(mean max softmax(teacher / T) > threshold, T * factor, T). phuong_anneal
// is this on a CPU scalar.
void phuong_anneal_(const Tensor& T, const Tensor& teacher_logits, double threshold = 0.5,
                    double factor = 1.05);

class PhuongMethod : public MultiExitMethod {
 public:
  PhuongMethod();
  std::string name() const override { return "phuong"; }
  // The temperature lives on the training device and anneals there: capturable.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  std::string variant_summary() const override;
  void build(const BuildContext& ctx) override;
  StepResult loss(const MultiExitNet::Output& out, const Tensor& labels) override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;
  void after_update(const TrainClock& clock) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  double temperature() const;  // reads the device value (a sync)

 private:
  // The temperature: a float64 scalar on the device of the logits, made from T0_ at the first
  // step and annealed in place (a captured step replays the update on the same memory).
  double T0_ = 1.0;
  Tensor T_;
  const Tensor& temperature_on(const Device& device);
  Tensor last_teacher_;  // the deepest exit's logits of the last step (no gradient)
};

}  // namespace okd::distill
