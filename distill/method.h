// The Method interface every training scheme implements (baseline, DML, ONE, FFL, FFSD, ...),
// and the registry that maps --method NAME to one. A method builds its networks for a backbone
// and dataset, computes the total loss and every named loss term for a batch, names the members
// that are evaluated (peer0, ensemble, leader, fusion, exit2 ...) and the one that is deployed,
// and owns any extra optimizer it needs. The trainer (apps/train_cifar) owns the main optimizer,
// the schedule, the data, the checkpoints and the logs.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "optim/optimizer.h"
#include "tensor/tensor.h"

namespace okd::distill {

// A method's options, declared with defaults and help, set from --<method>.<key> flags or a
// config file. Unknown keys and unparsable values are errors that name the key.
class Options {
 public:
  struct Spec {
    std::string key, default_value, help, value;
  };
  void declare(const std::string& key, const std::string& default_value, const std::string& help);
  void set(const std::string& key, const std::string& value);
  bool has(const std::string& key) const;
  const std::string& get(const std::string& key) const;
  double get_double(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::vector<Spec>& specs() const { return specs_; }
  std::vector<Spec>& specs() { return specs_; }

 private:
  const Spec& find(const std::string& key) const;
  std::vector<Spec> specs_;
};

struct BuildContext {
  std::string arch = "resnet20";
  std::string dataset = "fashion-mnist";
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  int64_t image_size = 32;
  char shortcut = 'B';             // CIFAR ResNet shortcut option (a method may override)
  std::string init = "he_fanout";  // weight initialisation scheme (nn/models/zoo_internal.h)
  uint64_t seed = 0;
  double lr = 0.1;  // the run's base learning rate (--lr)
  Device device = kCPU;
  int64_t epochs = 1;
  int64_t iters_per_epoch = 1;
  Tensor train_labels;  // int64 [N]: every training label in dataset order (memory banks)
};

// Where training is: epochs and steps count from 0.
struct TrainClock {
  int64_t epoch = 0, epochs = 1;
  int64_t step_in_epoch = 0, iters_per_epoch = 1;
  double lr_factor = 1.0;  // the schedule's factor of the base lr at this step (extra optimizers)
  int64_t global_step() const { return epoch * iters_per_epoch + step_in_epoch; }
};

struct Batch {
  std::vector<Tensor> views;  // num_views() independent augmentations, each [N, C, H, W]
  Tensor labels;              // [N] int64
  Tensor indices;  // [N] int64: each image's index in the training set (may be undefined)
  const Tensor& images() const { return views.at(0); }
  int64_t size() const { return labels.numel(); }
};

struct StepResult {
  Tensor loss;                                         // total loss, a scalar
  std::vector<std::pair<std::string, Tensor>> terms;   // every named term (scalars)
  std::vector<std::pair<std::string, Tensor>> logits;  // per member, for train accuracy
};

// A group of parameters the main optimizer treats alike (FFL gives its fusion module its own
// weight decay, for one). Unset fields take the run's --lr / --weight-decay.
struct ParamGroup {
  std::string name;
  std::vector<Tensor> params;
  std::optional<double> lr_scale;
  std::optional<double> weight_decay;
};

// A method's published training recipe (train_cifar --recipe reference): every field that is
// set replaces the flag of the same name unless that flag was given explicitly.
struct Recipe {
  std::string source;  // where it comes from, e.g. "seeds.md §5.4 (official code)"
  std::optional<int64_t> epochs, batch_size;
  std::optional<double> lr, momentum, weight_decay, gamma, rrc_min_scale;
  std::optional<bool> nesterov;
  std::optional<std::vector<double>> milestones;
  std::optional<std::string> augment, padding, normalize, schedule;
  std::optional<double> final_lr;  // cosine schedule
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // One paragraph for --help and the start-up log; reconstructed designs say so here.
  virtual std::string description() const = 0;
  Options& options() { return options_; }
  const Options& options() const { return options_; }

