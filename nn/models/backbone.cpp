// Backbone stage machinery, initialisation schemes and the zoo's name registry.
#include "nn/models/backbone.h"

#include <cmath>

#include "nn/init.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

// Registers a module under a dotted path ("features.denseblock1"), creating plain container
// modules for the leading names, so nested PyTorch names (DenseNet's features.*) stay exact.
void register_path(Module& root, const std::string& path, const ModulePtr& module) {
  const size_t dot = path.find('.');
  if (dot == std::string::npos) {
    root.register_module(path, module);
    return;
  }
  const std::string head = path.substr(0, dot);
  ModulePtr container;
  for (const auto& [n, c] : root.named_children())
    if (n == head) container = c;
  if (!container) container = root.register_module(head, std::make_shared<Module>("Container"));
  register_path(*container, path.substr(dot + 1), module);
}

void NamedSequential::add(const std::string& name, LayerPtr layer, bool register_child) {
  if (register_child) register_path(*this, name, layer);
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
    if (!l->named_parameters().empty() || !l->named_buffers().empty()) register_path(*this, n, l);
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

size_t head_pool_index(const std::vector<std::pair<std::string, LayerPtr>>& layers) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer* l = layers[i].second.get();
    if (dynamic_cast<const AdaptiveAvgPool2d*>(l) || dynamic_cast<const AvgPool2d*>(l) ||
        dynamic_cast<const MaxPool2d*>(l) || dynamic_cast<const Flatten*>(l))
      return i;
  }
  return layers.size();
}

Tensor Backbone::head_features(const Tensor& x) {
  const auto& head = stages_.back().layers;
  Tensor y = x;
  for (size_t i = 0; i < head_pool_index(head); ++i) y = head[i].second->forward(y);
  return y;
}

Tensor Backbone::head_classify(const Tensor& f) {
  const auto& head = stages_.back().layers;
  Tensor y = f;
  for (size_t i = head_pool_index(head); i < head.size(); ++i) y = head[i].second->forward(y);
  return y;
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

// The named architectures (make_backbone also builds any wrn{d}_{k}[_ffsd] with d = 6n + 4).
std::vector<std::string> backbone_names() {
  return {"resnet8",
          "resnet20",
          "resnet32",
          "resnet44",
          "resnet56",
          "resnet110",
          "resnet110_bneck",
          "wrn16_1",
          "wrn16_2",
          "wrn40_1",
          "wrn40_2",
          "wrn28_4",
          "wrn28_10",
          "wrn16_2_ffsd",
          "wrn40_2_ffsd",
          "wrn28_10_ffsd",
          "vgg16_bn",
          "densenet40_12",
          "densenet_bc_100_12",
          "resnet18",
          "resnet34",
          "resnet18_cifar",
          "resnet34_cifar"};
}

BackbonePtr make_backbone(const BackboneOptions& o) {
  const std::string& a = o.arch;
  for (int depth : {8, 20, 32, 44, 56, 110})
    if (a == "resnet" + std::to_string(depth)) return make_cifar_resnet(a, depth, false, o);
  if (a == "resnet110_bneck") return make_cifar_resnet(a, 110, true, o);
  if (BackbonePtr wrn = make_wide_resnet(a, o)) return wrn;
  if (a == "vgg16_bn") return make_vgg_cifar(a, 16, o);
  if (a == "densenet40_12") return make_densenet_cifar(a, 40, 12, o);
  if (a == "densenet_bc_100_12") return make_densenet_cifar(a, 100, 12, o);
  for (int depth : {18, 34}) {
    const std::string base = "resnet" + std::to_string(depth);
    if (a == base) return make_imagenet_resnet(a, depth, false, o);
    if (a == base + "_cifar") return make_imagenet_resnet(a, depth, true, o);
  }
  std::string known;
  for (const auto& n : backbone_names()) known += (known.empty() ? "" : ", ") + n;
  OKD_FAIL("unknown architecture '", a, "' (known: ", known,
           "; and wrn{d}_{k} or wrn{d}_{k}_ffsd for any depth d = 6n + 4 and width k)");
}

}  // namespace okd::nn
