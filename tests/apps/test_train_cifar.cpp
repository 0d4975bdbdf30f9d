// End to end: train_cifar on a tiny generated CIFAR-10 directory: train, checkpoint, interrupt,
// resume (bit-identical metrics), eval-only, and the files a run leaves behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/apps/train_cifar_helpers.h"

namespace fs = std::filesystem;
using okd::test::make_tiny_cifar10;
using okd::test::metrics_without_seconds;
using okd::test::run;

TEST(TrainCifar, TrainInterruptResumeEvalOnly) {
  fs::path data = make_tiny_cifar10("tiny_cifar", 16);  // 80 train, 16 test images
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / "runs";
  fs::remove_all(root);
  std::vector<std::string> common{"--dataset", "cifar10", "--data-dir",   data.string(),
                                  "--epochs",  "2",       "--batch-size", "16",
                                  "--threads", "1",       "--workers",    "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(run(with({"--out", (root / "straight").string()})), 0);
  // Interrupted after 7 steps (mid-epoch 2: 5 steps per epoch), then resumed.
  ASSERT_EQ(run(with({"--out", (root / "resumed").string(), "--stop-after", "7"})), 130);
  ASSERT_TRUE(fs::exists(root / "resumed" / "checkpoints" / "last" / "net.safetensors"));
  ASSERT_EQ(run({"--resume", (root / "resumed").string()}), 0);
  EXPECT_EQ(metrics_without_seconds(root / "straight"), metrics_without_seconds(root / "resumed"));

  for (const char* f : {"config.toml", "metrics.csv", "summary.json", "curves.svg"})
    EXPECT_TRUE(fs::exists(root / "straight" / f)) << f;
  std::ifstream summary(root / "straight" / "summary.json");
  std::string s((std::istreambuf_iterator<char>(summary)), std::istreambuf_iterator<char>());
  EXPECT_NE(s.find("\"deployed\": \"net\""), std::string::npos) << s;
  EXPECT_NE(s.find("\"best_top1\""), std::string::npos) << s;

  EXPECT_EQ(run(with({"--eval-only", (root / "straight" / "checkpoints" / "best").string()})), 0);
  // Starting a new run over an existing one is refused (nothing is overwritten).
  EXPECT_EQ(run(with({"--out", (root / "straight").string()})), 1);
}

TEST(TrainCifar, BadConfigurationIsNamed) {
  EXPECT_EQ(run({"--method", "no-such-method"}), 1);
  EXPECT_EQ(run({"--dataset", "cifar10"}), 1);  // needs --data-dir
  EXPECT_EQ(run({"--epochs", "0"}), 1);
  EXPECT_EQ(run({"--list-methods"}), 0);
  EXPECT_EQ(run({"--help"}), 0);
}

TEST(TrainCifar, MissingDatasetSaysWhereItLooked) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(run({"--dataset", "fashion-mnist", "--data-dir", "/nonexistent/fmnist"}), 1);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("/nonexistent/fmnist"), std::string::npos) << err;
  EXPECT_NE(err.find("dataset-fashion-mnist"), std::string::npos) << err;
}

// The KD methods with state beyond their networks (EKD's dropout generator, FFSD's Adam for the
// decoders, DKEL's EMA step counter and teacher initialisation) resume bit-identically.
class TrainCifarMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainCifarMethod, InterruptedRunResumesBitIdentically) {
  const std::string method = GetParam();
  fs::path data = make_tiny_cifar10("tiny_cifar_" + method, 8);  // 40 train, 8 test images
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / ("runs_" + method);
  fs::remove_all(root);
  std::vector<std::string> common{
      "--method", method,         "--dataset", "cifar10",   "--data-dir", data.string(), "--epochs",
      "1",        "--batch-size", "8",         "--threads", "1",          "--workers",   "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(run(with({"--out", (root / "straight").string()})), 0);
  ASSERT_EQ(run(with({"--out", (root / "resumed").string(), "--stop-after", "3"})), 130);
  ASSERT_EQ(run({"--resume", (root / "resumed").string()}), 0);
  EXPECT_EQ(metrics_without_seconds(root / "straight"), metrics_without_seconds(root / "resumed"));
}

INSTANTIATE_TEST_SUITE_P(KdMethods, TrainCifarMethod, ::testing::Values("ekd-fws", "ffsd", "dkel"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(TrainCifar, MethodOptionsLiveInTheMethodsNamespace) {
  fs::path data = make_tiny_cifar10("tiny_cifar_opts", 4);
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / "runs_opts";
  fs::remove_all(root);
  std::vector<std::string> base{
      "--method", "ffl",          "--dataset", "cifar10",   "--data-dir", data.string(), "--epochs",
      "1",        "--batch-size", "16",        "--threads", "1",          "--workers",   "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(run(with({"--ffl.T", "2", "--out", (root / "ok").string()})), 0);
  std::ifstream cfg(root / "ok" / "config.toml");
  std::string s((std::istreambuf_iterator<char>(cfg)), std::istreambuf_iterator<char>());
  EXPECT_NE(s.find("[ffl]\nT = 2\n"), std::string::npos) << s;
  // An unknown key, a key of another method and a bad value are named errors.
  EXPECT_EQ(run(with({"--ffl.no_such_key", "1", "--out", (root / "bad1").string()})), 1);
  EXPECT_EQ(run(with({"--ffsd.T", "2", "--out", (root / "bad2").string()})), 1);
  EXPECT_EQ(run(with({"--ffl.T", "abc", "--out", (root / "bad3").string()})), 1);
}
