// The SGD and Adam/AdamW update loops on the CPU (update.h), parallel over elements. Scalars are
// cast to the parameter's dtype first, as PyTorch's CPU kernels do, so float64 runs follow
// torch.optim to the last few bits (tests/optim/test_optimizers.cpp).
#include <algorithm>
#include <cmath>

#include "okd/build_config.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/update.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {
constexpr int64_t kUpdateGrain = 1 << 15;

void check_param(const Tensor& param, const char* op) {
  OKD_CHECK(is_floating(param.dtype()) && param.is_contiguous(), op,
            ": expected a contiguous float parameter, got ", param.desc());
}
// Every state tensor matches the parameter: same shape, dtype, device, contiguous. (Checked here
// for both devices, before the dispatch.)
void check_state(const Tensor& param, const Tensor& t, const char* what, const char* op) {
  if (!t.defined()) return;
  OKD_CHECK(t.shape() == param.shape() && t.dtype() == param.dtype() &&
                t.device() == param.device() && t.is_contiguous(),
            op, ": ", what, " ", t.desc(), " does not match the parameter ", param.desc(),
            " (contiguous, same shape, dtype and device)");
}
}  // namespace

void counter_add_(const Tensor& counter, int64_t amount) {
  OKD_CHECK(counter.dtype() == DType::Int64 && counter.is_contiguous(),
            "counter_add_: expected a contiguous int64 tensor, got ", counter.desc());
  if (cuda::on_cuda(counter)) return cuda::counter_add_(counter, amount);
  counter.impl()->storage->bump_version();
  int64_t* c = counter.data<int64_t>();
  for (int64_t i = 0; i < counter.numel(); ++i) c[i] += amount;
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& buf_t, const SgdStep& s) {
  const char* op = "SGD::step";
  check_param(param, op);
  check_state(param, grad, "gradient", op);
  check_state(param, buf_t, "momentum buffer", op);
  OKD_CHECK(s.momentum == 0 || buf_t.defined(), op, ": momentum needs a momentum buffer");
  if (cuda::on_cuda(param)) return cuda::sgd_step_(param, grad, buf_t, s);
  param.impl()->storage->bump_version();
  const int64_t n = param.numel();
  OKD_DISPATCH_FLOAT(param.dtype(), op, [&]<class T>() {
    T* p = param.data<T>();
    const T* dp = grad.data<T>();
    T* buf = s.momentum != 0 ? buf_t.data<T>() : nullptr;
    const T wd = static_cast<T>(s.weight_decay), mom = static_cast<T>(s.momentum);
    const T one_minus_damp = static_cast<T>(1 - s.dampening);
    const T neg_lr = static_cast<T>(-s.lr);
    const bool decay = s.weight_decay != 0, nesterov = s.nesterov, first = s.first;
    parallel_for(0, n, kUpdateGrain, [&](int64_t b, int64_t e) {
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

void sgd_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& bufs, const SgdStep& s) {
  const char* op = "SGD::step";
  OKD_CHECK(grads.size() == params.size() && (s.momentum == 0 || bufs.size() == params.size()), op,
            ": ", params.size(), " parameters but ", grads.size(), " gradients and ", bufs.size(),
            " momentum buffers");
  if (params.empty()) return;
  for (size_t i = 0; i < params.size(); ++i) {
    check_param(params[i], op);
    OKD_CHECK(params[i].device() == params[0].device() && params[i].dtype() == params[0].dtype(),
              op, ": a multi-tensor step needs one device and dtype, got ", params[0].desc(),
              " and ", params[i].desc());
    check_state(params[i], grads[i], "gradient", op);
    if (s.momentum != 0) {
      OKD_CHECK(bufs[i].defined(), op, ": momentum needs a momentum buffer");
      check_state(params[i], bufs[i], "momentum buffer", op);
    }
  }
  if (cuda::on_cuda(params[0])) return cuda::sgd_step_foreach_(params, grads, bufs, s);
  for (size_t i = 0; i < params.size(); ++i)
    sgd_step_(params[i], grads[i], s.momentum != 0 ? bufs[i] : Tensor(), s);
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  const char* op = s.decoupled ? "AdamW::step" : "Adam::step";
  check_param(param, op);
  OKD_CHECK(exp_avg.defined() && exp_avg_sq.defined(), op, ": the moment buffers are missing");
  OKD_CHECK(!s.amsgrad || max_exp_avg_sq.defined(), op, ": amsgrad needs max_exp_avg_sq");
  check_state(param, grad, "gradient", op);
  check_state(param, exp_avg, "exp_avg", op);
  check_state(param, exp_avg_sq, "exp_avg_sq", op);
  check_state(param, max_exp_avg_sq, "max_exp_avg_sq", op);
  if (cuda::on_cuda(param))
    return cuda::adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  param.impl()->storage->bump_version();
  const int64_t n = param.numel();
  // Bias corrections in double, as Python computes them.
  const auto t = static_cast<double>(s.step);
  const double bias_correction1 = 1 - std::pow(s.beta1, t);
  const double bias_correction2 = 1 - std::pow(s.beta2, t);
  const double step_size = s.lr / bias_correction1;
  OKD_DISPATCH_FLOAT(param.dtype(), op, [&]<class T>() {
    T* p = param.data<T>();
    const T* dp = grad.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    T* vmax = s.amsgrad ? max_exp_avg_sq.data<T>() : nullptr;
    const bool coupled = !s.decoupled && s.weight_decay != 0, shrink = s.decoupled;
    const T wd = static_cast<T>(s.weight_decay);
    const T shrink_factor = static_cast<T>(1 - s.lr * s.weight_decay);
    const T b1 = static_cast<T>(s.beta1), one_minus_b1 = static_cast<T>(1 - s.beta1);
    const T b2 = static_cast<T>(s.beta2), one_minus_b2 = static_cast<T>(1 - s.beta2);
    const T bc2_sqrt = static_cast<T>(std::sqrt(bias_correction2)), eps = static_cast<T>(s.eps);
    const T neg_step_size = static_cast<T>(-step_size);
    parallel_for(0, n, kUpdateGrain, [&](int64_t b, int64_t e) {
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

void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const AdamStep& s) {
  const char* op = s.decoupled ? "AdamW::step" : "Adam::step";
  const size_t n = params.size();
  OKD_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n &&
                (!s.amsgrad || max_exp_avg_sqs.size() == n) && steps.size() == n &&
                (step_counters.empty() || step_counters.size() == n),
            op, ": ", n, " parameters but ", grads.size(), " gradients, ", exp_avgs.size(),
            " exp_avg, ", exp_avg_sqs.size(), " exp_avg_sq, ", max_exp_avg_sqs.size(),
            " max_exp_avg_sq (amsgrad ", s.amsgrad ? "on" : "off", "), ", steps.size(),
            " steps and ", step_counters.size(), " step counters (expected one of each per ",
            "parameter; max_exp_avg_sq only needed with amsgrad, counters optional)");
  OKD_CHECK(!s.step_counter.defined(), op,
            ": a multi-tensor step takes each parameter's counter in step_counters, not in "
            "AdamStep::step_counter");
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) {
    check_param(params[i], op);
    OKD_CHECK(params[i].device() == params[0].device() && params[i].dtype() == params[0].dtype(),
              op, ": a multi-tensor step needs one device and dtype, got ", params[0].desc(),
              " and ", params[i].desc());
    OKD_CHECK(grads[i].defined() && exp_avgs[i].defined() && exp_avg_sqs[i].defined(), op,
              ": the gradient or moment buffers of parameter ", i, " are missing");
    OKD_CHECK(!s.amsgrad || max_exp_avg_sqs[i].defined(), op, ": amsgrad needs max_exp_avg_sq");
    check_state(params[i], grads[i], "gradient", op);
    check_state(params[i], exp_avgs[i], "exp_avg", op);
    check_state(params[i], exp_avg_sqs[i], "exp_avg_sq", op);
    if (s.amsgrad) check_state(params[i], max_exp_avg_sqs[i], "max_exp_avg_sq", op);
    if (!step_counters.empty()) {
      const Tensor& c = step_counters[i];
      OKD_CHECK(c.defined() && c.dtype() == DType::Int64 && c.numel() == 1 &&
                    c.device() == params[i].device(),
                op, ": step counter ", i, " must be an int64 scalar on the parameter's device ",
                params[i].device().str(), ", got ", c.defined() ? c.desc() : "none");
    }
  }
  if (cuda::on_cuda(params[0]))
    return cuda::adam_step_foreach_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                                    step_counters, s);
  for (size_t i = 0; i < n; ++i) {
    AdamStep si = s;
    si.step = steps[i];
    if (!step_counters.empty()) si.step_counter = step_counters[i];  // unread on the CPU
    adam_step_(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
               s.amsgrad ? max_exp_avg_sqs[i] : Tensor(), si);
  }
}

}  // namespace okd::ops
