// Adam/AdamW: options checked here, the update itself is the raw op ops::adam_step_
// (tensor/ops/update.h): PyTorch 1.13's order of operations on the parameter's device.
#include "optim/adam.h"

#include "tensor/ops/update.h"

namespace okd::optim {

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  return {g};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam("Adam", one_group(std::move(params)), options, false) {}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam("Adam", std::move(groups), options, false) {}
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : Adam("AdamW", one_group(std::move(params)), options, true) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Adam("AdamW", std::move(groups), options, true) {}

Adam::Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled)
    : Optimizer(name, std::move(groups), options.lr, options.weight_decay),
      options_(options),
      decoupled_(decoupled) {
  OKD_CHECK(options_.beta1 >= 0 && options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1,
            name, ": expected betas in [0, 1), got (", options_.beta1, ", ", options_.beta2, ")");
  OKD_CHECK(options_.eps >= 0, name, ": expected eps >= 0, got ", options_.eps);
}

void Adam::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                  ParamState& state) {
  // Moment buffers live beside the parameter (on its device), zero before the first step.
  for (const char* b : {"exp_avg", "exp_avg_sq"})
    if (!state.has(b)) state.buffers[b] = zeros(param.shape(), param.dtype(), param.device());
  if (options_.amsgrad && !state.has("max_exp_avg_sq"))
    state.buffers["max_exp_avg_sq"] = zeros(param.shape(), param.dtype(), param.device());
  ops::AdamStep st;
  st.lr = group.lr;
  st.weight_decay = group.weight_decay;
  st.beta1 = options_.beta1;
  st.beta2 = options_.beta2;
  st.eps = options_.eps;
  st.step = state.step;
  st.decoupled = decoupled_;
  st.amsgrad = options_.amsgrad;
  // On a device t comes from a counter beside the parameter, advanced there: a captured step
  // replays with the bias corrections of the advanced count (tensor/cuda/graph.h).
  const bool on_device = !param.device().is_cpu();
  if (on_device) st.step_counter = state.device_step.holding(param.device(), state.step, "Adam");
  ops::adam_step_(param, grad, state.buffers.at("exp_avg"), state.buffers.at("exp_avg_sq"),
                  options_.amsgrad ? state.buffers.at("max_exp_avg_sq") : Tensor(), st);
  if (on_device) state.device_step.advance(1);
}

}  // namespace okd::optim
