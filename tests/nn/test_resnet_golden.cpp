// Whole-model golden test (after llm.c's test_gpt2): ResNet-20 (option B) with the weights and
// batch written by tests/reference/make_resnet_golden.py must reproduce PyTorch's logits, loss,
// every parameter gradient, the BN running statistics, and the loss over 10 SGD steps.
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/models/backbone.h"
#include "optim/sgd.h"
#include "tensor/npy.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {
nn::BackbonePtr golden_resnet20() {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  o.num_classes = 10;
  auto net = nn::make_backbone(o);
  net->load_state_dict(
      nn::load_safetensors(test::data_path("golden/resnet20_weights.safetensors")));
  return net;
}
}  // namespace

TEST(ResNetGolden, StateDictNamesMatchPyTorch) {
  auto net = golden_resnet20();  // strict load: any missing/unexpected key throws
  auto sd = net->state_dict();
  auto ref = nn::load_safetensors(test::data_path("golden/resnet20_weights.safetensors"));
  EXPECT_EQ(sd.size(), ref.size());
  EXPECT_EQ(net->num_parameters(), 272474);  // classic.md §2.1, option B, 10 classes
}

TEST(ResNetGolden, LogitsLossGradientsAndRunningStats) {
  auto net = golden_resnet20();
  net->train();
  Tensor x = load_npy(test::data_path("golden/resnet20_x.npy"));
  Tensor y = load_npy(test::data_path("golden/resnet20_y.npy"));
  Tensor logits = net->forward(x);
  EXPECT_ALLCLOSE(logits, load_npy(test::data_path("golden/resnet20_logits.npy")), 1e-4, 1e-5);
  Tensor loss = nn::functional::cross_entropy(logits, y);
  EXPECT_ALLCLOSE(loss, load_npy(test::data_path("golden/resnet20_loss.npy")), 1e-5, 1e-6);
  backward(loss);
  auto grads = nn::load_safetensors(test::data_path("golden/resnet20_grads.safetensors"));
  auto params = net->named_parameters();
  ASSERT_EQ(grads.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(params[i].first, grads[i].first);
    ASSERT_TRUE(params[i].second.grad().defined()) << params[i].first;
    // Gradients are compared relative to the largest magnitude of each tensor: tiny entries of a
    // float32 gradient carry little relative precision.
    double scale = ops::amax(ops::abs(grads[i].second)).item();
    EXPECT_TRUE(test::allclose(params[i].second.grad(), grads[i].second, 1e-3, 1e-4 * scale))
        << params[i].first;
  }
  auto bn = nn::load_safetensors(test::data_path("golden/resnet20_bn_after.safetensors"));
  auto buffers = net->named_buffers();
  for (const auto& [name, ref] : bn) {
    bool found = false;
    for (const auto& [n, t] : buffers)
      if (n == name) {
        found = true;
        EXPECT_ALLCLOSE(t, ref, 1e-4, 1e-5) << name;
      }
    EXPECT_TRUE(found) << name;
  }
}

// The loss over 10 Nesterov-SGD steps (lr 0.02) against PyTorch's float64 trajectory
// (make_resnet_golden.py). Run in float64, okd must follow it to rounding; this checks the whole
// training step (every backward, BN statistics, weight decay, momentum) step after step. Measured:
// within 1.3e-15 relative at every step.
namespace {
std::vector<double> sgd_trajectory(DType dtype) {
  auto net = golden_resnet20();
  net->to(dtype);
  net->train();
  Tensor x = ops::to(load_npy(test::data_path("golden/resnet20_x.npy")), dtype);
  Tensor y = load_npy(test::data_path("golden/resnet20_y.npy"));
  optim::SGDOptions so;
  so.lr = 0.02;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  so.nesterov = true;
  optim::SGD sgd(net->parameters(), so);
  std::vector<double> losses;
  for (int step = 0; step < 10; ++step) {
    sgd.zero_grad();
    Tensor loss = nn::functional::cross_entropy(net->forward(x), y);
    losses.push_back(loss.item());
    backward(loss);
    sgd.step();
  }
  return losses;
}

// Runs the trajectory in dtype and checks step t's loss within rtol(t) of PyTorch's float64 one.
void expect_trajectory(DType dtype, const std::function<double(int)>& rtol) {
  Tensor ref = load_npy(test::data_path("golden/resnet20_sgd_losses.npy"));
  auto got = sgd_trajectory(dtype);
  for (int step = 0; step < 10; ++step) {
    const double want = ref.at({step});
    std::printf("%s step %d: okd %.12f pytorch %.12f rel %.2e\n", dtype_name(dtype), step,
                got[step], want, std::fabs(got[step] - want) / want);
    EXPECT_NEAR(got[step], want, rtol(step) * want) << "step " << step;
  }
}
}  // namespace

TEST(ResNetGolden, TenSgdStepsFollowPyTorchInFloat64) {
  expect_trajectory(DType::Float64, [](int) { return 1e-12; });
}

// In float32 the first steps match to float rounding; later ones drift chaotically from the
// float64 reference, by an amount that depends on the BLAS kernel and on summation order
// (measured: 1e-8 at steps 0-1, 7e-6 at step 2, up to 4e-3 by step 9; PyTorch's own float32 run
// drifts the same way). The float64 test above is the exact check; this one guards against a
// float32-only fault (a kernel that breaks in float32) with bounds wide enough for the drift.
TEST(ResNetGolden, TenSgdStepsStayNearPyTorchInFloat32) {
  expect_trajectory(DType::Float32, [](int step) {
    return step < 2 ? 1e-6 : step < 3 ? 1e-4 : 2e-2;
  });
}
