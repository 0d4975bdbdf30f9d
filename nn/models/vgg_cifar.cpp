// VGG-16 with BatchNorm for CIFAR, as the OKDDip code base defines it (the VGG-16 of the OKDDip,
// PCL and MCL-OKD tables; classic.md §16): every conv is conv3x3(pad 1, with bias) -> BN -> ReLU.
//   stem    conv1, bn1, relu, conv2, bn2, relu, maxpool       64 ch, 32x32 -> 16x16
//   stage1  layer1 = 2 x (conv, bn, relu) + maxpool           128 ch, -> 8x8
//   stage2  layer2 = 3 x (conv, bn, relu) + maxpool           256 ch, -> 4x4
//   stage3  layer3 = 3 x (conv, bn, relu) + maxpool           512 ch, -> 2x2
//   stage4  layer4 = 3 x (conv, bn, relu) + maxpool           512 ch, -> 1x1
//   head    flatten, classifier = Linear(512, 512), ReLU, Dropout(0), Linear(512, 512), ReLU,
//           Dropout(0), Linear(512, classes)
// Names follow PyTorch's nn.Sequential indices: layer1.0 (conv), layer1.1 (BN), layer1.3, ...;
// classifier.0, classifier.3, classifier.6. OKDDip's ONE variant copies layer4 and the classifier
// per branch, i.e. a split at the last stage.
#include "nn/models/backbone.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

namespace {

class VggCifar : public ZooBackbone {
 public:
  VggCifar(const std::string& name, const BackboneOptions& o) : ZooBackbone(name) {
    num_classes_ = o.num_classes;
    const InitScheme init = InitScheme::parse(o.init);
    const int64_t in_ch = o.in_channels;
    Generator gen(o.seed);

    add_built_stage(
        "stem", 64,
        [=](Generator& g) {
          return NamedLayers{{"conv1", make_conv(in_ch, 64, 3, 1, 1, true, init, g)},
                             {"bn1", BatchNorm2d(64)},
                             {"relu", std::make_shared<ReLU>()},
                             {"conv2", make_conv(64, 64, 3, 1, 1, true, init, g)},
                             {"bn2", BatchNorm2d(64)},
                             {"relu", std::make_shared<ReLU>()},
                             {"maxpool", std::make_shared<MaxPool2d>(2, 2)}};
        },
        gen);

    // (width, convs) of layer1..layer4 for depth 16.
    const int64_t widths[4] = {128, 256, 512, 512}, convs[4] = {2, 3, 3, 3};
    int64_t in = 64;
    for (int s = 0; s < 4; ++s) {
      const int64_t out = widths[s], n = convs[s], stage_in = in;
      add_built_stage(
          "stage" + std::to_string(s + 1), out,
          [=](Generator& g) {
            auto layer = std::make_shared<Sequential>();
            for (int64_t i = 0; i < n; ++i) {
              layer->push_back(make_conv(i == 0 ? stage_in : out, out, 3, 1, 1, true, init, g));
              layer->push_back(BatchNorm2d(out));
              layer->push_back(std::make_shared<ReLU>());
            }
            layer->push_back(std::make_shared<MaxPool2d>(2, 2));
            return NamedLayers{{"layer" + std::to_string(s + 1), layer}};
          },
          gen);
      in = out;
    }

    feature_dim_ = in;
    const int64_t classes = o.num_classes, feat = in;
    add_built_stage(
        "head", 0,
        [=](Generator& g) {
          auto classifier = std::make_shared<Sequential>();
          classifier->push_back(make_linear(feat, 512, init, g));
          classifier->push_back(std::make_shared<ReLU>());
          classifier->push_back(std::make_shared<Dropout>(0.0, g.next_u32()));
          classifier->push_back(make_linear(512, 512, init, g));
          classifier->push_back(std::make_shared<ReLU>());
          classifier->push_back(std::make_shared<Dropout>(0.0, g.next_u32()));
          classifier->push_back(make_linear(512, classes, init, g));
          return NamedLayers{{"flatten", std::make_shared<Flatten>(1)}, {"classifier", classifier}};
        },
        gen);
  }
};

}  // namespace

BackbonePtr make_vgg_cifar(const std::string& name, int64_t depth, const BackboneOptions& o) {
  OKD_CHECK(depth == 16, name, ": only VGG-16 is defined (got depth ", depth, ")");
  return std::make_shared<VggCifar>(name, o);
}

}  // namespace okd::nn
