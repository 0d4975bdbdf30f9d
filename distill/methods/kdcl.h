// kdcl: Online KD via Collaborative Learning (classic.md §9). m independent students (default 2),
// each on its own augmented view of the image; a soft target built by ensembling their logits
// (detached, no gradient through the ensemble weights) is distilled into every student:
//   L = sum_i [ CE(z_i, y) + lambda T^2 KL_T(sg(z_t) || z_i) ]                 (lambda 1, T 2)
// Ensembles (per sample unless stated):
//   minlogit (default): z_t,c = min_i (z_i,c - z_i,y)
//   naive:   z_t = z_k, k = argmin_i CE(z_i, y)
//   mean:    z_t = mean_i z_i (the naive-averaging baseline, not KDCL proper)
//   linear:  z_t = sum_i a_i z_i, a = argmin over the simplex of the batch CE (exponentiated
//            gradient, a constant afterwards)
//   general: z_t = sum_i w_i z_i, w = C^-1 1 / (1' C^-1 1), C_ij = mean_k (f_i - e_y).(f_j - e_y)
//            over softmax outputs f; DEVIATION: C comes from the previous epoch's training
//            batches (the Method interface sees no held-out split); uniform in epoch 0.
// Every student is deployed alone.
#pragma once
#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// The ensembles, on logits [N, C] (no gradient; results have the logits' dtype).
Tensor kdcl_minlogit(const std::vector<Tensor>& logits, const Tensor& labels);
Tensor kdcl_naive(const std::vector<Tensor>& logits, const Tensor& labels);
// Simplex weights minimising the batch CE of sum_i a_i z_i: `steps` exponentiated-gradient
// steps of size lr from the uniform point, as a tensor [m] on the logits' device
// (kdcl_linear_alpha, what the method uses) or as host values (kdcl_linear_weights).
Tensor kdcl_linear_alpha(const std::vector<Tensor>& logits, const Tensor& labels, int steps,
                         double lr);
std::vector<double> kdcl_linear_weights(const std::vector<Tensor>& logits, const Tensor& labels,
                                        int steps, double lr);
// w = C^-1 1 / (1' C^-1 1) for a symmetric m x m matrix (row-major); uniform if C is singular.
std::vector<double> kdcl_general_weights(const std::vector<double>& C, int m);
Tensor weighted_logits(const std::vector<Tensor>& logits, const std::vector<double>& w);
Tensor weighted_logits(const std::vector<Tensor>& logits, const Tensor& alpha);

class KdclMethod : public Method {
 public:
  KdclMethod();
  std::string name() const override { return "kdcl"; }
  // Static within an epoch (per-epoch weights are recaptured): tests/device, --cuda-graph runs.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override;
  int num_views() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  void on_epoch_start(const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "net1"; }
  int64_t deployed_num_parameters() const override { return nets_.at(0)->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;

  // The target for the students' logits (detached inside).
  Tensor ensemble_target(const std::vector<Tensor>& logits, const Tensor& labels) const;
  const std::vector<nn::BackbonePtr>& nets() const { return nets_; }
  const std::vector<double>& general_weights() const { return general_w_; }

 private:
  std::vector<nn::BackbonePtr> nets_;
  std::vector<double> general_w_;  // the general ensemble's weights in use
  Tensor cov_sum_;  // [m, m] float64 on the device: sum_k (f_i - e).(f_j - e) this epoch
  double cov_count_ = 0;
};

}  // namespace okd::distill
