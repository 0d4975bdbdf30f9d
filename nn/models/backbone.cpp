// Backbone stage machinery, initialisation schemes and the zoo's name registry.
#include "nn/models/backbone.h"

#include <cmath>

#include "nn/init.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

void NamedSequential::add(const std::string& name, LayerPtr layer, bool register_child) {
  if (register_child) register_module(name, layer);
  items_.emplace_back(name, std::move(layer));
}

Tensor NamedSequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& [n, l] : items_) y = l->forward(y);
  return y;
}

int Backbone::stage_index(const std::string& name) const {
  std::string known;
  for (int i = 0; i < num_stages(); ++i) {
    if (stages_[i].name == name) return i;
    known += (i ? ", " : "") + stages_[i].name;
  }
  OKD_FAIL(type_name(), ": no stage named '", name, "' (stages: ", known, ")");
}

void Backbone::add_stage(Stage stage) {
  for (auto& [n, l] : stage.layers) {
    // Parameter-free layers (ReLU, pooling) are not registered, as in the PyTorch definitions.
    if (!l->named_parameters().empty() || !l->named_buffers().empty()) register_module(n, l);
  }
  stages_.push_back(std::move(stage));
}

Tensor Backbone::run_stage(int i, const Tensor& x) {
  OKD_CHECK(i >= 0 && i < num_stages(), type_name(), ": stage ", i, " out of range (", num_stages(),
            " stages)");
  Tensor y = x;
  for (auto& [n, l] : stages_[i].layers) y = l->forward(y);
  return y;
}

Tensor Backbone::run_stages(int first, int last, const Tensor& x) {
  Tensor y = x;
  for (int i = first; i <= last; ++i) y = run_stage(i, y);
  return y;
}

std::vector<Tensor> Backbone::forward_taps(const Tensor& x) {
  std::vector<Tensor> taps;
  Tensor y = x;
  for (int i = 0; i < num_stages(); ++i) {
    y = run_stage(i, y);
    taps.push_back(y);
  }
  return taps;
}

std::shared_ptr<NamedSequential> Backbone::make_stage(int i, Generator& gen) const {
  OKD_CHECK(i >= 0 && i < num_stages(), type_name(), ": stage ", i, " out of range");
  auto seq = std::make_shared<NamedSequential>();
  for (auto& [n, l] : stages_[i].factory(gen)) {
    bool has_state = !l->named_parameters().empty() || !l->named_buffers().empty();
    seq->add(n, l, has_state);
  }
  return seq;
}

InitScheme InitScheme::parse(const std::string& s) {
  if (s == "he_fanout") return {HeFanOut};
  if (s == "he_fanin") return {HeFanIn};
  if (s == "pytorch") return {PyTorch};
  OKD_FAIL("unknown init scheme '", s, "' (expected he_fanout, he_fanin or pytorch)");
}

std::shared_ptr<Conv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                                  bool bias, const InitScheme& init, Generator& gen) {
  Conv2dOptions o{in, out, k, stride, pad, 1, 1, bias};
  auto conv = std::make_shared<Conv2d>(o, gen);  // PyTorch default init
  if (init.kind == InitScheme::HeFanOut)
    init::kaiming_normal_(conv->weight, gen, 0, init::FanMode::FanOut, init::Nonlinearity::ReLU);
  else if (init.kind == InitScheme::HeFanIn)
    init::kaiming_normal_(conv->weight, gen, 0, init::FanMode::FanIn, init::Nonlinearity::ReLU);
  return conv;
}

std::shared_ptr<Linear> make_linear(int64_t in, int64_t out, const InitScheme& init,
                                    Generator& gen) {
  auto fc = std::make_shared<Linear>(in, out, gen);
  if (init.kind == InitScheme::HeFanIn)
    init::kaiming_normal_(fc->weight, gen, 0, init::FanMode::FanIn, init::Nonlinearity::ReLU);
  return fc;
}

std::vector<std::string> backbone_names() {
  return {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet110_bneck"};
}

BackbonePtr make_backbone(const BackboneOptions& o) {
  const std::string& a = o.arch;
  for (int depth : {20, 32, 44, 56, 110})
    if (a == "resnet" + std::to_string(depth)) return make_cifar_resnet(a, depth, false, o);
  if (a == "resnet110_bneck") return make_cifar_resnet(a, 110, true, o);
  std::string known;
  for (const auto& n : backbone_names()) known += (known.empty() ? "" : ", ") + n;
  OKD_FAIL("unknown architecture '", a, "' (known: ", known, ")");
}

}  // namespace okd::nn
