// Differentiable network ops: convolution, batch normalisation, pooling and the softmax family.
// conv2d/conv_transpose2d/batch_norm/pooling/log_softmax/cross_entropy/kd_div are tape ops with
// their own backward (tensor/ops/{conv,norm,pool,loss}.h); softmax, dropout and the regression
// losses are compositions, so their gradients follow from the primitives.
#pragma once
#include "autograd/tape.h"
#include "tensor/ops/conv.h"
#include "tensor/random.h"

namespace okd {

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const ops::Conv2dParams& params);
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const ops::Conv2dParams& params, int64_t output_padding_h = 0,
                        int64_t output_padding_w = 0);
// Training: batch statistics; running_mean/var (if defined) are updated in place with
// running = (1 - momentum) running + momentum batch (unbiased batch variance), once per call, and
// num_batches_tracked (if defined) is advanced by one in the same launch.
// Eval: running statistics. weight/bias may be undefined.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, const Tensor& num_batches_tracked = Tensor());
// relu(batch_norm(...)), fused into one op in training mode (same values and gradients).
Tensor batch_norm_relu(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, const Tensor& num_batches_tracked = Tensor());
// relu(batch_norm(...) + residual), fused into one op in training mode (same values and
// gradients): the end of a ResNet block (its last batch norm, the shortcut add, the ReLU).
Tensor batch_norm_add_relu(const Tensor& input, const Tensor& residual, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                           bool training, double momentum, double eps,
                           const Tensor& num_batches_tracked = Tensor());
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

// log_softmax(x / T) and softmax(x / T) along dim.
Tensor log_softmax(const Tensor& x, int64_t dim = -1, double T = 1.0);
Tensor softmax(const Tensor& x, int64_t dim = -1, double T = 1.0);
// Mean cross-entropy of logits [N, C] against int64 targets [N] (PyTorch's formula with label
// smoothing and optional class weights [C]; targets get no gradient).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double label_smoothing = 0.0,
                     const Tensor& class_weights = Tensor());
// The KD divergence per row of student and teacher logits [N, C] (tensor/ops/loss.h):
//   row[n] = sum_c p_t (log p_t - log_softmax(student / T)), p_t = softmax(teacher / T) + eps
// (log p_t = log(p_t + eps) when eps > 0), fused into one op. Returns [N]. The teacher is a
// constant (detached): only the student gets a gradient.
Tensor kd_div(const Tensor& student_logits, const Tensor& teacher_logits, double T,
              double teacher_eps = 0.0);
// Inverted dropout: x * mask / (1 - p), mask ~ Bernoulli(1 - p) from gen; identity when !training.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
// Mean-reduced regression losses and cosine similarity (compositions).
Tensor mse_loss(const Tensor& a, const Tensor& b);
Tensor l1_loss(const Tensor& a, const Tensor& b);
Tensor smooth_l1_loss(const Tensor& a, const Tensor& b, double beta = 1.0);
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim = 1, double eps = 1e-8);

}  // namespace okd
