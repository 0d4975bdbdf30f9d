// kd and at: the offline baselines (classic.md §3, §4). A frozen teacher trained by okd (eval
// mode, no gradient, on the same augmented batch) teaches a student of --arch.
//   kd: L = w_ce CE(z_s, y) + w_kd T^2 KL_T(sg(z_t) || z_s)          (w_ce 0.1, w_kd 0.9, T 4)
//   at: L = w_ce CE(z_s, y) + w_kd T^2 KL_T(...) + beta sum_j mean_{b,hw}(a_S^j - a_T^j)^2
//       a = per-sample l2-normalised mean_c F^2 of each stage output     (w_ce 1, w_kd 0, beta
//       1000)
// Only the student is trained and deployed; the teacher is evaluated as a member for reference.
#pragma once
#include "distill/method.h"
#include "distill/methods/teacher.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// L = ce_weight CE(z_s, y) + kd_weight T^2 KL_T(sg(z_t) || z_s).
Tensor kd_objective(const Tensor& student, const Tensor& teacher, const Tensor& labels,
                    double ce_weight, double kd_weight, double T);
// beta * sum_j mean_{b,hw} (l2n(mean_c S_j^2) - l2n(mean_c sg(T_j)^2))^2; a larger map is
// adaptive-average-pooled to the smaller one first.
Tensor attention_transfer_loss(const std::vector<Tensor>& student_maps,
                               const std::vector<Tensor>& teacher_maps, double beta);

class KdMethod : public Method {
 public:
  KdMethod();
  std::string name() const override { return "kd"; }
  // Static: the frozen teacher and the student's loss weights do not change per step.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"student", student_}};  // the frozen teacher is neither trained nor checkpointed
  }
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override { return "student"; }
  int64_t deployed_num_parameters() const override { return student_->num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  std::string variant_summary() const override;

  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;
  const nn::BackbonePtr& student() const { return student_; }
  const nn::BackbonePtr& teacher() const { return teacher_.net; }

 protected:
  // Defaults differ between kd and at.
  KdMethod(const std::string& ce_weight, const std::string& kd_weight);
  nn::BackbonePtr student_;
  LoadedTeacher teacher_;
};

class AtMethod : public KdMethod {
 public:
  AtMethod();
  std::string name() const override { return "at"; }
  // Static: the frozen teacher and the student's loss weights do not change per step.
  std::string capture_blocker() const override { return ""; }
  std::string description() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::string variant_summary() const override;
};

}  // namespace okd::distill
