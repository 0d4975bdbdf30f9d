// nn::functional: the user-facing functional API of the network ops (PyTorch's torch.nn.functional
// shapes). Each function forwards to the differentiable op of its family in autograd/functions/.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace okd::nn::functional {

// Mixed precision (PyTorch's autocast): while an Autocast(Precision::BFloat16) is alive on this
// thread, conv2d, conv_transpose2d and linear on float32 tensors form their products from
// bfloat16-rounded operands with float32 sums and round their results to bfloat16 (dtype.h), in
// the forward and in both gradients (the tape keeps the precision of the forward). Parameters,
// gradients, optimizer state and every other op stay float32. Scopes nest; thread-local. On the
// GPU, bf16 also has training batch norm write bfloat16 copies of its outputs for the next
// convolution (cuda::set_bf16_prestaging).
class Autocast {
 public:
  explicit Autocast(Precision p);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  Precision previous_;
  bool previous_prestaging_;  // cuda::bf16_prestaging() outside this scope
};
Precision autocast_precision();

// input [N, C_in, H, W], weight [C_out, C_in/groups, kH, kW], bias [C_out] or undefined.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
// weight [C_in, C_out/groups, kH, kW].
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        int64_t stride = 1, int64_t padding = 0, int64_t output_padding = 0,
                        int64_t dilation = 1, int64_t groups = 1);
// x [N, in], weight [out, in], bias [out] or undefined: x W^T + b.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
// Training: batch statistics, running stats updated in place (running = (1-m) running + m batch,
// unbiased batch variance) and num_batches_tracked advanced, in one launch; eval: running
// statistics. weight/bias/running_*/num_batches_tracked may be undefined.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5, const Tensor& num_batches_tracked = Tensor());
// relu(batch_norm(...)): one fused op in training mode, the same values and gradients.
Tensor batch_norm_relu(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training,
                       double momentum = 0.1, double eps = 1e-5,
                       const Tensor& num_batches_tracked = Tensor());
// relu(batch_norm(...) + residual): one fused op in training mode, the same values and gradients.
Tensor batch_norm_add_relu(const Tensor& input, const Tensor& residual, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                           bool training, double momentum = 0.1, double eps = 1e-5,
                           const Tensor& num_batches_tracked = Tensor());
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

// softmax(x / T) and log_softmax(x / T) along dim.
Tensor softmax(const Tensor& x, int64_t dim = -1, double T = 1.0);
Tensor log_softmax(const Tensor& x, int64_t dim = -1, double T = 1.0);
// Mean cross-entropy of logits [N, C] against int64 targets [N].
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0,
                     const Tensor& class_weights = Tensor());
Tensor mse_loss(const Tensor& a, const Tensor& b);

}  // namespace okd::nn::functional
