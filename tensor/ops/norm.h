// Raw batch-normalisation kernels over [N, C, *] (any number of trailing spatial dims):
//   training: xhat = (x - mean_c) * invstd_c, invstd = 1 / sqrt(var_c + eps) with the biased
//             batch variance; y = weight_c * xhat + bias_c.
//   backward: dx = weight * invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)), M = N * prod(*),
//             dweight = sum(dy xhat), dbias = sum(dy) (sums over every dim but C).
//   fused ReLU (relu = true): the forward returns max(y, 0); the backward, given that output z,
//             uses dy masked to z > 0 (the ReLU's gradient) without materialising it.
//   fused residual (residual defined): y + residual (then the ReLU, if asked), in the same pass:
//             a ResNet block's last batch norm, shortcut add and ReLU read and write once.
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace okd::ops {

struct BatchNormStats {
  Tensor mean, invstd, var_unbiased;  // [C] each
};

// y and the batch statistics. weight/bias may be undefined (no affine transform); residual, when
// defined, has x's shape and dtype and is added to y before the ReLU.
std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                   const Tensor& bias, double eps,
                                                   bool relu = false,
                                                   const Tensor& residual = Tensor());
// y using the given (running) mean and variance.
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps);
// dx, dweight, dbias for the training-mode forward (mean/invstd are the saved batch stats).
// relu_out: the fused forward's output (defined only for the fused BN+ReLU).
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd,
                                                       const Tensor& relu_out = Tensor());

// running = (1 - m) running + m batch, for the mean and the (unbiased) variance, in place and in
// one pass (one kernel on CUDA instead of four). The arithmetic is that of ops::mul_(r, 1 - m)
// followed by ops::add_(r, batch, m): r = T(double(r) (1 - m)), then r = T(double(r) +
// m double(batch)), so results are bit for bit those of the pair. All four: [C], one dtype and
// device, contiguous. num_batches_tracked, when defined (an int64 scalar there), is advanced by
// one in the same launch (what ops::counter_add_ would do).
void batch_norm_update_running_(const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& batch_mean, const Tensor& batch_var, double momentum,
                                const Tensor& num_batches_tracked = Tensor());

}  // namespace okd::ops
