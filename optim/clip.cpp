// Gradient clipping by total norm and by value (see clip.h for the formulas).
#include "optim/clip.h"

#include <algorithm>
#include <cmath>

#include "autograd/tape.h"
#include "optim/optimizer.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"

namespace okd::optim {

namespace {

// The gradients that exist, checked and contiguous (clipping writes them in place, so a
// non-contiguous gradient is an error here rather than a silent copy).
std::vector<Tensor> present_grads(const char* op, const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    OKD_CHECK(params[i].defined(), op, ": parameter ", i, " is an undefined tensor");
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    Tensor c = detail::checked_grad(op, str("parameter ", i), params[i], g);
    OKD_CHECK(c.is_same(g), op, ": the gradient of parameter ", i,
              " is not contiguous and cannot be clipped in place (", g.desc(), ")");
    grads.push_back(g);
  }
  return grads;
}

// ||g||_p^p (or max |g| for p = inf) in double, summed block by block in a fixed order.
double norm_of(const Tensor& g, double p) {
  // On a device: its deterministic reduction (in double, as here) and one copy of the result.
  if (!g.device().is_cpu()) return ops::norm(g, p).item();
  const int64_t n = g.numel();
  constexpr int64_t kBlock = 1 << 14;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  const bool inf = std::isinf(p);
  OKD_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm_", [&]<class T>() {
    const T* d = g.data<T>();
    parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        double acc = 0;
        for (int64_t i = b * kBlock, e = std::min(n, (b + 1) * kBlock); i < e; ++i) {
          const double a = std::fabs(static_cast<double>(d[i]));
          if (inf)
            acc = std::isnan(a) || acc < a ? a : acc;
          else if (p == 2)
            acc += a * a;
          else if (p == 1)
            acc += a;
          else
            acc += std::pow(a, p);
        }
        partial[static_cast<size_t>(b)] = acc;
      }
    });
  });
  double total = 0;
  for (double v : partial) {
    if (inf)
      total = std::isnan(v) || total < v ? v : total;
    else
      total += v;
  }
  return inf ? total : std::pow(total, 1.0 / p);
}

double total_norm(const std::vector<Tensor>& grads, double p) {
  // PyTorch: the norm of the vector of per-tensor norms.
  double acc = 0;
  for (const Tensor& g : grads) {
    const double nrm = norm_of(g, p);
    if (std::isinf(p))
      acc = std::isnan(nrm) || acc < nrm ? nrm : acc;
    else
      acc += p == 2 ? nrm * nrm : std::pow(nrm, p);
  }
  return std::isinf(p) ? acc : std::pow(acc, 1.0 / p);
}

}  // namespace

double grad_norm(const std::vector<Tensor>& params, double norm_type) {
  OKD_CHECK(norm_type > 0, "grad_norm: expected norm_type > 0 (or INFINITY), got ", norm_type);
  return total_norm(present_grads("grad_norm", params), norm_type);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  OKD_CHECK(norm_type > 0, "clip_grad_norm_: expected norm_type > 0 (or INFINITY), got ",
            norm_type);
  OKD_CHECK(max_norm >= 0, "clip_grad_norm_: expected max_norm >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads = present_grads("clip_grad_norm_", params);
  if (grads.empty()) return 0.0;
  const double total = total_norm(grads, norm_type);
  OKD_CHECK(!error_if_nonfinite || std::isfinite(total),
            "clip_grad_norm_: the total norm of order ", norm_type, " of the gradients is ", total,
            " (non-finite); pass error_if_nonfinite = false to scale by it anyway");
  const double coef = max_norm / (total + 1e-6);
  // PyTorch clamps coef to 1 and always multiplies; multiplying by 1 changes nothing, so skip it.
  // A NaN coefficient (NaN norm) is applied, as PyTorch does.
  if (!(coef < 1.0) && !std::isnan(coef)) return total;
  for (const Tensor& g : grads) {
    if (!g.device().is_cpu()) {
      ops::mul_(g, coef);
      continue;
    }
    OKD_DISPATCH_FLOAT(g.dtype(), "clip_grad_norm_", [&]<class T>() {
      T* d = g.data<T>();
      const T c = static_cast<T>(coef);
      parallel_for(0, g.numel(), detail::kUpdateGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = d[i] * c;
      });
    });
    g.impl()->storage->bump_version();
  }
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  OKD_CHECK(clip_value >= 0, "clip_grad_value_: expected clip_value >= 0, got ", clip_value);
  NoGradGuard no_grad;
  for (const Tensor& g : present_grads("clip_grad_value_", params)) {
    if (!g.device().is_cpu()) {
      ops::copy_(g, ops::clamp(g, -clip_value, clip_value));
      continue;
    }
    OKD_DISPATCH_FLOAT(g.dtype(), "clip_grad_value_", [&]<class T>() {
      T* d = g.data<T>();
      const T hi = static_cast<T>(clip_value), lo = -hi;
      parallel_for(0, g.numel(), detail::kUpdateGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = std::min(std::max(d[i], lo), hi);
      });
    });
    g.impl()->storage->bump_version();
  }
}

}  // namespace okd::optim
