// The app support library: TOML config files, SVG plots, durations, reference recipes.
#include <gtest/gtest.h>

#include "apps/lib/progress.h"
#include "apps/lib/svg_plot.h"
#include "apps/lib/toml.h"
#include "apps/lib/train_config.h"
#include "tensor/error.h"

using namespace okd::apps;

TEST(Toml, ParsesTablesArraysAndComments) {
  auto m = parse_toml(R"(
# a run
method = "dml"   # comment after a value
epochs = 15
lr = 0.1
nesterov = true
milestones = [150, 225]
[dml]
peers = 3
)");
  EXPECT_EQ(m.at("method"), "dml");
  EXPECT_EQ(m.at("epochs"), "15");
  EXPECT_EQ(m.at("nesterov"), "true");
  EXPECT_EQ(m.at("milestones"), "150,225");
  EXPECT_EQ(m.at("dml.peers"), "3");
  EXPECT_EQ(m.size(), 6u);
}

TEST(Toml, ErrorsNameTheLine) {
  try {
    parse_toml("a = 1\nthis is not toml\n", "run.toml");
    FAIL();
  } catch (const okd::Error& e) {
    EXPECT_NE(std::string(e.what()).find("run.toml:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_toml("a = 1\na = 2\n"), okd::Error);
}

TEST(Toml, WriteThenReadIsIdentity) {
  ConfigMap m{{"method", "ffsd"}, {"lr", "0.05"}, {"ffsd.T", "2"}, {"out", "runs/x y"}};
  EXPECT_EQ(parse_toml(to_toml(m)), m);
}

TEST(SvgPlot, DrawsEverySeries) {
  Panel p{"test top-1",
          "epoch",
          "%",
          {{"peer0", {1, 2, 3}, {50, 60, 70}}, {"peer1", {1, 2, 3}, {55, 65, 72}}}};
  std::string svg = svg_line_plot({p, p});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t n = 0;
  for (size_t i = svg.find("<polyline"); i != std::string::npos; i = svg.find("<polyline", i + 1))
    ++n;
  EXPECT_EQ(n, 4u);
  EXPECT_NE(svg.find("peer1"), std::string::npos);
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(12), "12s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

TEST(Recipe, ReferenceRecipeFillsWhatWasNotGiven) {
  using okd::apps::TrainConfig;
  TrainConfig c;
  c.method = "ffsd";
  c.recipe = "reference";
  c.weight_decay = 5e-4;
  c.explicit_flags = {"weight-decay"};
  std::string line = okd::apps::apply_recipe(c);
  EXPECT_NE(line.find("seeds.md §5.4"), std::string::npos) << line;
  EXPECT_EQ(c.epochs, 299);
  EXPECT_TRUE(c.nesterov);
  EXPECT_EQ(c.padding, "reflect");
  EXPECT_EQ(c.milestones, (std::vector<double>{150, 225}));
  EXPECT_DOUBLE_EQ(c.weight_decay, 5e-4);  // given explicitly: kept

  // With fewer epochs the milestones keep their place in the run.
  TrainConfig e;
  e.method = "ekd-fws";
  e.arch = "resnet56";
  e.dataset = "cifar10";
  e.recipe = "reference";
  e.epochs = 30;
  e.explicit_flags = {"method", "arch", "dataset", "recipe", "epochs"};
  okd::apps::apply_recipe(e);
  EXPECT_EQ(e.epochs, 30);
  EXPECT_EQ(e.milestones, (std::vector<double>{15, 25}));  // 149, 249 of 300
  EXPECT_DOUBLE_EQ(e.lr, 0.01);                            // ResNet-56 in the reference
  EXPECT_FALSE(e.nesterov);
  EXPECT_EQ(e.augment, "flip-rrc");
  EXPECT_EQ(e.normalize, "imagenet");

  // The common recipe changes nothing.
  TrainConfig d;
  d.method = "dkel";
  const TrainConfig before = d;
  EXPECT_EQ(okd::apps::apply_recipe(d), "");
  EXPECT_EQ(d.epochs, before.epochs);
  EXPECT_EQ(d.nesterov, before.nesterov);
}
