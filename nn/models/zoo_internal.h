// Shared pieces of the backbone zoo (internal to nn/models/): initialisation schemes and the
// constructors of each family that make_backbone dispatches to.
#pragma once
#include <string>

#include "nn/layers.h"
#include "nn/models/backbone.h"

namespace okd::nn {

// How conv and linear weights are initialised (seeds.md §1.7):
//  he_fanout: conv ~ N(0, sqrt(2 / (k*k*C_out))), Linear PyTorch default (FFL, FFSD, DKEL, CRD)
//  he_fanin:  conv and Linear ~ N(0, sqrt(2 / fan_in)) (EKD-FWSNet)
//  pytorch:   PyTorch's defaults (kaiming-uniform with a = sqrt(5))
// BatchNorm is always gamma = 1, beta = 0.
struct InitScheme {
  enum Kind { HeFanOut, HeFanIn, PyTorch } kind = HeFanOut;
  static InitScheme parse(const std::string& s);
};

std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                  bool bias, const InitScheme& init, Generator& gen);
std::shared_ptr<Linear> make_linear(int64_t in, int64_t out, const InitScheme& init,
                                    Generator& gen);

// Each family's constructor, one file each (resnet_cifar.cpp, wide_resnet.cpp, vgg_cifar.cpp,
// densenet_cifar.cpp, resnet_imagenet.cpp).
BackbonePtr make_cifar_resnet(const std::string& name, int64_t depth, bool bottleneck,
                              const BackboneOptions& o);
// wrn{d}_{k} (AT/CRD definition) or wrn{d}_{k}_ffsd (FFSD's); nullptr when the name is neither.
BackbonePtr make_wide_resnet(const std::string& name, const BackboneOptions& o);
BackbonePtr make_vgg_cifar(const std::string& name, int64_t depth, const BackboneOptions& o);
BackbonePtr make_densenet_cifar(const std::string& name, int64_t depth, int64_t growth,
                                const BackboneOptions& o);
// ResNet-18/34 with torchvision's definition; cifar_stem: conv3x3 stride 1, no maxpool.
BackbonePtr make_imagenet_resnet(const std::string& name, int64_t depth, bool cifar_stem,
                                 const BackboneOptions& o);

// A stage's layers as (name, layer) pairs, the shape Stage::factory returns.
using NamedLayers = std::vector<std::pair<std::string, LayerPtr>>;

// A backbone of the zoo: adds stages from their factories (the stage's own layers are the
// factory's first product, so a copy from make_stage is built by exactly the same code).
class ZooBackbone : public Backbone {
 public:
  using Backbone::Backbone;

 protected:
  void add_built_stage(const std::string& stage_name, int64_t out_channels,
                       std::function<NamedLayers(Generator&)> factory, Generator& gen) {
    Stage stage{stage_name, factory(gen), out_channels, std::move(factory)};
    add_stage(std::move(stage));
  }
};

}  // namespace okd::nn
