// Adam/AdamW update loops over contiguous float/double data, in PyTorch 1.13's order of
// operations (bias corrections in double, as Python computes them; tensor arithmetic in the
// parameter's type).
#include "optim/adam.h"

#include <algorithm>
#include <cmath>

#include "tensor/parallel.h"

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
  const int64_t n = param.numel();
  const bool amsgrad = options_.amsgrad;
  for (const char* b : {"exp_avg", "exp_avg_sq"})
    if (!state.has(b)) state.buffers[b] = zeros(param.shape(), param.dtype());
  if (amsgrad && !state.has("max_exp_avg_sq"))
    state.buffers["max_exp_avg_sq"] = zeros(param.shape(), param.dtype());

  const double beta1 = options_.beta1, beta2 = options_.beta2, lr = group.lr;
  const auto t = static_cast<double>(state.step);
  const double bias_correction1 = 1 - std::pow(beta1, t);
  const double bias_correction2 = 1 - std::pow(beta2, t);
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);

  OKD_DISPATCH_FLOAT(param.dtype(), name() + "::step", [&]<class T>() {
    T* p = param.data<T>();
    const T* dp = grad.data<T>();
    T* m = state.buffers.at("exp_avg").data<T>();
    T* v = state.buffers.at("exp_avg_sq").data<T>();
    T* vmax = amsgrad ? state.buffers.at("max_exp_avg_sq").data<T>() : nullptr;
    const bool coupled = !decoupled_ && group.weight_decay != 0;
    const bool shrink = decoupled_;
    const T wd = static_cast<T>(group.weight_decay);
    const T shrink_factor = static_cast<T>(1 - lr * group.weight_decay);
    const T b1 = static_cast<T>(beta1), one_minus_b1 = static_cast<T>(1 - beta1);
    const T b2 = static_cast<T>(beta2), one_minus_b2 = static_cast<T>(1 - beta2);
    const T bc2_sqrt = static_cast<T>(bias_correction2_sqrt), eps = static_cast<T>(options_.eps);
    const T neg_step_size = static_cast<T>(-step_size);
    parallel_for(0, n, detail::kUpdateGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (shrink) p[i] = p[i] * shrink_factor;
        T g = dp[i];
        if (coupled) g = g + wd * p[i];
        m[i] = m[i] * b1 + one_minus_b1 * g;
        v[i] = v[i] * b2 + one_minus_b2 * g * g;
        T second = v[i];
        if (vmax) second = vmax[i] = std::max(vmax[i], v[i]);
        const T denom = std::sqrt(second) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step_size * m[i] / denom;
      }
    });
  });
}

}  // namespace okd::optim
