// mcl: MCL-OKD, multi-view contrastive learning for online KD (classic.md §13). Four branches
// share the stem and stage 1; each has an embedding head (Linear d -> 128, L2-normalised) and a
// memory bank of every training image's embedding. Each branch's embedding of an image is pulled
// towards the other branches' bank entries of the same image and pushed from K images of other
// classes (an NCE objective with a per-step normaliser); the detached mean of all branches'
// logits is distilled into the last branch (DOT), which is the one deployed.
#pragma once
#include <memory>

#include "distill/blocks/modules.h"
#include "distill/method.h"

namespace okd::distill {

// NCE loss of normalised scores P [B, K+1] (column 0: the positive) against a noise distribution
// of K/N per sample: -(1/B) sum_b [log(P_b0/(P_b0 + K/N + eps)) + sum_k log((K/N)/(P_bk + K/N +
// eps))].
Tensor mcl_nce_loss(const Tensor& scores, int64_t dataset_size, double eps = 1e-7);
// bank[idx_b] <- normalize(m * bank[idx_b] + (1 - m) * v_b) for every row b (no gradient).
void mcl_memory_update(const Tensor& bank, const Tensor& indices, const Tensor& embeddings,
                       double momentum);

class MclMethod : public Method {
 public:
  MclMethod();
  std::string name() const override { return "mcl"; }
  std::string capture_blocker() const override {
    return "its negatives are drawn on the host from the batch's indices and labels";
  }
  std::string description() const override;
  void build(const BuildContext& ctx) override;
  std::vector<std::pair<std::string, nn::ModulePtr>> networks() const override {
    return {{"net", net_}, {"embed", embed_}, {"memory", memory_}};
  }
  std::vector<ParamGroup> param_groups() const override;
  StepResult forward_train(const Batch& batch, const TrainClock& clock) override;
  std::vector<std::string> members() const override;
  std::string deployed_member() const override;
  int64_t deployed_num_parameters() const override { return net_->deployed_num_parameters(); }
  std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) override;
  nn::NamedTensors extra_state() const override;
  void load_extra_state(const nn::NamedTensors& state) override;
  std::string variant_summary() const override;
  Recipe reference_recipe(const std::string& dataset, const std::string& arch) const override;

  struct Output {
    std::vector<Tensor> logits, embeddings;  // per branch; embeddings L2-normalised [B, dim]
  };
  Output forward(const Tensor& images);
  // The loss for a batch (indices: each image's dataset index); updates the memory banks after
  // the scores are computed when update_memory is true.
  StepResult loss(const Output& out, const Batch& batch, bool update_memory);
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  const std::vector<Tensor>& banks() const { return banks_; }

 private:
  Tensor sample_indices(const Tensor& indices, const Tensor& labels);
  std::shared_ptr<BranchedNet> net_;
  std::shared_ptr<nn::ModuleList> embed_;
  std::shared_ptr<nn::Module> memory_;  // buffers bank0..bank{m-1}, [N, dim]
  std::vector<Tensor> banks_;
  Tensor train_labels_;
  Generator neg_gen_;
};

}  // namespace okd::distill
