// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ (PyTorch 1.13):
//   by norm:  total = || (||g_1||_p, ..., ||g_k||_p) ||_p  over parameters that have a gradient
//             (p = inf: the largest |g|), coef = max_norm / (total + 1e-6), and when coef < 1
//             every gradient is multiplied by coef. Returns total (before clipping).
//   by value: every gradient element is clamped to [-clip_value, clip_value].
// Gradients are changed in place (their storage version is bumped); parameters without a
// gradient are skipped. Norms are accumulated in double in a fixed order, so the result does not
// depend on the thread count.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace okd::optim {

// norm_type: any p > 0, or INFINITY. error_if_nonfinite: throw when the total norm is NaN or
// infinite instead of scaling the gradients by a NaN coefficient.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

// The total gradient norm without clipping (for logging).
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

}  // namespace okd::optim
