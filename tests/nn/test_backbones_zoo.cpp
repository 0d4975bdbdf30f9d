// The backbone zoo beyond the CIFAR ResNets: WRN (AT/CRD and FFSD definitions), VGG-16-BN,
// DenseNet, ImageNet ResNet-18/34 and their CIFAR adaptation. Parameter counts equal the tables of
// ../shared/methods/classic.md §2; every state_dict key and shape equals the PyTorch definition's
// (tests/data/predict/zoo_state_dicts.txt, written by tests/reference/make_predict_refs.py from
// the cited code bases); stages compose to the forward, taps have the spec's shapes, and
// make_stage builds fresh copies that a multi-branch method can run on a shared trunk.
#include <fstream>
#include <map>
#include <sstream>

#include "autograd/functions.h"
#include "autograd/tape.h"
#include "nn/models/backbone.h"
#include "tensor/ops/reduce.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

nn::BackbonePtr build(const std::string& arch, int64_t classes) {
  nn::BackboneOptions o;
  o.arch = arch;
  o.num_classes = classes;
  return nn::make_backbone(o);
}

// PyTorch's default init draws each weight once (the He schemes draw it twice): for the tests
// that only count, name or copy (WRN-28-10 has 36M parameters).
nn::BackbonePtr build_pytorch_init(const std::string& arch, int64_t classes) {
  nn::BackboneOptions o;
  o.arch = arch;
  o.num_classes = classes;
  o.init = "pytorch";
  return nn::make_backbone(o);
}

// One architecture of zoo_state_dicts.txt: its trainable count and every key with its shape.
struct ReferenceStateDict {
  std::string arch;
  int64_t classes = 0, params = 0;
  std::map<std::string, Shape> shapes;
};

Shape parse_shape(const std::string& s) {  // "[64,3,3,3]" or "[]"
  Shape shape;
  std::stringstream in(s.substr(1, s.size() - 2));
  for (std::string d; std::getline(in, d, ',');) shape.push_back(std::stoll(d));
  return shape;
}

std::vector<ReferenceStateDict> read_reference_state_dicts() {
  std::ifstream f(test::data_path("predict/zoo_state_dicts.txt"));
  EXPECT_TRUE(f.good()) << "missing tests/data/predict/zoo_state_dicts.txt";
  std::vector<ReferenceStateDict> refs;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream in(line);
    std::string first, second;
    in >> first >> second;
    if (first == "arch") {
      ReferenceStateDict r;
      std::string word;
      r.arch = second;
      in >> word >> r.classes >> word >> r.params;
      refs.push_back(r);
    } else {
      refs.back().shapes[first] = parse_shape(second);
    }
  }
  return refs;
}

// The backbone's parameters that belong to stage i (children named by the stage's layers).
nn::NamedTensors stage_parameters(const nn::Backbone& net, int i) {
  nn::NamedTensors out;
  for (const auto& [name, p] : net.named_parameters())
    for (const auto& [layer_name, layer] : net.stage(i).layers)
      if (name.rfind(layer_name + ".", 0) == 0) out.emplace_back(name, p);
  return out;
}

int64_t stage_parameter_count(const nn::Backbone& net, int i) {
  int64_t n = 0;
  for (const auto& [name, layer] : net.stage(i).layers) n += layer->num_parameters();
  return n;
}

// Channel means of an [N, C, H, W] tensor.
std::vector<double> channel_means(const Tensor& x) {
  Tensor m = ops::mean(x, {0, 2, 3});
  std::vector<double> v;
  for (int64_t c = 0; c < m.size(0); ++c) v.push_back(okd::slice(m, 0, c, c + 1).item());
  return v;
}

// The architectures with their expected stage outputs on a [2, 3, H, W] batch, derived from the
// definitions in classic.md §2 (WRN: 16, 16k, 32k, 64k at 32/32/16/8; ImageNet ResNet 64..512 at
// 1/4, 1/4, 1/8, 1/16, 1/32 of the input) and the cited code bases (VGG: 64 at 16x16, then
// 128/256/512/512 halving to 1x1; DenseNet: 24, then k-growth with compression 0.5).
struct TapCase {
  std::string arch;
  int64_t classes, size;
  std::vector<Shape> taps;
};

