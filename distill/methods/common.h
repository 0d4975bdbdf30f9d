// Small helpers shared by the method implementations: building the configured backbone with a
// method's own shortcut/init defaults, scalar loss terms, mean of logits, and saving a
// generator's state in a method's extra_state.
#pragma once
#include <string>
#include <vector>

#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

// The run's backbone; shortcut / init override the run's when not "run" (a method's reference
// default, e.g. EKD-FWSNet uses option A and He fan-in).
nn::BackbonePtr make_method_backbone(const BuildContext& ctx, uint64_t seed_offset,
                                     const std::string& shortcut = "run",
                                     const std::string& init = "run");

// A float64 scalar tensor (for logging schedule weights as terms, exactly).
Tensor scalar_term(double value);
// Elementwise mean of equally shaped tensors.
Tensor mean_of(const std::vector<Tensor>& xs);

// Generator state <-> a two-element int64 tensor (seed, offset) for extra_state.
Tensor generator_state(const Generator& gen);
void set_generator_state(Generator& gen, const Tensor& state);

}  // namespace okd::distill
