// CapturedSteps: the --cuda-graph step policy (captured_step.h).
#include "distill/captured_step.h"

namespace okd::distill {

StepResult CapturedSteps::run(const std::function<StepResult()>& step, int64_t epoch,
                              double lr_factor) {
  if (eager_steps_ == 0) {
    ++eager_steps_;
    return step();
  }
  if (!graph_ || epoch_ != epoch || lr_factor_ != lr_factor) {
    graph_.reset();  // its memory pool goes back to the allocator
    auto g = std::make_unique<cuda::CapturedGraph>();
    g->capture([&] { result_ = step(); }, "a --cuda-graph training step");
    graph_ = std::move(g);
    epoch_ = epoch;
    lr_factor_ = lr_factor;
    ++captures_;
    return result_;
  }
  graph_->replay();
  ++replays_;
  return result_;
}

}  // namespace okd::distill