std::vector<TapCase> tap_cases() {
  return {
      {"wrn16_2",
       100,
       32,
       {{2, 16, 32, 32}, {2, 32, 32, 32}, {2, 64, 16, 16}, {2, 128, 8, 8}, {2, 100}}},
      {"wrn16_2_ffsd",
       100,
       32,
       {{2, 16, 32, 32}, {2, 32, 32, 32}, {2, 64, 16, 16}, {2, 128, 8, 8}, {2, 100}}},
      {"wrn16_1",
       10,
       32,
       {{2, 16, 32, 32}, {2, 16, 32, 32}, {2, 32, 16, 16}, {2, 64, 8, 8}, {2, 10}}},
      {"vgg16_bn",
       100,
       32,
       {{2, 64, 16, 16}, {2, 128, 8, 8}, {2, 256, 4, 4}, {2, 512, 2, 2}, {2, 512, 1, 1}, {2, 100}}},
      // 24 + 6*12 = 96 -> 48; 48 + 72 = 120 -> 60; 60 + 72 = 132.
      {"densenet40_12",
       100,
       32,
       {{2, 24, 32, 32}, {2, 48, 16, 16}, {2, 60, 8, 8}, {2, 132, 8, 8}, {2, 100}}},
      // 24 + 16*12 = 216 -> 108; 108 + 192 = 300 -> 150; 150 + 192 = 342.
      {"densenet_bc_100_12",
       10,
       32,
       {{2, 24, 32, 32}, {2, 108, 16, 16}, {2, 150, 8, 8}, {2, 342, 8, 8}, {2, 10}}},
      {"resnet18_cifar",
       100,
       32,
       {{2, 64, 32, 32},
        {2, 64, 32, 32},
        {2, 128, 16, 16},
        {2, 256, 8, 8},
        {2, 512, 4, 4},
        {2, 100}}},
      {"resnet18",
       1000,
       64,
       {{2, 64, 16, 16},
        {2, 64, 16, 16},
        {2, 128, 8, 8},
        {2, 256, 4, 4},
        {2, 512, 2, 2},
        {2, 1000}}},
      {"resnet34",
       1000,
       64,
       {{2, 64, 16, 16},
        {2, 64, 16, 16},
        {2, 128, 8, 8},
        {2, 256, 4, 4},
        {2, 512, 2, 2},
        {2, 1000}}},
  };
}

}  // namespace

TEST(BackboneZoo, WrnParameterCountsMatchClassicMd) {
  struct Row {
    const char* arch;
    int64_t c10, c100;
  };
  // classic.md §2.2
  for (const Row& r : {Row{"wrn16_1", 175066, 180916}, Row{"wrn16_2", 691674, 703284},
                       Row{"wrn40_1", 563930, 569780}, Row{"wrn40_2", 2243546, 2255156},
                       Row{"wrn28_4", 5849050, 5872180}, Row{"wrn28_10", 36479194, 36536884}}) {
    EXPECT_EQ(build_pytorch_init(r.arch, 10)->num_parameters(), r.c10) << r.arch;
    EXPECT_EQ(build_pytorch_init(r.arch, 100)->num_parameters(), r.c100) << r.arch;
  }
}

TEST(BackboneZoo, ImageNetResNetParameterCountsMatchClassicMd) {
  // classic.md §2.3: torchvision with 1000 classes; the CIFAR adaptation with 100 classes.
  EXPECT_EQ(build_pytorch_init("resnet18", 1000)->num_parameters(), 11689512);
  EXPECT_EQ(build_pytorch_init("resnet34", 1000)->num_parameters(), 21797672);
  EXPECT_EQ(build_pytorch_init("resnet18_cifar", 100)->num_parameters(), 11220132);
  EXPECT_EQ(build_pytorch_init("resnet34_cifar", 100)->num_parameters(), 21328292);
}

