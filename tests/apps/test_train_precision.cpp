// train_cifar --precision (mixed precision, nn/functional.h Autocast): the flag parses, is written
// to config.toml and summary.json, rejects other values by name, and a bf16 run trains (finite
// losses, different from float32's) and resumes bit for bit from its own config.toml.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/lib/train_config.h"
#include "tensor/error.h"
#include "tests/apps/train_cifar_helpers.h"

namespace fs = std::filesystem;
using okd::test::make_tiny_cifar10;
using okd::test::metrics_without_seconds;
using okd::test::run;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The train_loss column (4th) of every metrics.csv row.
std::vector<double> train_losses(const fs::path& run_dir) {
  std::stringstream csv(read_text(run_dir / "metrics.csv"));
  std::string line;
  std::getline(csv, line);  // header
  std::vector<double> out;
  while (std::getline(csv, line)) {
    std::stringstream ls(line);
    std::string field;
    for (int col = 0; col <= 3; ++col) std::getline(ls, field, ',');
    out.push_back(std::stod(field));
  }
  return out;
}

okd::apps::TrainConfig parse(std::vector<std::string> args) {
  args.insert(args.begin(), "train_cifar");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  okd::apps::TrainConfig cfg;
  std::string help;
  okd::apps::parse_train_args(static_cast<int>(argv.size()), argv.data(), cfg, help);
  return cfg;
}

}  // namespace

TEST(TrainPrecision, FlagParsesAndIsWrittenToTheConfig) {
  EXPECT_EQ(parse({}).precision, "float32");
  const okd::apps::TrainConfig c = parse({"--precision", "bf16"});
  EXPECT_EQ(c.precision, "bf16");
  EXPECT_EQ(okd::apps::to_config_map(c).at("precision"), "bf16");
  EXPECT_EQ(okd::apps::parse_precision("float32"), okd::Precision::Float32);
  EXPECT_EQ(okd::apps::parse_precision("bf16"), okd::Precision::BFloat16);
}

TEST(TrainPrecision, BadValuesAreNamed) {
  // On the command line (CLI11 names the flag and the accepted values) ...
  for (const char* bad : {"fp16", "bfloat16", "BF16", ""}) {
    SCOPED_TRACE(bad);
    testing::internal::CaptureStderr();
    EXPECT_EQ(run({"--precision", bad}), 1);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("--precision"), std::string::npos) << err;
    EXPECT_NE(err.find("float32"), std::string::npos) << err;
    EXPECT_NE(err.find("bf16"), std::string::npos) << err;
  }
  // ... in a --config file, and for a TrainConfig built in code (validate).
  const fs::path dir = fs::path(OKD_BINARY_DIR) / "test_tmp" / "precision_config";
  fs::create_directories(dir);
  std::ofstream(dir / "bad.toml") << "precision = \"half\"\n";
  testing::internal::CaptureStderr();
  EXPECT_EQ(run({"--config", (dir / "bad.toml").string()}), 1);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--precision"), std::string::npos) << err;
  okd::apps::TrainConfig c;
  c.precision = "half";
  try {
    okd::apps::validate(c);
    FAIL() << "validate accepted --precision half";
  } catch (const okd::Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("--precision: 'half' is not a precision (float32 or bf16)"),
        std::string::npos)
        << e.what();
  }
}

TEST(TrainPrecision, HelpExplainsTheFlag) {
  testing::internal::CaptureStdout();
  EXPECT_EQ(run({"--help"}), 0);
  const std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("--precision"), std::string::npos);
  EXPECT_NE(help.find("float32 master weights"), std::string::npos) << help;
  EXPECT_NE(help.find("emulation"), std::string::npos) << help;
}

// A tiny CPU run in bf16 (the rounding emulation): finite losses that differ from the float32
// run's, the precision recorded in config.toml and summary.json, and an interrupted bf16 run that
// resumes (taking --precision from its config.toml) to the same metrics as a straight one.
TEST(TrainPrecision, Bf16TrainsDiffersFromFloat32AndResumes) {
  const fs::path data = make_tiny_cifar10("tiny_cifar_precision", 16);  // 80 train, 16 test
  const fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / "runs_precision";
  fs::remove_all(root);
  std::vector<std::string> common{"--dataset", "cifar10", "--data-dir",   data.string(),
                                  "--epochs",  "2",       "--batch-size", "16",
                                  "--threads", "1",       "--workers",    "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(run(with({"--out", (root / "f32").string()})), 0);
  testing::internal::CaptureStdout();
  const int rc = run(with({"--precision", "bf16", "--out", (root / "bf16").string()}));
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("precision: bf16 products in conv/linear, float32 weights (CPU emulation"),
            std::string::npos)
      << out;

  const std::vector<double> f32 = train_losses(root / "f32"), bf16 = train_losses(root / "bf16");
  ASSERT_EQ(f32.size(), 2u);
  ASSERT_EQ(bf16.size(), f32.size());
  for (size_t i = 0; i < bf16.size(); ++i) {
    EXPECT_TRUE(std::isfinite(bf16[i])) << "epoch " << i + 1;
    // bf16 keeps 8 significant bits: the losses move, but not far (same data, same weights).
    EXPECT_NE(bf16[i], f32[i]) << "epoch " << i + 1 << ": --precision bf16 changed nothing";
    EXPECT_NEAR(bf16[i], f32[i], 0.2 * std::fabs(f32[i])) << "epoch " << i + 1;
  }
  EXPECT_NE(read_text(root / "bf16" / "config.toml").find("precision = \"bf16\""),
            std::string::npos);
  EXPECT_NE(read_text(root / "f32" / "config.toml").find("precision = \"float32\""),
            std::string::npos);
  EXPECT_NE(read_text(root / "bf16" / "summary.json").find("\"precision\": \"bf16\""),
            std::string::npos);

  // Interrupted mid-epoch 2 (5 steps an epoch), resumed with no --precision on the command line.
  ASSERT_EQ(
      run(with({"--precision", "bf16", "--out", (root / "resumed").string(), "--stop-after", "7"})),
      130);
  ASSERT_EQ(run({"--resume", (root / "resumed").string()}), 0);
  EXPECT_EQ(metrics_without_seconds(root / "bf16"), metrics_without_seconds(root / "resumed"));
}
