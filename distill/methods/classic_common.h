// Helpers shared by the classic KD methods (classic.md): CL-ILR's backpropagation rescaling, a
// snapshot of a network's buffers (BN running statistics) to recompute a prediction without
// counting it, soft-target cross-entropy, a backbone's last feature map / pooled features /
// stage outputs, and the LSGAN discriminator of AFD and AMLN.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "distill/method.h"
#include "nn/layers.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// R_g(x): identity in the forward pass; the gradient reaching x is multiplied by 1/g.
//   y = sg(x) + (x - sg(x)) / g      (x - sg(x) is exactly 0, so y == x bit for bit)
Tensor grad_rescale(const Tensor& x, double g);

// Copies of every buffer of a module; restore() writes them back (a forward pass in train mode
// then leaves no trace in the BN running statistics).
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const nn::Module& m);
  void restore() const;

 private:
  std::vector<std::pair<Tensor, Tensor>> saved_;  // (buffer, copy)
};

// Soft-target cross-entropy H(p, q) = -(1/B) sum_b sum_c p_bc log q_bc with p = softmax(t/T)
// (teacher detached) and q = softmax(s/T): the KL plus the teacher's entropy (same gradient).
Tensor soft_cross_entropy(const Tensor& student_logits, const Tensor& teacher_logits, double T);
// The same with T a scalar tensor on the logits' device (of their dtype, no gradient), so a step
// whose temperature changes on the device needs no host read (phuong).
Tensor soft_cross_entropy(const Tensor& student_logits, const Tensor& teacher_logits,
                          const Tensor& T);

// A backbone's pieces: the last feature map (every stage but the head), the pooled features
// (the head without its classifier) and the logits (the classifier).
struct BackboneOutputs {
  std::vector<Tensor> stage_outputs;  // outputs of stages 1 .. head-1 (the stem is not included)
  Tensor features;                    // last feature map [N, C, H, W] (= stage_outputs.back())
  Tensor pooled;                      // [N, D]
  Tensor logits;                      // [N, classes]
};
BackboneOutputs run_backbone(nn::Backbone& net, const Tensor& x);

// LeakyReLU(x) = max(x, slope x) for 0 < slope < 1, as relu(x) (1 - slope) + slope x.
Tensor leaky_relu(const Tensor& x, double slope);

// The discriminator of AFD/AMLN (classic.md §11) on a [N, c, H, W] feature map:
// conv3x3(c -> c/2, s2) -> BN -> LeakyReLU(0.2) -> conv3x3(c/2 -> c/4, s2) -> BN -> LeakyReLU(0.2)
// -> GAP -> FC(c/4 -> 1) -> sigmoid; output [N, 1] in (0, 1). Convs He-normal fan-out, no bias.
class FeatureDiscriminator : public nn::Layer {
 public:
  FeatureDiscriminator(int64_t channels, Generator& gen);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_;
  std::shared_ptr<nn::Linear> fc_;
};

// Least-squares GAN terms: L_D = mean[(D(real) - 1)^2] + mean[D(fake)^2], L_G =
// mean[(D(fake)-1)^2].
Tensor lsgan_discriminator_loss(const Tensor& d_real, const Tensor& d_fake);
Tensor lsgan_generator_loss(const Tensor& d_fake);

// Reads `key = value` from a run directory's config.toml (quotes stripped); "" when absent.
std::string read_run_config_value(const std::string& config_path, const std::string& key);

}  // namespace okd::distill