TEST(BackboneZoo, StateDictKeysShapesAndCountsEqualThePyTorchDefinitions) {
  auto refs = read_reference_state_dicts();
  ASSERT_GE(refs.size(), 13u);
  for (const auto& ref : refs) {
    SCOPED_TRACE(ref.arch + " with " + std::to_string(ref.classes) + " classes");
    auto net = build_pytorch_init(ref.arch, ref.classes);
    EXPECT_EQ(net->num_parameters(), ref.params);
    std::map<std::string, Shape> mine;
    for (const auto& [name, t] : net->state_dict()) mine[name] = t.shape();
    for (const auto& [name, shape] : ref.shapes) {
      auto it = mine.find(name);
      if (it == mine.end()) {
        ADD_FAILURE() << "okd lacks PyTorch's key " << name;
        continue;
      }
      EXPECT_EQ(it->second, shape) << name;
    }
    for (const auto& [name, shape] : mine)
      EXPECT_TRUE(ref.shapes.count(name)) << "okd has a key PyTorch lacks: " << name;
  }
}

TEST(BackboneZoo, TapsHaveTheSpecShapesAndStagesComposeToTheForward) {
  Generator gen(11);
  for (const auto& c : tap_cases()) {
    SCOPED_TRACE(c.arch);
    auto net = build(c.arch, c.classes);
    net->eval();
    Tensor x = randn({2, 3, c.size, c.size}, gen);
    NoGradGuard ng;
    auto taps = net->forward_taps(x);
    ASSERT_EQ(taps.size(), c.taps.size());
    ASSERT_EQ(net->num_stages(), static_cast<int>(c.taps.size()));
    for (size_t i = 0; i < taps.size(); ++i) {
      EXPECT_EQ(taps[i].shape(), c.taps[i]) << net->stage(static_cast<int>(i)).name;
      if (i + 1 < taps.size()) {  // each stage states its output channels
        EXPECT_EQ(net->stage(static_cast<int>(i)).out_channels, c.taps[i][1]);
      }
    }
    EXPECT_EQ(net->stage(0).name, "stem");
    EXPECT_EQ(net->stage(net->num_stages() - 1).name, "head");
    EXPECT_EQ(net->feature_dim(), c.taps[c.taps.size() - 2][1]);
    // forward() is run_stages(0, last); forward_taps runs the stages one call at a time.
    Tensor full = net->forward(x);
    EXPECT_ALLCLOSE(taps.back(), full, 0, 0);
    // Any split point: trunk then the rest gives the forward again.
    for (int s = 1; s < net->num_stages(); ++s)
      EXPECT_ALLCLOSE(net->run_stages(s, net->num_stages() - 1, net->run_stages(0, s - 1, x)), full,
                      0, 0)
          << "split at " << net->stage(s).name;
  }
}

TEST(BackboneZoo, MakeStageGivesFreshCopiesWithTheSameNamesAndShapes) {
  Generator gen(5);
  for (const auto& c : tap_cases()) {
    if (c.arch == "resnet34") continue;  // the same code as resnet18, more blocks
    SCOPED_TRACE(c.arch);
    auto net = build_pytorch_init(c.arch, c.classes);
    for (int s = 0; s < net->num_stages(); ++s) {
      auto copy = net->make_stage(s, gen);
      auto mine = stage_parameters(*net, s);
      auto theirs = copy->named_parameters();
      ASSERT_EQ(theirs.size(), mine.size()) << net->stage(s).name;
      ASSERT_FALSE(mine.empty()) << net->stage(s).name;
      EXPECT_EQ(copy->num_parameters(), stage_parameter_count(*net, s));
      for (size_t i = 0; i < mine.size(); ++i) {
        EXPECT_EQ(theirs[i].first, mine[i].first);
        EXPECT_EQ(theirs[i].second.shape(), mine[i].second.shape()) << mine[i].first;
      }
      // Conv and linear weights (>= 2-D) are freshly drawn; BN starts at 1/0 in both.
      int drawn = 0;
      for (size_t i = 0; i < mine.size(); ++i) {
        if (mine[i].second.dim() < 2) continue;
        ++drawn;
        EXPECT_FALSE(test::allclose(theirs[i].second, mine[i].second, 0, 0))
            << mine[i].first << " was copied, not re-initialised";
      }
      EXPECT_GT(drawn, 0) << net->stage(s).name;
      // Buffers (BN running statistics) are present under the same names too.
      EXPECT_EQ(copy->named_buffers().size(), copy->state_dict().size() - theirs.size());
    }
  }
}

