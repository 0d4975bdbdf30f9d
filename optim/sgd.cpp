// SGD update loops over contiguous float/double data, in PyTorch's order of operations so that
// float64 runs follow torch.optim.SGD to the last few bits (tests/optim/test_optimizers.cpp).
#include "optim/sgd.h"

#include "tensor/parallel.h"

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

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 ParamState& state) {
  const int64_t n = param.numel();
  const double momentum = options_.momentum;
  const bool first = momentum != 0 && !state.has("momentum_buffer");
  if (momentum != 0 && first)
    state.buffers["momentum_buffer"] = empty(param.shape(), param.dtype());
  OKD_DISPATCH_FLOAT(param.dtype(), "SGD::step", [&]<class T>() {
    T* p = param.data<T>();
    const T* dp = grad.data<T>();
    T* buf = momentum != 0 ? state.buffers.at("momentum_buffer").data<T>() : nullptr;
    // Scalars are cast to the parameter type, as PyTorch's CPU kernels do.
    const T wd = static_cast<T>(group.weight_decay), mom = static_cast<T>(momentum);
    const T one_minus_damp = static_cast<T>(1 - options_.dampening);
    const T neg_lr = static_cast<T>(-group.lr);
    const bool decay = group.weight_decay != 0, nesterov = options_.nesterov;
    parallel_for(0, n, detail::kUpdateGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T g = dp[i];
        if (decay) g = g + wd * p[i];
        if (buf) {
          buf[i] = first ? g : buf[i] * mom + one_minus_damp * g;
          g = nesterov ? g + mom * buf[i] : buf[i];
        }
        p[i] = p[i] + neg_lr * g;
      }
    });
  });
}

}  // namespace okd::optim
