// DenseNet for CIFAR as the OKDDip code base defines it (its densenetd40k12 / densenetd100k12,
// after gpleiss/efficient_densenet_pytorch; the DenseNet-40-12 of the OKDDip, PCL and MCL-OKD
// tables): BC-style dense layers BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), no conv bias, 24 initial
// channels, transitions BN-ReLU-conv1x1(compression 0.5)-avgpool2. Three dense blocks of
// (depth - 4) / 6 layers: densenet40_12 has 6 per block (this is *not* Huang et al.'s original
// non-bottleneck DenseNet-40), densenet_bc_100_12 has 16.
//   stem    features.conv0 (conv3x3, 24 ch)
//   stage1  features.denseblock1, features.transition1     -> 16x16
//   stage2  features.denseblock2, features.transition2     -> 8x8
//   stage3  features.denseblock3                           8x8
//   head    features.norm_final, ReLU, GAP, classifier
// Names: features.denseblock{b}.denselayer{i}.norm1/conv1/norm2/conv2,
// features.transition{b}.norm/conv, features.norm_final, classifier. OKDDip's ONE variant copies
// the last dense block, the final BN-ReLU and the classifier per branch (a split at stage 3).
#include "autograd/functions.h"
#include "nn/models/backbone.h"
#include "nn/models/zoo_internal.h"

namespace okd::nn {

namespace {

constexpr int64_t kBottleneckFactor = 4;  // bn_size: the 1x1 conv gives 4k channels
constexpr int64_t kInitFeatures = 24;

// One dense layer: returns only its k new channels (the block concatenates).
class DenseLayer : public Layer {
 public:
  DenseLayer(int64_t in, int64_t growth, const InitScheme& init, Generator& gen)
      : Layer("DenseLayer") {
    const int64_t inner = kBottleneckFactor * growth;
    norm1_ = register_module("norm1", BatchNorm2d(in));
    conv1_ = register_module("conv1", make_conv(in, inner, 1, 1, 0, false, init, gen));
    norm2_ = register_module("norm2", BatchNorm2d(inner));
    conv2_ = register_module("conv2", make_conv(inner, growth, 3, 1, 1, false, init, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = conv1_->forward(norm1_->forward_relu(x));
    return conv2_->forward(norm2_->forward_relu(y));
  }

 private:
  LayerPtr conv1_, conv2_;
  std::shared_ptr<BatchNorm> norm1_, norm2_;
};

// Each layer sees the concatenation of the block input and every earlier layer's output.
class DenseBlock : public Layer {
 public:
  DenseBlock(int64_t layers, int64_t in, int64_t growth, const InitScheme& init, Generator& gen)
      : Layer("DenseBlock") {
    for (int64_t i = 0; i < layers; ++i)
      layers_.push_back(
          register_module("denselayer" + std::to_string(i + 1),
                          std::make_shared<DenseLayer>(in + i * growth, growth, init, gen)));
  }
  Tensor forward(const Tensor& x) override {
    Tensor features = x;
    for (auto& layer : layers_) features = okd::cat({features, layer->forward(features)}, 1);
    return features;
  }

 private:
  std::vector<LayerPtr> layers_;
};

class Transition : public Layer {
 public:
  Transition(int64_t in, int64_t out, const InitScheme& init, Generator& gen)
      : Layer("Transition") {
    norm_ = register_module("norm", BatchNorm2d(in));
    conv_ = register_module("conv", make_conv(in, out, 1, 1, 0, false, init, gen));
    pool_ = register_module("pool", std::make_shared<AvgPool2d>(2, 2));
  }
  Tensor forward(const Tensor& x) override {
    return pool_->forward(conv_->forward(norm_->forward_relu(x)));
  }

 private:
  LayerPtr conv_, pool_;
  std::shared_ptr<BatchNorm> norm_;
};

class DenseNetCifar : public ZooBackbone {
 public:
  DenseNetCifar(const std::string& name, int64_t layers_per_block, int64_t growth,
                const BackboneOptions& o)
      : ZooBackbone(name) {
    num_classes_ = o.num_classes;
    const InitScheme init = InitScheme::parse(o.init);
    const int64_t in_ch = o.in_channels;
    Generator gen(o.seed);

    add_built_stage(
        "stem", kInitFeatures,
        [=](Generator& g) {
          return NamedLayers{
              {"features.conv0", make_conv(in_ch, kInitFeatures, 3, 1, 1, false, init, g)}};
        },
        gen);

    int64_t channels = kInitFeatures;
    for (int b = 1; b <= 3; ++b) {
      const int64_t block_in = channels, block_out = channels + layers_per_block * growth;
      const bool last = b == 3;
      const int64_t out = last ? block_out : block_out / 2;  // compression 0.5
      add_built_stage(
          "stage" + std::to_string(b), out,
          [=](Generator& g) {
            const std::string id = std::to_string(b);
            NamedLayers v{
                {"features.denseblock" + id,
                 std::make_shared<DenseBlock>(layers_per_block, block_in, growth, init, g)}};
            if (!last)
              v.emplace_back("features.transition" + id,
                             std::make_shared<Transition>(block_out, out, init, g));
            return v;
          },
          gen);
      channels = out;
    }

    feature_dim_ = channels;
    const int64_t feat = channels, classes = o.num_classes;
    add_built_stage(
        "head", 0,
        [=](Generator& g) {
          return NamedLayers{{"features.norm_final", BatchNorm2d(feat)},
                             {"relu", std::make_shared<ReLU>()},
                             {"avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1)},
                             {"flatten", std::make_shared<Flatten>(1)},
                             {"classifier", make_linear(feat, classes, init, g)}};
        },
        gen);
  }
};

}  // namespace

BackbonePtr make_densenet_cifar(const std::string& name, int64_t depth, int64_t growth,
                                const BackboneOptions& o) {
  OKD_CHECK((depth - 4) % 6 == 0 && depth >= 10, name, ": a DenseNet-BC depth must be 6n + 4 (got ",
            depth, ")");
  return std::make_shared<DenseNetCifar>(name, (depth - 4) / 6, growth, o);
}

}  // namespace okd::nn
