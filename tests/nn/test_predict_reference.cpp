// Weights written by PyTorch give PyTorch's logits: tests/reference/make_predict_refs.py wrote
// random weights (with BN running statistics from three training passes), a batch of 4 images and
// the eval-mode logits for ResNet-20 (option B, 10 classes), WRN-16-2 (100 classes) and
// DenseNet-40-12 (100 classes). They load through load_backbone_for_inference and
// predict_logits, the code path of apps/predict, and must match within 1e-4 relative.
#include <filesystem>

#include "nn/models/inference.h"
#include "tensor/npy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

struct Case {
  const char* arch;
  int64_t classes;
};
constexpr Case kCases[] = {{"resnet20", 10}, {"wrn16_2", 100}, {"densenet40_12", 100}};

nn::BackboneOptions options(const std::string& arch, int64_t classes) {
  nn::BackboneOptions o;
  o.arch = arch;
  o.num_classes = classes;
  return o;
}

std::string ref_path(const std::string& arch, const std::string& what) {
  return test::data_path("predict/" + arch + "_" + what);
}

using ::okd::test::error_of;

}  // namespace

TEST(PredictReference, PyTorchWeightsGivePyTorchLogits) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.arch);
    auto net = nn::load_backbone_for_inference(options(c.arch, c.classes),
                                               ref_path(c.arch, "weights.safetensors"));
    Tensor x = load_npy(ref_path(c.arch, "x.npy"));
    Tensor ref = load_npy(ref_path(c.arch, "logits.npy"));
    Tensor logits = nn::predict_logits(*net, x);
    ASSERT_EQ(logits.shape(), (Shape{4, c.classes}));
    // 1e-4 relative, with an absolute floor of 1e-4 of the largest logit for entries near 0.
    const double scale = ops::amax(ops::abs(ref)).item();
    EXPECT_TRUE(test::allclose(logits, ref, 1e-4, 1e-4 * scale));
    // The result rests on the loaded running statistics: batch statistics give other logits.
    net->train();
    EXPECT_FALSE(test::allclose(nn::predict_logits(*net, x), ref, 1e-2, 1e-2 * scale));
  }
}

TEST(PredictReference, BatchNormBuffersAreLoadedAndNonTrivial) {
  auto net = nn::load_backbone_for_inference(options("wrn16_2", 100),
                                             ref_path("wrn16_2", "weights.safetensors"));
  EXPECT_FALSE(net->is_training());
  int checked = 0;
  for (const auto& [name, t] : net->named_buffers()) {
    if (name == "bn1.num_batches_tracked") {
      EXPECT_EQ(t.item(), 3);  // three training passes in the script
      ++checked;
    }
    if (name == "bn1.running_var") {
      EXPECT_FALSE(test::allclose(t, ones(t.shape()), 1e-3, 1e-3));  // not the initial 1s
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
}

TEST(PredictReference, ErrorsNameTheProblem) {
  const std::string weights = ref_path("resnet20", "weights.safetensors");
  // A missing file is named.
  std::string msg = error_of([] {
    nn::load_backbone_for_inference(options("resnet20", 10), "/nonexistent/w.safetensors");
  });
  EXPECT_NE(msg.find("/nonexistent/w.safetensors"), std::string::npos) << msg;
  // An unknown architecture lists the known ones.
  msg = error_of([&] { nn::load_backbone_for_inference(options("resnet21", 10), weights); });
  EXPECT_NE(msg.find("resnet21"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrn16_2"), std::string::npos) << msg;
  // The wrong depth: the keys the checkpoint lacks are listed by name.
  msg = error_of([&] { nn::load_backbone_for_inference(options("resnet32", 10), weights); });
  EXPECT_NE(msg.find("missing keys"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.4.conv1.weight"), std::string::npos) << msg;
  // The wrong class count: the mismatched shapes are listed with the key names.
  msg = error_of([&] { nn::load_backbone_for_inference(options("resnet20", 100), weights); });
  EXPECT_NE(msg.find("fc.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[10, 64]"), std::string::npos) << msg;
  // Input with the wrong channel count or rank.
  auto net = nn::load_backbone_for_inference(options("resnet20", 10), weights);
  msg = error_of([&] { nn::predict_logits(*net, zeros({2, 1, 32, 32})); });
  EXPECT_NE(msg.find("expects 3"), std::string::npos) << msg;
  msg = error_of([&] { nn::predict_logits(*net, zeros({3, 32, 32})); });
  EXPECT_NE(msg.find("[N, C, H, W]"), std::string::npos) << msg;
}

// In batches (here 3 + 1 of the 4 reference images) the logits are each image's own: the same as
// the whole batch within float32 rounding, and within 1e-4 of PyTorch's. A negative batch size
// is an error.
TEST(PredictReference, BatchesGiveTheSameLogits) {
  auto net = nn::load_backbone_for_inference(options("resnet20", 10),
                                             ref_path("resnet20", "weights.safetensors"));
  Tensor x = load_npy(ref_path("resnet20", "x.npy"));
  Tensor ref = load_npy(ref_path("resnet20", "logits.npy"));
  const Tensor whole = nn::predict_logits(*net, x);
  for (int64_t batch : {1, 3, 4, 100}) {
    SCOPED_TRACE(batch);
    const Tensor chunked = nn::predict_logits(*net, x, batch);
    ASSERT_EQ(chunked.shape(), whole.shape());
    EXPECT_TRUE(test::allclose(chunked, whole, 1e-5, 1e-5));
    const double scale = ops::amax(ops::abs(ref)).item();
    EXPECT_TRUE(test::allclose(chunked, ref, 1e-4, 1e-4 * scale));
  }
  const std::string msg = error_of([&] { nn::predict_logits(*net, x, -1); });
  EXPECT_NE(msg.find("batch_size"), std::string::npos) << msg;
}
