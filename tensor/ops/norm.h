// Raw batch-normalisation kernels over [N, C, *] (any number of trailing spatial dims):
//   training: xhat = (x - mean_c) * invstd_c, invstd = 1 / sqrt(var_c + eps) with the biased
//             batch variance; y = weight_c * xhat + bias_c.
//   backward: dx = weight * invstd / M * (M dy - sum(dy) - xhat sum(dy xhat)), M = N * prod(*),
//             dweight = sum(dy xhat), dbias = sum(dy) (sums over every dim but C).
#pragma once
#include <tuple>

#include "tensor/tensor.h"

namespace okd::ops {

struct BatchNormStats {
  Tensor mean, invstd, var_unbiased;  // [C] each
};

// y and the batch statistics. weight/bias may be undefined (no affine transform).
std::pair<Tensor, BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                   const Tensor& bias, double eps);
// y using the given (running) mean and variance.
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps);
// dx, dweight, dbias for the training-mode forward (mean/invstd are the saved batch stats).
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd);

}  // namespace okd::ops
