// nn::functional. linear, softmax/log_softmax, cross_entropy and mse are compositions of
// differentiable primitives (their gradients follow by composition); the convolution, pooling,
// normalisation and dropout families call their own ops in autograd/functions/.
#include "nn/functional.h"

#include <cmath>

#include "autograd/functions.h"
#include "autograd/functions/nn.h"
#include "tensor/cuda/cuda_ops.h"

namespace okd::nn::functional {

namespace {
thread_local Precision t_autocast = Precision::Float32;
}

Autocast::Autocast(Precision p)
    : previous_(t_autocast), previous_prestaging_(cuda::bf16_prestaging()) {
  t_autocast = p;
  // bf16 convolutions on the GPU read bfloat16 copies; batch norm writes them beside its outputs.
  cuda::set_bf16_prestaging(p == Precision::BFloat16);
}
Autocast::~Autocast() {
  t_autocast = previous_;
  cuda::set_bf16_prestaging(previous_prestaging_);
}
Precision autocast_precision() { return t_autocast; }

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  OKD_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1), "linear: input ",
            shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()),
            " (expected last input dim ", weight.dim() == 2 ? weight.size(1) : -1, ")");
  Tensor y = okd::matmul(x, okd::transpose(weight, 0, 1), autocast_precision());
  return bias.defined() ? y + bias : y;
}

Tensor softmax(const Tensor& x, int64_t dim, double T) { return okd::softmax(x, dim, T); }
Tensor log_softmax(const Tensor& x, int64_t dim, double T) { return okd::log_softmax(x, dim, T); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing,
                     const Tensor& class_weights) {
  return okd::cross_entropy(logits, targets, label_smoothing, class_weights);
}

Tensor mse_loss(const Tensor& a, const Tensor& b) { return okd::mse_loss(a, b); }

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding, int64_t dilation, int64_t groups) {
  return okd::conv2d(
      input, weight, bias,
      {stride, stride, padding, padding, dilation, dilation, groups, autocast_precision()});
}

Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        int64_t stride, int64_t padding, int64_t output_padding, int64_t dilation,
                        int64_t groups) {
  return okd::conv_transpose2d(
      input, weight, bias,
      {stride, stride, padding, padding, dilation, dilation, groups, autocast_precision()},
      output_padding, output_padding);
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, const Tensor& num_batches_tracked) {
  return okd::batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                         num_batches_tracked);
}

Tensor batch_norm_relu(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, const Tensor& num_batches_tracked) {
  return okd::batch_norm_relu(input, running_mean, running_var, weight, bias, training, momentum,
                              eps, num_batches_tracked);
}
Tensor batch_norm_add_relu(const Tensor& input, const Tensor& residual, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                           bool training, double momentum, double eps,
                           const Tensor& num_batches_tracked) {
  return okd::batch_norm_add_relu(input, residual, running_mean, running_var, weight, bias,
                                  training, momentum, eps, num_batches_tracked);
}
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return okd::max_pool2d(x, kernel, stride, padding);
}
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return okd::avg_pool2d(x, kernel, stride, padding);
}
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  return okd::adaptive_avg_pool2d(x, out_h, out_w);
}
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  return okd::dropout(x, p, training, gen);
}

}  // namespace okd::nn::functional
