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
// bank[idx_b] <- normalize(m * bank[idx_b] + (1 - m) * v_b) for every row b (no gradient), in
// place. The indices of a batch are distinct. On a CUDA device no value is read on the host (the
// new rows are scattered into an [N, D] tensor and selected with a row mask), so a captured step
// replays it; the CPU copies the rows. Both write the same bits.
void mcl_memory_update(const Tensor& bank, const Tensor& indices, const Tensor& embeddings,
                       double momentum);

class MclMethod : public Method {
 public:
  MclMethod();
  std::string name() const override { return "mcl"; }
  std::string capture_blocker() const override { return ""; }
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
  // [B*(K+1)] dataset indices on the batch's device, sample by sample: the image itself, then K
  // negatives drawn uniformly among the training images of other classes, without replacement
  // (with replacement only when K exceeds their number, as the reference). A sample of class c
  // draws K distinct positions u in [0, N - count[c]) (ops::sample_distinct) and takes order[u]
  // when u < start[c], else order[u + count[c]] (order: the dataset indices sorted by class;
  // start, count: each class's range in it). Tensor ops only, from the method's generator: no
  // host read, and the same draws on every device for a generator state.
  Tensor sample_indices(const Tensor& indices, const Tensor& labels);
  const std::shared_ptr<BranchedNet>& net() const { return net_; }
  const std::vector<Tensor>& banks() const { return banks_; }

 private:
  std::shared_ptr<BranchedNet> net_;
  std::shared_ptr<nn::ModuleList> embed_;
  std::shared_ptr<nn::Module> memory_;  // buffers bank0..bank{m-1}, [N, dim]
  std::vector<Tensor> banks_;
  Tensor train_labels_;
  // The negative sampler's tables, made in build() on the CPU and moved to the batch's device at
  // its first (eager) step: order [N] int64, class_start and class_count [C] float64 (exact
  // integers; the device's arithmetic is floating-point).
  Tensor class_order_, class_start_, class_count_;
  Generator neg_gen_;
};

}  // namespace okd::distill
