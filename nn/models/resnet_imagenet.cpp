// ImageNet ResNet-18/34 with torchvision's definition (classic.md §2.3) and their CIFAR adaptation
// (BYOT, EED): BasicBlocks, four stages of 64/128/256/512 channels with strides 1/2/2/2 (the stride
// on the first conv3x3 of the first block), projection shortcut conv1x1(stride) + BN when the shape
// changes, no conv bias.
//   stem    resnet18/34:       conv1 (7x7, stride 2, pad 3), bn1, relu, maxpool (3x3, s2, p1)
//           resnet18/34_cifar: conv1 (3x3, stride 1, pad 1), bn1, relu (no maxpool)
//   stage1..4  layer1..layer4   (CIFAR: 32/16/8/4; ImageNet 224: 56/28/14/7)
//   head    avgpool, flatten, fc(512 -> classes)
// Names: torchvision's conv1, bn1, layer{1..4}.{i}.conv1/bn1/conv2/bn2/downsample.0/.1, fc.
#include "autograd/functions.h"
#include "nn/models/backbone.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

namespace {

class TorchvisionBasicBlock : public Layer {
 public:
  TorchvisionBasicBlock(int64_t in, int64_t out, int64_t stride, const InitScheme& init,
                        Generator& gen)
      : Layer("BasicBlock") {
    conv1_ = register_module("conv1", make_conv(in, out, 3, stride, 1, false, init, gen));
    bn1_ = register_module("bn1", BatchNorm2d(out));
    conv2_ = register_module("conv2", make_conv(out, out, 3, 1, 1, false, init, gen));
    bn2_ = register_module("bn2", BatchNorm2d(out));
    if (stride != 1 || in != out) {
      auto seq = std::make_shared<Sequential>();
      seq->push_back(make_conv(in, out, 1, stride, 0, false, init, gen));
      seq->push_back(BatchNorm2d(out));
      downsample_ = register_module("downsample", seq);
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor out = conv2_->forward(bn1_->forward_relu(conv1_->forward(x)));
    return bn2_->forward_add_relu(out, downsample_ ? downsample_->forward(x) : x);
  }

 private:
  LayerPtr conv1_, conv2_, downsample_;
  std::shared_ptr<BatchNorm> bn1_, bn2_;
};

class ImageNetResNet : public ZooBackbone {
 public:
  ImageNetResNet(const std::string& name, const std::vector<int64_t>& blocks, bool cifar_stem,
                 const BackboneOptions& o)
      : ZooBackbone(name) {
    num_classes_ = o.num_classes;
    const InitScheme init = InitScheme::parse(o.init);
    const int64_t in_ch = o.in_channels;
    Generator gen(o.seed);

    add_built_stage(
        "stem", 64,
        [=](Generator& g) {
          NamedLayers v;
          if (cifar_stem)
            v.emplace_back("conv1", make_conv(in_ch, 64, 3, 1, 1, false, init, g));
          else
            v.emplace_back("conv1", make_conv(in_ch, 64, 7, 2, 3, false, init, g));
          v.emplace_back("bn1", BatchNorm2d(64));
          v.emplace_back("relu", std::make_shared<ReLU>());
          if (!cifar_stem) v.emplace_back("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
          return v;
        },
        gen);

    int64_t in = 64;
    for (int s = 0; s < 4; ++s) {
      const int64_t out = 64 << s, stride = s == 0 ? 1 : 2, stage_in = in, n = blocks[s];
      add_built_stage(
          "stage" + std::to_string(s + 1), out,
          [=](Generator& g) {
            auto layer = std::make_shared<Sequential>();
            for (int64_t b = 0; b < n; ++b)
              layer->push_back(std::make_shared<TorchvisionBasicBlock>(
                  b == 0 ? stage_in : out, out, b == 0 ? stride : 1, init, g));
            return NamedLayers{{"layer" + std::to_string(s + 1), layer}};
          },
          gen);
      in = out;
    }

    feature_dim_ = in;
    const int64_t feat = in, classes = o.num_classes;
    add_built_stage(
        "head", 0,
        [=](Generator& g) {
          return NamedLayers{{"avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1)},
                             {"flatten", std::make_shared<Flatten>(1)},
                             {"fc", make_linear(feat, classes, init, g)}};
        },
        gen);
  }
};

}  // namespace

BackbonePtr make_imagenet_resnet(const std::string& name, int64_t depth, bool cifar_stem,
                                 const BackboneOptions& o) {
  std::vector<int64_t> blocks;
  if (depth == 18) blocks = {2, 2, 2, 2};
  if (depth == 34) blocks = {3, 4, 6, 3};
  OKD_CHECK(!blocks.empty(), name, ": ImageNet ResNet depth must be 18 or 34, got ", depth);
  return std::make_shared<ImageNetResNet>(name, blocks, cifar_stem, o);
}

}  // namespace okd::nn
