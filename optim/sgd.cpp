// SGD: options checked here, the update itself is the raw op ops::sgd_step_ (tensor/ops/update.h),
// which runs on the parameter's device in PyTorch's order of operations.
#include "optim/sgd.h"

#include "tensor/ops/update.h"

namespace okd::optim {

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  return {g};
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(one_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
  OKD_CHECK(options_.momentum >= 0, "SGD: expected momentum >= 0, got ", options_.momentum);
  OKD_CHECK(options_.dampening >= 0 && options_.dampening <= 1,
            "SGD: expected dampening in [0, 1], got ", options_.dampening);
  OKD_CHECK(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0),
            "SGD: Nesterov momentum needs momentum > 0 and dampening 0, got momentum ",
            options_.momentum, " and dampening ", options_.dampening);
}

ops::SgdStep SGD::scalars(const ParamGroup& group, const ParamState& state) const {
  ops::SgdStep st;
  st.lr = group.lr;
  st.weight_decay = group.weight_decay;
  st.momentum = options_.momentum;
  st.dampening = options_.dampening;
  st.nesterov = options_.nesterov;
  st.first = st.momentum != 0 && !state.has("momentum_buffer");
  return st;
}

// Parameters whose momentum buffer is new (first) and the others take separate calls: the flag
// is one of the step's scalars.
void SGD::update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                       const std::vector<Tensor>& grads, const std::vector<ParamState*>& states) {
  std::vector<ops::SgdStep> st;  // taken before any buffer is made
  for (ParamState* s : states) st.push_back(scalars(group, *s));
  for (bool first : {true, false}) {
    std::vector<Tensor> ps, gs, bufs;
    size_t last = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      if (st[i].first != first) continue;
      last = i;
      if (first)  // the buffer lives beside the parameter; this step fills it with g
        states[i]->buffers["momentum_buffer"] =
            empty(params[i].shape(), params[i].dtype(), params[i].device());
      ps.push_back(params[i]);
      gs.push_back(grads[i]);
      if (st[i].momentum != 0) bufs.push_back(states[i]->buffers.at("momentum_buffer"));
    }
    if (!ps.empty()) ops::sgd_step_foreach_(ps, gs, bufs, st[last]);
  }
}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 ParamState& state) {
  update_group(group, {param}, {grad}, {&state});
}

}  // namespace okd::optim
