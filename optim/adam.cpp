// Adam/AdamW: options checked here, the update itself is the raw op ops::adam_step_foreach_
// (tensor/ops/update.h), one call per device and dtype of a parameter group: PyTorch 1.13's order
// of operations on the parameters' device.
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
  update_group(group, {param}, {grad}, {&state});
}

// Parameters are updated independently, so splitting the group by device and dtype (one
// multi-tensor call each) changes no result.
void Adam::update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                        const std::vector<Tensor>& grads, const std::vector<ParamState*>& states) {
  ops::AdamStep st;
  st.lr = group.lr;
  st.weight_decay = group.weight_decay;
  st.beta1 = options_.beta1;
  st.beta2 = options_.beta2;
  st.eps = options_.eps;
  st.decoupled = decoupled_;
  st.amsgrad = options_.amsgrad;
  std::vector<bool> done(params.size(), false);
  for (size_t lead = 0; lead < params.size(); ++lead) {
    if (done[lead]) continue;
    const Device device = params[lead].device();
    const DType dtype = params[lead].dtype();
    // On a device t comes from a counter beside each parameter, advanced there: a captured step
    // replays with the bias corrections of the advanced count (tensor/cuda/graph.h).
    const bool on_device = !device.is_cpu();
    std::vector<Tensor> ps, gs, ms, vs, vmaxs, counters;
    std::vector<int64_t> steps;
    std::vector<ParamState*> members;
    for (size_t i = lead; i < params.size(); ++i) {
      const Tensor& p = params[i];
      if (done[i] || p.device() != device || p.dtype() != dtype) continue;
      done[i] = true;
      ParamState& state = *states[i];
      // Moment buffers live beside the parameter (on its device), zero before the first step.
      for (const char* b : {"exp_avg", "exp_avg_sq"})
        if (!state.has(b)) state.buffers[b] = zeros(p.shape(), p.dtype(), p.device());
      if (options_.amsgrad && !state.has("max_exp_avg_sq"))
        state.buffers["max_exp_avg_sq"] = zeros(p.shape(), p.dtype(), p.device());
      ps.push_back(p);
      gs.push_back(grads[i]);
      ms.push_back(state.buffers.at("exp_avg"));
      vs.push_back(state.buffers.at("exp_avg_sq"));
      if (options_.amsgrad) vmaxs.push_back(state.buffers.at("max_exp_avg_sq"));
      steps.push_back(state.step);
      if (on_device) counters.push_back(state.device_step.holding(device, state.step, "Adam"));
      members.push_back(&state);
    }
    ops::adam_step_foreach_(ps, gs, ms, vs, vmaxs, steps, counters, st);
    if (on_device)
      for (ParamState* state : members) state->device_step.advance(1);
  }
}

}  // namespace okd::optim
