// Adam (coupled L2 weight decay, added to the gradient) and AdamW (decoupled decay, the
// parameter shrinks by lr * wd before the Adam step): PyTorch 1.13's torch.optim.Adam/AdamW
// single-tensor updates, element by element. With t the parameter's update count:
//   Adam:   g = grad + wd * p                 AdamW: p = p * (1 - lr * wd), g = grad
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v)                       (amsgrad only; v below then means vmax)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
#pragma once
#include <vector>

#include "optim/optimizer.h"

namespace okd::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
};

// AdamW's options differ only in the default decay (PyTorch's 1e-2).
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  explicit Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  const AdamOptions& options() const { return options_; }
  bool decoupled_weight_decay() const { return decoupled_; }

 protected:
  Adam(const char* name, std::vector<ParamGroup> groups, AdamOptions options, bool decoupled);
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override;
  // The group's parameters in one multi-tensor step per device and dtype
  // (ops::adam_step_foreach_): a few kernel launches on a GPU instead of one per parameter.
  void update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                    const std::vector<Tensor>& grads,
                    const std::vector<ParamState*>& states) override;
  std::vector<std::string> buffer_names() const override {
    return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  }

 private:
  AdamOptions options_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
};

}  // namespace okd::optim
