// Helpers shared by the classic KD methods (see classic_common.h).
#include "distill/methods/classic_common.h"

#include <fstream>

#include "autograd/functions.h"
#include "distill/blocks/modules.h"
#include "tensor/ops/copy.h"

namespace okd::distill {

Tensor grad_rescale(const Tensor& x, double g) {
  OKD_CHECK(g > 0, "grad_rescale: the number of consumers must be positive, got ", g);
  Tensor base = detach(x);
  return base + (x - base) * (1.0 / g);
}

BufferSnapshot::BufferSnapshot(const nn::Module& m) {
  for (const auto& [n, b] : m.named_buffers()) saved_.emplace_back(b, ops::clone(b));
}

void BufferSnapshot::restore() const {
  for (const auto& [b, copy] : saved_) ops::copy_(b, copy);
}

Tensor soft_cross_entropy(const Tensor& student, const Tensor& teacher, double T) {
  Tensor p = softmax(detach(teacher), 1, T);
  const double n = static_cast<double>(student.shape()[0]);
  return sum(p * log_softmax(student, 1, T)) * (-1.0 / n);
}

Tensor soft_cross_entropy(const Tensor& student, const Tensor& teacher, const Tensor& T) {
  Tensor p = softmax(div(detach(teacher), T), 1);
  const double n = static_cast<double>(student.shape()[0]);
  return sum(p * log_softmax(div(student, T), 1)) * (-1.0 / n);
}

BackboneOutputs run_backbone(nn::Backbone& net, const Tensor& x) {
  BackboneOutputs o;
  const int head = net.num_stages() - 1;
  Tensor y = net.run_stage(0, x);
  for (int s = 1; s < head; ++s) {
    y = net.run_stage(s, y);
    o.stage_outputs.push_back(y);
  }
  o.features = y;
  const auto& layers = net.stage(head).layers;
  for (size_t i = 0; i + 1 < layers.size(); ++i) y = layers[i].second->forward(y);
  o.pooled = y;
  o.logits = layers.back().second->forward(y);
  return o;
}

Tensor leaky_relu(const Tensor& x, double slope) { return relu(x) * (1.0 - slope) + x * slope; }

FeatureDiscriminator::FeatureDiscriminator(int64_t c, Generator& gen)
    : nn::Layer("FeatureDiscriminator") {
  OKD_CHECK(c >= 4, "FeatureDiscriminator: needs at least 4 channels, got ", c);
  conv1_ = register_module("conv1", he_conv(c, c / 2, 3, 2, 1, 1, gen));
  bn1_ = register_module("bn1", nn::BatchNorm2d(c / 2));
  conv2_ = register_module("conv2", he_conv(c / 2, c / 4, 3, 2, 1, 1, gen));
  bn2_ = register_module("bn2", nn::BatchNorm2d(c / 4));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(c / 4, 1, gen));
}

Tensor FeatureDiscriminator::forward(const Tensor& x) {
  Tensor y = leaky_relu(bn1_->forward(conv1_->forward(x)), 0.2);
  y = leaky_relu(bn2_->forward(conv2_->forward(y)), 0.2);
  return sigmoid(fc_->forward(flatten(adaptive_avg_pool2d(y, 1, 1), 1)));
}

Tensor lsgan_discriminator_loss(const Tensor& d_real, const Tensor& d_fake) {
  Tensor r = d_real - 1.0;
  return mean(r * r) + mean(d_fake * d_fake);
}

Tensor lsgan_generator_loss(const Tensor& d_fake) {
  Tensor r = d_fake - 1.0;
  return mean(r * r);
}

std::string read_run_config_value(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    auto trim = [](std::string s) {
      const char* ws = " \t\r\"'";
      s.erase(0, s.find_first_not_of(ws));
      s.erase(s.find_last_not_of(ws) + 1);
      return s;
    };
    if (trim(line.substr(0, eq)) == key) return trim(line.substr(eq + 1));
  }
  return "";
}

}  // namespace okd::distill
