// nn::functional. linear, softmax/log_softmax, cross_entropy and mse are compositions of
// differentiable primitives (their gradients follow by composition); the convolution, pooling,
// normalisation and dropout families call their own ops in autograd/functions/.
#include "nn/functional.h"

#include <cmath>

#include "autograd/functions.h"
#include "autograd/functions/nn.h"

namespace okd::nn::functional {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  OKD_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1), "linear: input ",
            shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()),
            " (expected last input dim ", weight.dim() == 2 ? weight.size(1) : -1, ")");
  Tensor y = okd::matmul(x, okd::transpose(weight, 0, 1));
  return bias.defined() ? y + bias : y;
}

Tensor softmax(const Tensor& x, int64_t dim, double T) { return okd::softmax(x, dim, T); }
Tensor log_softmax(const Tensor& x, int64_t dim, double T) { return okd::log_softmax(x, dim, T); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing,
                     const Tensor& class_weights) {
  return okd::cross_entropy(logits, targets, label_smoothing, class_weights);
}

Tensor mse_loss(const Tensor& a, const Tensor& b) { return okd::mse_loss(a, b); }

}  // namespace okd::nn::functional
