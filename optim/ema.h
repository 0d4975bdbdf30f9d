// Ema: the temporal-mean ("mean teacher") copy of a network's parameters used by PCL/DKEL
// (seeds.md §1.6). After every optimizer step t = 0, 1, 2, ... of the student:
//   alpha_t = min(1 - 1/(t + 1), decay)          (warm-up: alpha_0 = 0 copies the student)
//   theta_ema <- alpha_t * theta_ema + (1 - alpha_t) * theta
// With warmup = false alpha_t = decay from t = 0 (DKEL's `ema_keep_init` deviation, which keeps
// the EMA model's special initialisation).
//
// With warm-up, alpha_t is computed from a step counter kept beside the tensors (on their device)
// by tensor ops, in float64, then cast to the tensors' dtype: a captured training step
// (tensor/cuda/graph.h) replays it with the count advanced, where a host alpha would be frozen.
// So the update is theta_ema * a + theta * b with a, b that dtype's scalars (as torch's
// ema.mul_(alpha).add_(param, alpha=1 - alpha) with a Python float on a float32 tensor).
//
// Parameters only. Buffers (BatchNorm running mean/var, num_batches_tracked) are deliberately NOT
// averaged or copied: per the spec the EMA model's buffers evolve from its own forward passes in
// train mode, so the caller runs the EMA model forward and its BN layers update their own stats.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "tensor/cuda/graph.h"
#include "tensor/tensor.h"

namespace okd::optim {

struct EmaOptions {
  double decay = 0.999;
  bool warmup = true;
};

class Ema {
 public:
  // averaged[i] follows source[i]; same shapes and dtypes, contiguous CPU float tensors.
  Ema(std::vector<Tensor> averaged, std::vector<Tensor> source, EmaOptions options = {});
  // Pairs the parameters of two networks of the same architecture by name (named_parameters()).
  Ema(const nn::Module& averaged, const nn::Module& source, EmaOptions options = {});

  // One update with alpha_t of the current step count, then step count + 1. No tape, versions
  // of the averaged tensors are bumped.
  void update();
  // alpha for update number t (from 0).
  double alpha(int64_t t) const;
  int64_t steps() const { return steps_; }
  const EmaOptions& options() const { return options_; }

  // {"step": int64 scalar}. The averaged tensors themselves are the EMA model's parameters, which
  // its own state_dict saves.
  nn::NamedTensors state_dict() const;
  void load_state_dict(const nn::NamedTensors& state);

 private:
  Ema(std::pair<std::vector<Tensor>, std::vector<Tensor>> pairs, EmaOptions options);
  void update_counted();
  std::vector<Tensor> averaged_, source_;
  EmaOptions options_;
  int64_t steps_ = 0;
  cuda::DeviceCounter count_;  // steps_ on the tensors' device, advanced there (warm-up only)
};

}  // namespace okd::optim
