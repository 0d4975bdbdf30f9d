// Wide ResNet WRN-d-k for CIFAR (Zagoruyko & Komodakis 2016) in the two definitions the KD code
// bases use; n = (d - 4) / 6 blocks per group, group widths 16k, 32k, 64k, strides 1, 2, 2.
//  wrn{d}_{k}       classic.md §2.2, the AT and CRD code: pre-activation block
//                   BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, no conv bias, no dropout (p = 0);
//                   1x1 shortcut conv on the *pre-activated* input when the width changes.
//                   Names: conv1, block{1,2,3}.layer.{i}.bn1/conv1/bn2/conv2/convShortcut, bn1, fc.
//  wrn{d}_{k}_ffsd  seeds.md §1.7, FFSD's code: conv bias everywhere, dropout between the convs
//                   (p = 0.3 for WRN-28-10, else 0), stride on the *second* conv, 1x1 shortcut
//                   (with bias) on the raw input, and the final BN built with momentum 0.9
//                   [REF-QUIRK]: running = 0.1 * running + 0.9 * batch. Names: conv1,
//                   layer{1,2,3}.{i}.bn1/conv1/bn2/conv2/shortcut.0, bn1, linear.
// Stages: stem (conv1, no BN after it), stage1..3 (the groups), head (final BN-ReLU, GAP, FC). The
// final BN-ReLU belongs to the head, so a branch copied at any stage owns it (classic.md §2.4).
#include <regex>

#include "autograd/functions.h"
#include "nn/models/backbone.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

namespace {

// AT/CRD block. The shortcut sees the pre-activated input when the width changes (else x itself).
class WideBasicBlock : public Layer {
 public:
  WideBasicBlock(int64_t in, int64_t out, int64_t stride, const InitScheme& init, Generator& gen)
      : Layer("WideBasicBlock") {
    bn1_ = register_module("bn1", BatchNorm2d(in));
    conv1_ = register_module("conv1", make_conv(in, out, 3, stride, 1, false, init, gen));
    bn2_ = register_module("bn2", BatchNorm2d(out));
    conv2_ = register_module("conv2", make_conv(out, out, 3, 1, 1, false, init, gen));
    if (in != out)
      shortcut_ =
          register_module("convShortcut", make_conv(in, out, 1, stride, 0, false, init, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor pre = bn1_->forward_relu(x);
    Tensor out = bn2_->forward_relu(conv1_->forward(pre));
    out = conv2_->forward(out);
    return out + (shortcut_ ? shortcut_->forward(pre) : x);
  }

 private:
  LayerPtr conv1_, conv2_, shortcut_;
  std::shared_ptr<BatchNorm> bn1_, bn2_;
};

// FFSD block: conv1 -> dropout -> conv2(stride); the shortcut sees the raw input.
class FfsdWideBlock : public Layer {
 public:
  FfsdWideBlock(int64_t in, int64_t out, int64_t stride, double dropout, const InitScheme& init,
                Generator& gen)
      : Layer("FfsdWideBlock") {
    bn1_ = register_module("bn1", BatchNorm2d(in));
    conv1_ = register_module("conv1", make_conv(in, out, 3, 1, 1, true, init, gen));
    dropout_ = register_module("dropout", std::make_shared<Dropout>(dropout, gen.next_u32()));
    bn2_ = register_module("bn2", BatchNorm2d(out));
    conv2_ = register_module("conv2", make_conv(out, out, 3, stride, 1, true, init, gen));
    if (stride != 1 || in != out) {
      auto seq = std::make_shared<Sequential>();
      seq->push_back(make_conv(in, out, 1, stride, 0, true, init, gen));
      shortcut_ = register_module("shortcut", seq);
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = dropout_->forward(conv1_->forward(bn1_->forward_relu(x)));
    out = conv2_->forward(bn2_->forward_relu(out));
    return out + (shortcut_ ? shortcut_->forward(x) : x);
  }

 private:
  LayerPtr conv1_, dropout_, conv2_, shortcut_;
  std::shared_ptr<BatchNorm> bn1_, bn2_;
};

struct WideSpec {
  int64_t depth = 0, width = 0;
  bool ffsd = false;
};

class WideResNet : public ZooBackbone {
 public:
  WideResNet(const std::string& name, const WideSpec& spec, const BackboneOptions& o)
      : ZooBackbone(name) {
    num_classes_ = o.num_classes;
    const InitScheme init = InitScheme::parse(o.init);
    const int64_t blocks = (spec.depth - 4) / 6, in_ch = o.in_channels;
    const bool ffsd = spec.ffsd;
    const double dropout = ffsd && spec.depth == 28 && spec.width == 10 ? 0.3 : 0.0;
    Generator gen(o.seed);

    add_built_stage(
        "stem", 16,
        [=](Generator& g) {
          return NamedLayers{{"conv1", make_conv(in_ch, 16, 3, 1, 1, ffsd, init, g)}};
        },
        gen);

    int64_t in = 16;
    for (int s = 0; s < 3; ++s) {
      const int64_t out = (16 << s) * spec.width, stride = s == 0 ? 1 : 2, group_in = in;
      add_built_stage(
          "stage" + std::to_string(s + 1), out,
          [=](Generator& g) {
            auto layer = std::make_shared<Sequential>();
            for (int64_t b = 0; b < blocks; ++b) {
              const int64_t c = b == 0 ? group_in : out, st = b == 0 ? stride : 1;
              if (ffsd)
                layer->push_back(std::make_shared<FfsdWideBlock>(c, out, st, dropout, init, g));
              else
                layer->push_back(std::make_shared<WideBasicBlock>(c, out, st, init, g));
            }
            if (ffsd) return NamedLayers{{"layer" + std::to_string(s + 1), layer}};
            // AT/CRD: a NetworkBlock whose Sequential is called "layer".
            auto group = std::make_shared<NamedSequential>();
            group->add("layer", layer);
            return NamedLayers{{"block" + std::to_string(s + 1), group}};
          },
          gen);
      in = out;
    }

    feature_dim_ = in;
    const int64_t feat = in, classes = o.num_classes;
    add_built_stage(
        "head", 0,
        [=](Generator& g) {
          // FFSD's final BN: PyTorch momentum 0.9, i.e. running = 0.1 * running + 0.9 * batch.
          const double momentum = ffsd ? 0.9 : 0.1;
          return NamedLayers{{"bn1", BatchNorm2d(feat, 1e-5, momentum)},
                             {"relu", std::make_shared<ReLU>()},
                             {"avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1)},
                             {"flatten", std::make_shared<Flatten>(1)},
                             {ffsd ? "linear" : "fc", make_linear(feat, classes, init, g)}};
        },
        gen);
  }
};

}  // namespace

BackbonePtr make_wide_resnet(const std::string& name, const BackboneOptions& o) {
  static const std::regex pattern(R"(wrn(\d+)_(\d+)(_ffsd)?)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return nullptr;
  WideSpec spec{std::stoll(m[1].str()), std::stoll(m[2].str()), m[3].matched};
  OKD_CHECK(spec.depth >= 10 && (spec.depth - 4) % 6 == 0, name,
            ": a WRN depth must be 6n + 4 with n >= 1 (e.g. 16, 22, 28, 40), got ", spec.depth);
  OKD_CHECK(spec.width >= 1, name, ": the widening factor k must be at least 1");
  return std::make_shared<WideResNet>(name, spec, o);
}

}  // namespace okd::nn