  // Builds the networks (initialised from ctx.seed) on ctx.device.
  virtual void build(const BuildContext& ctx) = 0;
  // Every trained network by name: checkpointed, parameter-counted, switched train/eval.
  virtual std::vector<std::pair<std::string, nn::ModulePtr>> networks() const = 0;
  // Parameter groups of the main optimizer; by default every parameter of networks(), one group.
  virtual std::vector<ParamGroup> param_groups() const;
  // Independent augmented views of each image the method wants per batch.
  virtual int num_views() const { return 1; }

  // Training forward: the total loss, its named terms and each member's logits.
  virtual StepResult forward_train(const Batch& batch, const TrainClock& clock) = 0;
  // Backward and parameter update. The default runs backward(result.loss) and main.step();
  // methods with their own update order or extra optimizers (FFL, FFSD) override it.
  virtual void update(StepResult& result, optim::Optimizer& main, const TrainClock& clock);
  // Called after every update (EMA teachers) and at the start of every epoch.
  virtual void after_update(const TrainClock&) {}
  virtual void on_epoch_start(const TrainClock&) {}

  // Why a training step (forward_train, update, after_update) cannot be captured as one CUDA graph
  // and replayed (train_cifar --cuda-graph; tensor/cuda/graph.h), or "" when it can: its device
  // work must be the same every step apart from the batch's values, the scalars it passes to
  // kernels may change only at epoch starts or with the learning rate, and it must not
  // synchronise with the host or draw random numbers.
  virtual std::string capture_blocker() const {
    return "its step has not been checked for capture (a per-step scalar, random draw or host "
           "read would be frozen into the graph)";
  }

  // Members evaluated at test time, in display order, and the one that is deployed.
  virtual std::vector<std::string> members() const = 0;
  virtual std::string deployed_member() const = 0;
  // Parameters of the deployed network alone.
  virtual int64_t deployed_num_parameters() const = 0;
  // Logits of every member for a batch, networks in eval mode, under NoGradGuard.
  virtual std::vector<std::pair<std::string, Tensor>> eval_logits(const Tensor& images) = 0;

  // State beyond the networks' state_dicts (extra optimizers, EMA copies, step counters).
  virtual nn::NamedTensors extra_state() const { return {}; }
  virtual void load_extra_state(const nn::NamedTensors&) {}
  // The recipe of the method's reference code for a dataset and architecture. The default is the
  // common online-KD protocol of classic.md §1.5 (300 epochs, lr 0.1 x0.1 at 150 and 225,
  // SGD momentum 0.9 Nesterov, weight decay 5e-4, batch 128, crop + flip).
  virtual Recipe reference_recipe(const std::string& dataset, const std::string& arch) const;
  // One line naming every variant choice (assumptions, reference quirks) the run uses.
  virtual std::string variant_summary() const { return ""; }

  // Sets train (true) or eval mode on every network.
  void set_training(bool on) const;
  int64_t num_parameters() const;

 protected:
  Options options_;
};

using MethodFactory = std::function<std::unique_ptr<Method>()>;

// The registry. Built-in methods are registered on first use.
void register_method(const std::string& name, MethodFactory factory);
std::vector<std::string> method_names();
// Throws listing the known methods when name is unknown.
std::unique_ptr<Method> make_method(const std::string& name);
// The main optimizer's parameter groups for a method's param_groups(): each group's parameters
// and name, lr * its lr_scale, and its own weight decay or else weight_decay.
std::vector<optim::ParamGroup> optimizer_groups(const Method& m, double lr, double weight_decay);

// "NAME" or "NAME:KEY=VALUE,KEY=VALUE" (the options of --NAME.KEY VALUE); unknown keys and
// malformed pairs are errors.
std::unique_ptr<Method> make_method_from_spec(const std::string& spec);

}  // namespace okd::distill
