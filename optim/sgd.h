// SGD with momentum, dampening, Nesterov and coupled (L2) weight decay: PyTorch 1.13's
// torch.optim.SGD update, element by element (docs/optim.md has the formulas):
//   g   = grad + wd * p
//   buf = g                                   on the parameter's first update
//   buf = momentum * buf + (1 - dampening) * g   afterwards
//   g   = nesterov ? g + momentum * buf : buf    (when momentum != 0)
//   p   = p - lr * g
#pragma once
#include <vector>

#include "optim/optimizer.h"
#include "tensor/ops/update.h"

namespace okd::optim {

struct SGDOptions {
  double lr = 0.1;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  // coupled: added to the gradient before momentum
  bool nesterov = false;    // needs momentum > 0 and dampening == 0 (as PyTorch)
};

class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  // Groups with lr / weight_decay left at kUseDefault take them from options.
  explicit SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;
  // The group's parameters in one multi-tensor step (ops::sgd_step_foreach_): a few kernel
  // launches on a GPU instead of one per parameter.
  void update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                    const std::vector<Tensor>& grads,
                    const std::vector<ParamState*>& states) override;
  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }

 private:
  ops::SgdStep scalars(const ParamGroup& group, const ParamState& state) const;
  SGDOptions options_;
};

}  // namespace okd::optim
