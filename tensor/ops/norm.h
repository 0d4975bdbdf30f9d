// Raw batch-normalisation kernels over [N, C, *] (any number of trailing spatial dims):
//   training: xhat = (x - mean_c) * invstd_c, invstd = 1 / sqrt(var_c + eps) with the biased
//             batch variance; y = weight_c * xhat + bias_c.
//   backward: dx = weight * invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)), M = N * prod(*),
//             dweight = sum(dy xhat), dbias = sum(dy) (sums over every dim but C).
//   fused ReLU (relu = true): the forward returns max(y, 0); the backward, given that output z,
//             uses dy masked to z > 0 (the ReLU's gradient) without materialising it.
//   fused residual (residual defined): y + residual (then the ReLU, if asked), in the same pass:
//             a ResNet block's last batch norm, shortcut add and ReLU read and write once; its
//             backward writes the masked gradient (the residual's) in the pass that writes dx.
//   running statistics: advanced by the training forward itself (BatchNormRunning).
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace okd::ops {

struct BatchNormStats {
  Tensor mean, invstd, var_unbiased;  // [C] each
};

// The running statistics a training forward advances as it computes the batch's (mean undefined:
// none): what batch_norm_update_running_(mean, var, stats.mean, stats.var_unbiased, momentum,
// num_batches_tracked) would do afterwards, bit for bit, but inside the forward's own launch on
// CUDA (one launch per layer fewer). Statistics of another dtype than x are converted and updated
// by that separate call.
struct BatchNormRunning {
  Tensor mean, var;  // [C], contiguous
  double momentum = 0.1;
  Tensor num_batches_tracked;  // int64 scalar, or undefined
};

// y and the batch statistics. weight/bias may be undefined (no affine transform); residual, when
// defined, has x's shape and dtype and is added to y before the ReLU; running, when its mean is
// defined, is updated with the batch statistics.
std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                   const Tensor& bias, double eps,
                                                   bool relu = false,
                                                   const Tensor& residual = Tensor(),
                                                   const BatchNormRunning& running = {});
// y using the given (running) mean and variance.
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps);
// dx, dweight, dbias for the training-mode forward (mean/invstd are the saved batch stats).
// relu_out: the fused forward's output (defined only for the fused BN+ReLU).
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd,
                                                       const Tensor& relu_out = Tensor());
// The backward of z = relu(batch_norm(x) + r), given dz and z: dx, dweight, dbias as
// batch_norm_backward(dz, x, weight, mean, invstd, z) returns them, and dr = dz where z > 0 (the
// residual's gradient, which is also the batch norm's dy), written in the same pass instead of a
// separate relu_backward.
std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_add_relu_backward(
    const Tensor& dz, const Tensor& x, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& z);

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
