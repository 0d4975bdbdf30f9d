// The standard layers. Each is a Module whose forward(x) calls the differentiable function of
// its op family (autograd/functions/), holding its parameters with PyTorch's names (weight,
// bias, running_mean, running_var, num_batches_tracked) and PyTorch's default initialisation.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "nn/module.h"
#include "tensor/random.h"

namespace okd::nn {

// A module with one input and one output: what Sequential chains.
class Layer : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};
using LayerPtr = std::shared_ptr<Layer>;

struct Conv2dOptions {
  int64_t in_channels, out_channels, kernel_size;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

class Conv2d : public Layer {
 public:
  Conv2d(const Conv2dOptions& o, Generator& gen);
  Tensor forward(const Tensor& x) override;
  const Conv2dOptions& options() const { return o_; }
  Tensor weight, bias;

 private:
  Conv2dOptions o_;
};

struct ConvTranspose2dOptions {
  int64_t in_channels, out_channels, kernel_size;
  int64_t stride = 1, padding = 0, output_padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

class ConvTranspose2d : public Layer {
 public:
  ConvTranspose2d(const ConvTranspose2dOptions& o, Generator& gen);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;

 private:
  ConvTranspose2dOptions o_;
};

// BatchNorm over [N, C] (1d) or [N, C, H, W] (2d). Training mode normalises with batch statistics
// and updates the running ones on *every call* (a module called twice per step updates twice);
// eval mode uses the running statistics.
class BatchNorm : public Layer {
 public:
  BatchNorm(int64_t num_features, int spatial_dims, double eps = 1e-5, double momentum = 0.1,
            bool affine = true, bool track_running_stats = true);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) as one fused op in training mode (backbones call this for BN -> ReLU).
  Tensor forward_relu(const Tensor& x);
  // relu(forward(x) + residual) as one fused op in training mode (the end of a ResNet block).
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  Tensor run(const Tensor& x, bool relu, const Tensor& residual = Tensor());
  int64_t num_features_;
  int spatial_dims_;
  double eps_, momentum_;
};
inline std::shared_ptr<BatchNorm> BatchNorm2d(int64_t c, double eps = 1e-5, double momentum = 0.1,
                                              bool affine = true) {
  return std::make_shared<BatchNorm>(c, 2, eps, momentum, affine);
}
inline std::shared_ptr<BatchNorm> BatchNorm1d(int64_t c, double eps = 1e-5, double momentum = 0.1,
                                              bool affine = true) {
  return std::make_shared<BatchNorm>(c, 0, eps, momentum, affine);
}

class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
};

class ReLU : public Layer {
 public:
  ReLU() : Layer("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Layer {
 public:
  MaxPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;

 private:
  int64_t k_, s_, p_;
};

class AvgPool2d : public Layer {
 public:
  AvgPool2d(int64_t kernel, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;

 private:
  int64_t k_, s_, p_;
};

class AdaptiveAvgPool2d : public Layer {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w)
      : Layer("AdaptiveAvgPool2d"), h_(out_h), w_(out_w) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t h_, w_;
};

// Inverted dropout; the mask comes from the layer's own seeded generator.
class Dropout : public Layer {
 public:
  explicit Dropout(double p, uint64_t seed = 0) : Layer("Dropout"), p_(p), gen_(seed) {}
  Tensor forward(const Tensor& x) override;
  Generator& generator() { return gen_; }

 private:
  double p_;
  Generator gen_;
};

class Flatten : public Layer {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Layer("Flatten"), start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t start_, end_;
};

class Identity : public Layer {
 public:
  Identity() : Layer("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// Runs its layers in order; children are named "0", "1", ... as in PyTorch.
class Sequential : public Layer {
 public:
  Sequential() : Layer("Sequential") {}
  explicit Sequential(std::vector<LayerPtr> layers);
  void push_back(LayerPtr layer);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  const LayerPtr& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<LayerPtr> layers_;
};

// Holds modules under "0", "1", ... without defining a forward.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  void push_back(ModulePtr m);
  size_t size() const { return items_.size(); }
  const ModulePtr& operator[](size_t i) const { return items_.at(i); }
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    return std::dynamic_pointer_cast<M>(items_.at(i));
  }

 private:
  std::vector<ModulePtr> items_;
};

}  // namespace okd::nn
