// The backbone zoo: parameter counts equal the tables of ../shared/methods/classic.md §2.1
// exactly, stages can be run one by one, tapped, and copied with fresh weights.
#include "autograd/functions.h"
#include "nn/models/backbone.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {
int64_t count(const std::string& arch, int64_t classes, char shortcut) {
  nn::BackboneOptions o;
  o.arch = arch;
  o.num_classes = classes;
  o.shortcut = shortcut;
  return nn::make_backbone(o)->num_parameters();
}
}  // namespace

TEST(Backbones, CifarResNetParameterCountsMatchTheSpec) {
  struct Row {
    const char* arch;
    int64_t a10, a100, b10, b100;
  };
  for (const Row& r : {Row{"resnet20", 269722, 275572, 272474, 278324},
                       Row{"resnet32", 464154, 470004, 466906, 472756},
                       Row{"resnet44", 658586, 664436, 661338, 667188},
                       Row{"resnet56", 853018, 858868, 855770, 861620},
                       Row{"resnet110", 1727962, 1733812, 1730714, 1736564}}) {
    EXPECT_EQ(count(r.arch, 10, 'A'), r.a10) << r.arch;
    EXPECT_EQ(count(r.arch, 100, 'A'), r.a100) << r.arch;
    EXPECT_EQ(count(r.arch, 10, 'B'), r.b10) << r.arch;
    EXPECT_EQ(count(r.arch, 100, 'B'), r.b100) << r.arch;
  }
  EXPECT_EQ(count("resnet110_bneck", 100, 'B'), 1170868);
}

TEST(Backbones, PerStageCountsOfResNet32) {
  nn::BackboneOptions o;
  o.arch = "resnet32";
  o.num_classes = 100;
  auto net = nn::make_backbone(o);
  ASSERT_EQ(net->num_stages(), 5);
  const int64_t want[5] = {464, 23360, 88768, 353664, 6500};  // stem, stages 1-3, FC (§2.1)
  for (int s = 0; s < 5; ++s) {
    int64_t n = 0;
    for (const auto& [name, layer] : net->stage(s).layers) n += layer->num_parameters();
    EXPECT_EQ(n, want[s]) << net->stage(s).name;
  }
}

TEST(Backbones, StagesComposeToTheForwardAndCopiesAreFresh) {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  auto net = nn::make_backbone(o);
  net->eval();
  Generator gen(3);
  Tensor x = randn({2, 3, 32, 32}, gen);
  NoGradGuard ng;
  Tensor full = net->forward(x);
  Tensor trunk = net->run_stages(0, 2, x);  // stem, stage1, stage2
  EXPECT_EQ(trunk.shape(), (Shape{2, 32, 16, 16}));
  EXPECT_ALLCLOSE(net->run_stages(3, 4, trunk), full, 0, 0);
  auto taps = net->forward_taps(x);
  ASSERT_EQ(taps.size(), 5u);
  EXPECT_EQ(taps[3].shape(), (Shape{2, 64, 8, 8}));
  auto copy = net->make_stage(net->stage_index("stage3"), gen);
  EXPECT_EQ(copy->num_parameters(), net->stage(3).layers[0].second->num_parameters());
  EXPECT_EQ(copy->named_parameters()[0].first, "layer3.0.conv1.weight");
  // A fresh copy has its own, differently initialised weights.
  Tensor original;
  for (const auto& [name, p] : net->named_parameters())
    if (name == "layer3.0.conv1.weight") original = p;
  ASSERT_TRUE(original.defined());
  EXPECT_FALSE(test::allclose(copy->named_parameters()[0].second, original, 0, 0));
  EXPECT_THROW(net->stage_index("stage9"), Error);
}