TEST(BackboneZoo, BranchesBuiltFromStageCopiesRunOnASharedTrunk) {
  // classic.md §2.4, split at the last stage: trunk = stem + earlier stages; each branch = fresh
  // copies of the last stage and the head (with WRN's final BN-ReLU, DenseNet's final BN).
  Generator gen(9);
  for (const std::string arch : {"wrn16_2", "vgg16_bn", "densenet40_12", "resnet18_cifar"}) {
    SCOPED_TRACE(arch);
    auto net = build(arch, 100);
    net->eval();
    const int head = net->num_stages() - 1, split = head - 1;
    Tensor x = randn({2, 3, 32, 32}, gen);
    NoGradGuard ng;
    Tensor trunk = net->run_stages(0, split - 1, x);
    auto branch_stage = net->make_stage(split, gen);
    auto branch_head = net->make_stage(head, gen);
    branch_stage->eval();
    branch_head->eval();
    Tensor branch_logits = branch_head->forward(branch_stage->forward(trunk));
    Tensor own_logits = net->run_stages(split, head, trunk);
    EXPECT_EQ(branch_logits.shape(), own_logits.shape());
    EXPECT_FALSE(test::allclose(branch_logits, own_logits, 1e-3, 1e-3));
    // Loading the backbone's weights into the copies makes the branch the backbone again.
    branch_stage->load_state_dict(stage_parameters(*net, split), /*strict=*/false);
    branch_head->load_state_dict(stage_parameters(*net, head), /*strict=*/false);
    EXPECT_ALLCLOSE(branch_head->forward(branch_stage->forward(trunk)), own_logits, 0, 0);
  }
}

TEST(BackboneZoo, FfsdFinalBatchNormUsesMomentumPointNine) {
  // seeds.md §1.7 [REF-QUIRK]: FFSD's final BN updates running = 0.1 * running + 0.9 * batch;
  // the AT/CRD WRN keeps PyTorch's default 0.1. Running means start at 0, so after one training
  // forward they equal momentum * (channel means of the BN's input, the stage-3 output).
  Generator gen(2);
  Tensor x = randn({4, 3, 32, 32}, gen);
  for (const auto& [arch, momentum] : {std::pair{"wrn16_2_ffsd", 0.9}, std::pair{"wrn16_2", 0.1}}) {
    SCOPED_TRACE(arch);
    auto net = build(arch, 10);
    net->train();
    auto taps = net->forward_taps(x);
    std::vector<double> batch_means = channel_means(taps[3]);
    Tensor running;
    for (const auto& [name, t] : net->named_buffers())
      if (name == "bn1.running_mean") running = t;
    ASSERT_TRUE(running.defined());
    ASSERT_EQ(running.size(0), static_cast<int64_t>(batch_means.size()));
    double worst = 0, largest = 0;
    for (int64_t c = 0; c < running.size(0); ++c) {
      double r = okd::slice(running, 0, c, c + 1).item();
      worst = std::max(worst, std::abs(r - momentum * batch_means[c]));
      largest = std::max(largest, std::abs(batch_means[c]));
    }
    ASSERT_GT(largest, 1e-3);  // the check means something only if the means are not all ~0
    EXPECT_LT(worst, 1e-4 * largest + 1e-6);
  }
}

TEST(BackboneZoo, NamesAndErrors) {
  auto names = nn::backbone_names();
  for (const std::string arch :
       {"wrn16_2", "wrn40_2", "wrn16_2_ffsd", "vgg16_bn", "densenet40_12", "densenet_bc_100_12",
        "resnet18", "resnet34", "resnet18_cifar", "resnet34_cifar"})
    EXPECT_NE(std::find(names.begin(), names.end(), arch), names.end()) << arch;
  // Any WRN depth 6n + 4 parses, not only the listed ones.
  EXPECT_EQ(build("wrn22_1", 10)->stage(1).layers.size(), 1u);
  EXPECT_THROW(build("wrn17_2", 10), Error);
  try {
    build("vgg19", 10);
    ADD_FAILURE() << "vgg19 is not in the zoo";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("densenet40_12"), std::string::npos) << msg;
    EXPECT_NE(msg.find("wrn16_2"), std::string::npos) << msg;
  }
}
