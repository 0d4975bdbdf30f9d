// Helpers shared by the method implementations.
#include "distill/methods/common.h"

#include "autograd/functions.h"

namespace okd::distill {

nn::BackbonePtr make_method_backbone(const BuildContext& ctx, uint64_t seed_offset,
                                     const std::string& shortcut, const std::string& init) {
  nn::BackboneOptions o;
  o.arch = ctx.arch;
  o.num_classes = ctx.num_classes;
  o.in_channels = ctx.in_channels;
  o.shortcut = ctx.shortcut;
  if (shortcut != "run") {
    OKD_CHECK(shortcut == "A" || shortcut == "B", "shortcut must be A, B or run, got '", shortcut,
              "'");
    o.shortcut = shortcut[0];
  }
  o.init = init == "run" ? ctx.init : init;
  o.seed = ctx.seed + seed_offset;
  return nn::make_backbone(o);
}

// float64, so a weight computed in double is logged exactly in any run (a float32 term rounded it
// to ~6e-8 relative).
Tensor scalar_term(double value) { return scalar_tensor(value, DType::Float64); }

Tensor mean_of(const std::vector<Tensor>& xs) {
  OKD_CHECK(!xs.empty(), "mean_of: no tensors");
  Tensor s = xs[0];
  for (size_t i = 1; i < xs.size(); ++i) s = s + xs[i];
  return s * (1.0 / static_cast<double>(xs.size()));
}

Tensor generator_state(const Generator& gen) {
  return from_vector<int64_t>(
      {static_cast<int64_t>(gen.seed()), static_cast<int64_t>(gen.offset())}, {2});
}

void set_generator_state(Generator& gen, const Tensor& state) {
  auto v = to_vector<int64_t>(state);
  OKD_CHECK(v.size() == 2, "generator state: expected 2 values, got ", v.size());
  gen.set_state(static_cast<uint64_t>(v[0]), static_cast<uint64_t>(v[1]));
}

}  // namespace okd::distill
