// CIFAR ResNet-(6n+2) (He et al. 2016) with option-A or option-B shortcuts, as in classic.md
// §2.1 and seeds.md §1.7. Names follow the KD code bases: conv1, bn1, layer{1,2,3}.{i}.conv1 /
// bn1 / conv2 / bn2, layer{s}.{i}.shortcut.0 (1x1 conv) and .1 (BN) for option B, fc.
#include <cmath>

#include "autograd/functions.h"
#include "nn/models/backbone.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

namespace {

// Option A: x[:, :, ::2, ::2] (when strided) then C_pad zero channels on each side.
class ShortcutA : public Layer {
 public:
  ShortcutA(int64_t stride, int64_t pad_channels)
      : Layer("ShortcutA"), stride_(stride), pad_(pad_channels) {}
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    if (stride_ > 1) {
      y = okd::slice(y, 2, 0, y.size(2), stride_);
      y = okd::slice(y, 3, 0, y.size(3), stride_);
    }
    if (pad_ == 0) return y;
    Shape zs = y.shape();
    zs[1] = pad_;
    Tensor z = zeros(zs, y.dtype(), y.device());
    return okd::cat({z, y, z}, 1);
  }

 private:
  int64_t stride_, pad_;
};

class BasicBlock : public Layer {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride, char shortcut, const InitScheme& init,
             Generator& gen)
      : Layer("BasicBlock") {
    conv1_ = register_module("conv1", make_conv(in, out, 3, stride, 1, false, init, gen));
    bn1_ = register_module("bn1", BatchNorm2d(out));
    conv2_ = register_module("conv2", make_conv(out, out, 3, 1, 1, false, init, gen));
    bn2_ = register_module("bn2", BatchNorm2d(out));
    if (stride != 1 || in != out) {
      if (shortcut == 'A') {
        shortcut_ = std::make_shared<ShortcutA>(stride, (out - in) / 2);
      } else {
        auto seq = std::make_shared<Sequential>();
        seq->push_back(make_conv(in, out, 1, stride, 0, false, init, gen));
        seq->push_back(BatchNorm2d(out));
        shortcut_ = register_module("shortcut", seq);
      }
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = conv2_->forward(bn1_->forward_relu(conv1_->forward(x)));
    // relu(bn2(out) + shortcut(x)) in one pass
    return bn2_->forward_add_relu(out, shortcut_ ? shortcut_->forward(x) : x);
  }

 private:
  LayerPtr conv1_, conv2_, shortcut_;
  std::shared_ptr<BatchNorm> bn1_, bn2_;
};

class Bottleneck : public Layer {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in, int64_t planes, int64_t stride, const InitScheme& init, Generator& gen)
      : Layer("Bottleneck") {
    const int64_t out = planes * kExpansion;
    conv1_ = register_module("conv1", make_conv(in, planes, 1, 1, 0, false, init, gen));
    bn1_ = register_module("bn1", BatchNorm2d(planes));
    conv2_ = register_module("conv2", make_conv(planes, planes, 3, stride, 1, false, init, gen));
    bn2_ = register_module("bn2", BatchNorm2d(planes));
    conv3_ = register_module("conv3", make_conv(planes, out, 1, 1, 0, false, init, gen));
    bn3_ = register_module("bn3", BatchNorm2d(out));
    if (stride != 1 || in != out) {
      auto seq = std::make_shared<Sequential>();
      seq->push_back(make_conv(in, out, 1, stride, 0, false, init, gen));
      seq->push_back(BatchNorm2d(out));
      shortcut_ = register_module("downsample", seq);
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = bn1_->forward_relu(conv1_->forward(x));
    out = bn2_->forward_relu(conv2_->forward(out));
    out = conv3_->forward(out);
    return bn3_->forward_add_relu(out, shortcut_ ? shortcut_->forward(x) : x);
  }

 private:
  LayerPtr conv1_, conv2_, conv3_, shortcut_;
  std::shared_ptr<BatchNorm> bn1_, bn2_, bn3_;
};

class CifarResNet : public Backbone {
 public:
  // blocks: per stage; bottleneck selects Bottleneck blocks (planes 16/32/64, expansion 4).
  CifarResNet(const std::string& name, int64_t blocks, bool bottleneck, const BackboneOptions& o)
      : Backbone(name) {
    num_classes_ = o.num_classes;
    const InitScheme init = InitScheme::parse(o.init);
    const char shortcut = o.shortcut;
    const int64_t in_ch = o.in_channels;
    const int64_t expansion = bottleneck ? Bottleneck::kExpansion : 1;
    OKD_CHECK(shortcut == 'A' || shortcut == 'B', name, ": shortcut must be 'A' or 'B', got '",
              shortcut, "'");
    OKD_CHECK(!(bottleneck && shortcut == 'A'), name,
              ": bottleneck networks use option-B shortcuts");
    Generator gen(o.seed);

    Stage stem{"stem", {}, 16, [in_ch, init](Generator& g) {
                 std::vector<std::pair<std::string, LayerPtr>> v;
                 v.emplace_back("conv1", make_conv(in_ch, 16, 3, 1, 1, false, init, g));
                 v.emplace_back("bn1", BatchNorm2d(16));
                 v.emplace_back("relu", std::make_shared<ReLU>());
                 return v;
               }};
    stem.layers = stem.factory(gen);
    add_stage(std::move(stem));

    int64_t in = 16;
    const int64_t widths[3] = {16, 32, 64};
    for (int s = 0; s < 3; ++s) {
      const int64_t planes = widths[s], stride = s == 0 ? 1 : 2, stage_in = in;
      auto factory = [=](Generator& g) {
        auto layer = std::make_shared<Sequential>();
        int64_t c = stage_in;
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t st = b == 0 ? stride : 1;
          if (bottleneck)
            layer->push_back(std::make_shared<Bottleneck>(c, planes, st, init, g));
          else
            layer->push_back(std::make_shared<BasicBlock>(c, planes, st, shortcut, init, g));
          c = planes * expansion;
        }
        return std::vector<std::pair<std::string, LayerPtr>>{
            {"layer" + std::to_string(s + 1), layer}};
      };
      Stage stage{"stage" + std::to_string(s + 1), factory(gen), planes * expansion, factory};
      add_stage(std::move(stage));
      in = planes * expansion;
    }
    feature_dim_ = in;
    const int64_t classes = o.num_classes, feat = in;
    Stage head{"head", {}, 0, [=](Generator& g) {
                 std::vector<std::pair<std::string, LayerPtr>> v;
                 v.emplace_back("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
                 v.emplace_back("flatten", std::make_shared<Flatten>(1));
                 v.emplace_back("fc", make_linear(feat, classes, init, g));
                 return v;
               }};
    head.layers = head.factory(gen);
    add_stage(std::move(head));
  }
};

}  // namespace

BackbonePtr make_cifar_resnet(const std::string& name, int64_t depth, bool bottleneck,
                              const BackboneOptions& o) {
  int64_t blocks = bottleneck ? (depth - 2) / 9 : (depth - 2) / 6;
  return std::make_shared<CifarResNet>(name, blocks, bottleneck, o);
}

}  // namespace okd::nn
