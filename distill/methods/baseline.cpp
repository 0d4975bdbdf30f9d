// baseline: CE(net(x), y).
#include "distill/methods/baseline.h"

#include "autograd/functions.h"
#include "nn/functional.h"

namespace okd::distill {

BaselineMethod::BaselineMethod() {
  options_.declare("label-smoothing", "0", "label smoothing of the cross-entropy (0 = none)");
}

void BaselineMethod::build(const BuildContext& ctx) {
  nn::BackboneOptions o;
  o.arch = ctx.arch;
  o.num_classes = ctx.num_classes;
  o.in_channels = ctx.in_channels;
  o.shortcut = ctx.shortcut;
  o.init = ctx.init;
  o.seed = ctx.seed;
  net_ = nn::make_backbone(o);
}

StepResult BaselineMethod::forward_train(const Batch& batch, const TrainClock&) {
  Tensor logits = net_->forward(batch.images());
  Tensor ce =
      nn::functional::cross_entropy(logits, batch.labels, options_.get_double("label-smoothing"));
  StepResult r;
  r.loss = ce;
  r.terms = {{"ce", ce}};
  r.logits = {{"net", logits}};
  return r;
}

std::vector<std::pair<std::string, Tensor>> BaselineMethod::eval_logits(const Tensor& images) {
  return {{"net", net_->forward(images)}};
}

}  // namespace okd::distill
