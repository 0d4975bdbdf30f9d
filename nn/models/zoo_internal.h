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

BackbonePtr make_cifar_resnet(const std::string& name, int64_t depth, bool bottleneck,
                              const BackboneOptions& o);

}  // namespace okd::nn
