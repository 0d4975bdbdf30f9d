// Backbone: a network described as an ordered list of named stages (stem, stage1..K, head), so
// KD methods can run it up to a stage, run one stage, tap every stage's output, or build a fresh
// copy of any stage for a branch (classic.md §2.4) without touching the backbone's code.
// Parameters keep the PyTorch names of the reference code bases (conv1, bn1, layer1.0.conv1, fc):
// stages refer to registered children, they are not extra levels of naming.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace okd::nn {

// Runs named children in order (children registered under the given names).
class NamedSequential : public Layer {
 public:
  NamedSequential() : Layer("NamedSequential") {}
  void add(const std::string& name, LayerPtr layer, bool register_child = true);
  Tensor forward(const Tensor& x) override;
  const std::vector<std::pair<std::string, LayerPtr>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, LayerPtr>> items_;
};

// A stage: the layers it runs (already registered on the backbone) and a factory that builds a
// freshly initialised copy, with the same child names, from a generator.
struct Stage {
  std::string name;
  std::vector<std::pair<std::string, LayerPtr>> layers;
  int64_t out_channels = 0;  // feature channels after the stage (0 for the head)
  std::function<std::vector<std::pair<std::string, LayerPtr>>(Generator&)> factory;
};

class Backbone : public Layer {
 public:
  explicit Backbone(std::string type_name) : Layer(std::move(type_name)) {}

  int num_stages() const { return static_cast<int>(stages_.size()); }
  const Stage& stage(int i) const { return stages_.at(i); }
  // Index of a stage by name ("stem", "stage1", ..., "head"); throws listing the names.
  int stage_index(const std::string& name) const;

  Tensor run_stage(int i, const Tensor& x);
  // Stages first..last inclusive.
  Tensor run_stages(int first, int last, const Tensor& x);
  Tensor forward(const Tensor& x) override { return run_stages(0, num_stages() - 1, x); }
  // The output of every stage, in order (the last one is the logits).
  std::vector<Tensor> forward_taps(const Tensor& x);
  // The head split at its global pooling: head_features runs the head's layers before the pool
  // (WRN's final BN-ReLU; nothing for a ResNet), giving the last feature map KD methods fuse and
  // compare; head_classify runs the rest (pool, flatten, classifier). Their composition is the
  // head stage.
  Tensor head_features(const Tensor& last_stage_output);
  Tensor head_classify(const Tensor& features);
  // A freshly initialised copy of stage i (children named as in the backbone).
  std::shared_ptr<NamedSequential> make_stage(int i, Generator& gen) const;
  // Feature dimension entering the classifier.
  int64_t feature_dim() const { return feature_dim_; }
  int64_t num_classes() const { return num_classes_; }

 protected:
  // Registers the layers of a stage on the backbone and appends the stage.
  void add_stage(Stage stage);
  int64_t feature_dim_ = 0;
  int64_t num_classes_ = 0;

 private:
  std::vector<Stage> stages_;
};
using BackbonePtr = std::shared_ptr<Backbone>;

struct BackboneOptions {
  std::string arch = "resnet20";
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  char shortcut = 'B';             // CIFAR ResNet: 'A' (parameter-free) or 'B' (1x1 conv + BN)
  std::string init = "he_fanout";  // he_fanout | he_fanin | pytorch
  uint64_t seed = 0;
};

// Registers module under a dotted path ("features.denseblock1") of root, creating plain
// container modules for the leading names.
void register_path(Module& root, const std::string& path, const ModulePtr& module);

// Index of the first global-pooling layer in a head's layers (layers.size() when there is none):
// the layers before it produce the last feature map.
size_t head_pool_index(const std::vector<std::pair<std::string, LayerPtr>>& head_layers);

// Builds any backbone of the zoo by name; throws listing the known names.
BackbonePtr make_backbone(const BackboneOptions& options);
std::vector<std::string> backbone_names();

}  // namespace okd::nn
