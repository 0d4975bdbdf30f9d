// train_cifar --cuda-graph's policy for a method's training step, shared by the trainer and the
// method-parity tests: the first step of the process runs eagerly (it creates momentum buffers,
// cuDNN's algorithm choices and anything else a method makes lazily: none of that may happen
// inside a graph); the next one is captured as one CUDA graph (tensor/cuda/graph.h); later ones
// replay it until the epoch or the lr factor changes, when the scalars frozen into the graph may
// be stale and it is captured again.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "distill/method.h"
#include "tensor/cuda/graph.h"

namespace okd::distill {

class CapturedSteps {
 public:
  // Runs step (forward_train, update, after_update on fixed input tensors) as the policy says.
  // The result of a replay is the captured step's result tensors, which the replay refilled.
  StepResult run(const std::function<StepResult()>& step, int64_t epoch, double lr_factor);

  int64_t eager_steps() const { return eager_steps_; }
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

 private:
  std::unique_ptr<cuda::CapturedGraph> graph_;
  StepResult result_;
  int64_t epoch_ = -1;
  double lr_factor_ = 0;
  int64_t eager_steps_ = 0, captures_ = 0, replays_ = 0;
};

}  // namespace okd::distill
