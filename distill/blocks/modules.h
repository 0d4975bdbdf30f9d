// The trainable building blocks the KD methods add to a backbone: depthwise-separable fusion
// (FFL, FFSD), FFSD's TransFusion head and self-distillation decoders, multi-exit heads (MATE),
// and a branched network (shared trunk, copied branches: classic.md §2.4) built from any zoo
// backbone without touching its code.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// dwconv3x3(in, groups = in, no bias) -> BN -> ReLU -> conv1x1(in -> out, no bias) -> BN -> ReLU.
// Convs He-normal fan-out, BN 1/0 (seeds.md §3.2, §5.2).
class SeparableConvBlock : public nn::Layer {
 public:
  SeparableConvBlock(int64_t in_channels, int64_t out_channels, Generator& gen);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> dwconv_, pwconv_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_;
};

// Fusion module: the separable block on concatenated feature maps, then global average pool and
// a classifier (PyTorch default Linear init). FFL: in = 2c, out = c.
class FusionModule : public nn::Module {
 public:
  FusionModule(int64_t in_channels, int64_t out_channels, int64_t num_classes, Generator& gen);
  struct Output {
    Tensor fused_map, logits;  // G [N, out, H, W] and [N, classes]
  };
  // Concatenates the maps along the channels (in order) and runs the module.
  Output forward(const std::vector<Tensor>& maps);

 private:
  std::shared_ptr<SeparableConvBlock> fuse_;
  std::shared_ptr<nn::Linear> fc_;
};

// FFSD's self-distillation decoder: `up_blocks` times ConvT(c -> c/2, k3, s2, p1, output_padding
// 1, no bias) -> BN -> ReLU, PyTorch default init. forward returns the outputs reversed, shallowest
// (largest) first, so index k lines up with the backbone's stage k+1 output.
class SelfDistillDecoder : public nn::Module {
 public:
  SelfDistillDecoder(int64_t channels, int up_blocks, Generator& gen);
  std::vector<Tensor> forward(const Tensor& x);

 private:
  std::vector<std::shared_ptr<nn::Sequential>> blocks_;
};

// A multi-exit head (MATE, BYOT-style): conv3x3(stride 2) -> BN -> ReLU for each width in
// `widths`, then global average pool and FC(widths.back() -> classes). He-normal fan-out convs.
class ExitHead : public nn::Layer {
 public:
  ExitHead(int64_t in_channels, const std::vector<int64_t>& widths, int64_t num_classes,
           Generator& gen);
  Tensor forward(const Tensor& x) override;
  // The pooled features before the classifier.
  Tensor features(const Tensor& x);

 private:
  std::shared_ptr<nn::Sequential> convs_;
  std::shared_ptr<nn::Linear> fc_;
};

// A backbone split at a stage (classic.md §2.4): the stem and the stages before `split` form the
// shared trunk (split 0: nothing is shared); branch 0 runs the backbone's own later stages, so
// the trunk with branch 0 *is* the plain backbone, registered as "base" with its own parameter
// names (base.conv1.weight ... base.fc.weight); branches 1.. run fresh copies, registered as
// "branch<i>.<child name>" (e.g. branch1.layer3.0.conv1.weight, branch1.fc.weight).
class BranchedNet : public nn::Module {
 public:
  BranchedNet(nn::BackbonePtr base, int split_stage, int num_branches, Generator& gen);
  int num_branches() const { return static_cast<int>(branches_.size()); }
  int split_stage() const { return split_; }
  const nn::BackbonePtr& base() const { return base_; }

  // Stem and stages before the split.
  Tensor trunk(const Tensor& x);
  // Stages from the split through the head's layers before its global pool (WRN's final
  // BN-ReLU): branch b's last feature map.
  Tensor branch_features(int b, const Tensor& trunk_out);
  // The rest of branch b's head (pool, flatten, classifier).
  Tensor branch_head(int b, const Tensor& features);
  // Pooled features of branch b ([N, D]): the head without its classifier.
  Tensor branch_pooled(int b, const Tensor& features);
  Tensor branch_classify(int b, const Tensor& pooled);
  // The classifier (the head's last layer) of branch b.
  nn::LayerPtr classifier(int b) const;
  // Parameters of the trunk and branch 0: the deployable network.
  int64_t deployed_num_parameters() const { return base_->num_parameters(); }

 private:
  using Stages = std::vector<std::vector<std::pair<std::string, nn::LayerPtr>>>;
  nn::BackbonePtr base_;
  int split_;
  std::vector<Stages> branches_;  // per branch, its stages split..K-1 (the last is the head)
};

// He-normal fan-out conv (seeds.md §1.7), no bias unless asked.
std::shared_ptr<nn::Conv2d> he_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                    int64_t padding, int64_t groups, Generator& gen,
                                    bool bias = false);

}  // namespace okd::distill
