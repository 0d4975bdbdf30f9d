// Fusion, TransFusion, decoders, exit heads and the branched network.
#include "distill/blocks/modules.h"

#include "autograd/functions.h"
#include "nn/init.h"

namespace okd::distill {

std::shared_ptr<nn::Conv2d> he_conv(int64_t in, int64_t out, int64_t k, int64_t stride,
                                    int64_t padding, int64_t groups, Generator& gen, bool bias) {
  nn::Conv2dOptions o{in, out, k};
  o.stride = stride;
  o.padding = padding;
  o.groups = groups;
  o.bias = bias;
  auto conv = std::make_shared<nn::Conv2d>(o, gen);
  // N(0, sqrt(2 / (k*k*C_out))): kaiming normal, fan_out, ReLU gain.
  nn::init::kaiming_normal_(conv->weight, gen, 0, nn::init::FanMode::FanOut,
                            nn::init::Nonlinearity::ReLU);
  if (bias) nn::init::zeros_(conv->bias);
  return conv;
}

// ---- SeparableConvBlock / FusionModule -------------------------------------------------------

SeparableConvBlock::SeparableConvBlock(int64_t in, int64_t out, Generator& gen)
    : nn::Layer("SeparableConvBlock") {
  dwconv_ = register_module("dwconv", he_conv(in, in, 3, 1, 1, in, gen));
  bn1_ = register_module("bn1", nn::BatchNorm2d(in));
  pwconv_ = register_module("pwconv", he_conv(in, out, 1, 1, 0, 1, gen));
  bn2_ = register_module("bn2", nn::BatchNorm2d(out));
}

Tensor SeparableConvBlock::forward(const Tensor& x) {
  Tensor y = relu(bn1_->forward(dwconv_->forward(x)));
  return relu(bn2_->forward(pwconv_->forward(y)));
}

FusionModule::FusionModule(int64_t in, int64_t out, int64_t classes, Generator& gen)
    : nn::Module("FusionModule") {
  fuse_ = register_module("fuse", std::make_shared<SeparableConvBlock>(in, out, gen));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(out, classes, gen));
}

FusionModule::Output FusionModule::forward(const std::vector<Tensor>& maps) {
  Output o;
  o.fused_map = fuse_->forward(maps.size() == 1 ? maps[0] : cat(maps, 1));
  o.logits = fc_->forward(flatten(adaptive_avg_pool2d(o.fused_map, 1, 1), 1));
  return o;
}

// ---- SelfDistillDecoder ----------------------------------------------------------------------

SelfDistillDecoder::SelfDistillDecoder(int64_t channels, int up_blocks, Generator& gen)
    : nn::Module("SelfDistillDecoder") {
  int64_t c = channels;
  for (int b = 0; b < up_blocks; ++b) {
    OKD_CHECK(c % 2 == 0, "SelfDistillDecoder: ", c, " channels cannot be halved");
    nn::ConvTranspose2dOptions o{c, c / 2, 3};
    o.stride = 2;
    o.padding = 1;
    o.output_padding = 1;
    o.bias = false;
    auto seq = std::make_shared<nn::Sequential>();
    seq->push_back(std::make_shared<nn::ConvTranspose2d>(o, gen));
    seq->push_back(nn::BatchNorm2d(c / 2));
    seq->push_back(std::make_shared<nn::ReLU>());
    blocks_.push_back(register_module("up" + std::to_string(b), seq));
    c /= 2;
  }
}

std::vector<Tensor> SelfDistillDecoder::forward(const Tensor& x) {
  std::vector<Tensor> outs;
  Tensor y = x;
  for (auto& b : blocks_) {
    y = b->forward(y);
    outs.push_back(y);
  }
  return {outs.rbegin(), outs.rend()};
}

// ---- ExitHead --------------------------------------------------------------------------------

ExitHead::ExitHead(int64_t in, const std::vector<int64_t>& widths, int64_t classes, Generator& gen)
    : nn::Layer("ExitHead") {
  convs_ = std::make_shared<nn::Sequential>();
  int64_t c = in;
  for (int64_t w : widths) {
    convs_->push_back(he_conv(c, w, 3, 2, 1, 1, gen));
    convs_->push_back(nn::BatchNorm2d(w));
    convs_->push_back(std::make_shared<nn::ReLU>());
    c = w;
  }
  register_module("convs", convs_);
  fc_ = register_module("fc", std::make_shared<nn::Linear>(c, classes, gen));
}

Tensor ExitHead::features(const Tensor& x) {
  return flatten(adaptive_avg_pool2d(convs_->forward(x), 1, 1), 1);
}

Tensor ExitHead::forward(const Tensor& x) { return fc_->forward(features(x)); }

// ---- BranchedNet -----------------------------------------------------------------------------

BranchedNet::BranchedNet(nn::BackbonePtr base, int split, int num_branches, Generator& gen)
    : nn::Module("BranchedNet"), base_(std::move(base)), split_(split) {
  const int K = base_->num_stages();
  OKD_CHECK(split >= 0 && split < K, "BranchedNet: split stage ", split, " out of range 0..",
            K - 1);
  OKD_CHECK(num_branches >= 1, "BranchedNet: need at least one branch");
  register_module("base", base_);
  branches_.resize(num_branches);
  for (int s = split; s < K; ++s) {
    std::vector<std::pair<std::string, nn::LayerPtr>> own = base_->stage(s).layers;
    branches_[0].push_back(own);
  }
  for (int b = 1; b < num_branches; ++b) {
    auto holder = std::make_shared<nn::Module>("Branch");
    for (int s = split; s < K; ++s) {
      auto copy = base_->make_stage(s, gen);
      for (const auto& [name, layer] : copy->items()) {
        if (!layer->named_parameters().empty() || !layer->named_buffers().empty())
          nn::register_path(*holder, name, layer);
      }
      branches_[b].push_back(copy->items());
    }
    register_module("branch" + std::to_string(b), holder);
  }
}

Tensor BranchedNet::trunk(const Tensor& x) {
  return split_ == 0 ? x : base_->run_stages(0, split_ - 1, x);
}

nn::LayerPtr BranchedNet::classifier(int b) const { return branches_.at(b).back().back().second; }

Tensor BranchedNet::branch_features(int b, const Tensor& h) {
  Tensor y = h;
  const auto& stages = branches_.at(b);
  for (size_t s = 0; s + 1 < stages.size(); ++s)
    for (auto& [n, l] : stages[s]) y = l->forward(y);
  const auto& head = stages.back();
  for (size_t i = 0; i < nn::head_pool_index(head); ++i) y = head[i].second->forward(y);
  return y;
}

Tensor BranchedNet::branch_head(int b, const Tensor& f) {
  const auto& head = branches_.at(b).back();
  Tensor y = f;
  for (size_t i = nn::head_pool_index(head); i < head.size(); ++i) y = head[i].second->forward(y);
  return y;
}

Tensor BranchedNet::branch_pooled(int b, const Tensor& f) {
  const auto& head = branches_.at(b).back();
  Tensor y = f;
  for (size_t i = nn::head_pool_index(head); i + 1 < head.size(); ++i)
    y = head[i].second->forward(y);
  return y;
}

Tensor BranchedNet::branch_classify(int b, const Tensor& pooled) {
  return branches_.at(b).back().back().second->forward(pooled);
}

}  // namespace okd::distill
