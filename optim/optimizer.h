// Optimizer: the base of SGD, Adam and AdamW. It owns parameter groups (each with its own lr and
// weight decay, e.g. FFL/FFSD give the fusion module a different decay), per-parameter state
// (momentum buffers, Adam moments, step counts) and the state_dict that checkpoints it.
//
// Contract of step(), as PyTorch's: parameters without a gradient are skipped (their state and
// step count are untouched); every updated parameter's storage version is bumped (autograd then
// refuses a stale saved tensor); nothing is recorded on the tape. Parameters must be contiguous
// float32/float64 CPU tensors (updates run in place over their data); a gradient must have the
// parameter's shape and dtype (a non-contiguous gradient is read through a contiguous copy).
//
// state_dict() names, all flat so a checkpoint stores them with nn::save_safetensors:
//   "step"                           int64 scalar: number of step() calls
//   "group<g>.lr", ".weight_decay"   float64 scalars: the group's current hyper-parameters
//   "group<g>.num_params"            int64 scalar: checked on load (a different model is an error)
//   "group<g>.param<i>.step"         int64 scalar: updates this parameter received (Adam's t)
//   "group<g>.param<i>.<buffer>"     the optimizer's buffers: momentum_buffer, exp_avg,
//                                    exp_avg_sq, max_exp_avg_sq (present once created)
// load_state_dict() replaces the whole state, so 10 straight steps and 5 steps + save/load into a
// fresh optimizer + 5 steps give bit-identical parameters.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/cuda/graph.h"
#include "tensor/tensor.h"

namespace okd::optim {

// A set of parameters updated with the same hyper-parameters. lr and weight_decay left at
// kUseDefault take the optimizer's options; after construction they hold the resolved values and
// a schedule may rewrite lr before every step.
struct ParamGroup {
  static constexpr double kUseDefault = -1.0;
  std::vector<Tensor> params;
  double lr = kUseDefault;
  double weight_decay = kUseDefault;
  std::string name;  // optional, shown in error messages
};

// What the optimizer keeps for one parameter.
struct ParamState {
  int64_t step = 0;                       // updates received so far (after this step's update)
  std::map<std::string, Tensor> buffers;  // same shape and dtype as the parameter
  // `step` on the parameter's device, for updates whose kernel reads it there (Adam:
  // tensor/ops/update.h). Not checkpointed (made again from `step`).
  cuda::DeviceCounter device_step;
  bool has(const std::string& name) const { return buffers.count(name) != 0; }
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient, once.
  void step();
  // set_to_none (the default, as Module::zero_grad): drop the gradients; otherwise fill them with
  // zeros in place.
  void zero_grad(bool set_to_none = true);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Sets the lr of every group (a schedule with several groups keeps ratios itself).
  void set_lr(double lr);
  // Number of step() calls so far.
  int64_t steps_taken() const { return steps_; }
  const std::string& name() const { return name_; }
  // The state of parameter `index` of group `group` (empty before its first update).
  const ParamState& state(size_t group, size_t index) const;

  nn::NamedTensors state_dict() const;
  // Replaces all state with the given one. Unknown keys, indices out of range, a different
  // number of parameters per group and shape mismatches are errors that list what is wrong.
  void load_state_dict(const nn::NamedTensors& state);

 protected:
  Optimizer(std::string name, std::vector<ParamGroup> groups, double default_lr,
            double default_weight_decay);
  // Updates one parameter in place. param and grad are contiguous CPU tensors of the same float
  // dtype and shape; state.step already counts this update. Runs under NoGradGuard.
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                      ParamState& state) = 0;
  // Updates the parameters of one group that have a gradient (params[i] with grads[i] and
  // *states[i]; each state.step already counts this update). The default calls update() for each;
  // an optimizer with a multi-tensor kernel (SGD) updates them together.
  virtual void update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                            const std::vector<Tensor>& grads,
                            const std::vector<ParamState*>& states);
  // The buffer names this optimizer may keep (load_state_dict accepts only these).
  virtual std::vector<std::string> buffer_names() const = 0;

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
  int64_t steps_ = 0;
};

namespace detail {
// The checks every in-place update needs: contiguous float CPU parameter; returns the gradient
// as a contiguous tensor of the parameter's shape and dtype or throws naming op and both tensors.
Tensor checked_grad(const char* op, const std::string& where, const Tensor& param,
                    const Tensor& grad);
// Elements per parallel chunk of the update loops (each element is independent, so results do
// not depend on the thread count).
inline constexpr int64_t kUpdateGrain = 1 << 15;
}  // namespace detail

}  // namespace okd::optim
