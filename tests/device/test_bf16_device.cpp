// Mixed precision on the device against the CPU's bfloat16 arithmetic: conv2d (both gradients,
// NCHW and channels-last staging), matmul, and a small network's loss and gradients under
// nn::functional::Autocast. Emulated cuda:0 runs the CPU ops, so there the results must be equal
// bit for bit; on a GPU (cuDNN/cuBLAS bf16 with float32 sums in their own order) each value must
// lie within one bfloat16 step of the CPU's and nearly all must be equal.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/bf16_check.h"
#include "tests/support/device_test.h"

namespace {

using namespace okd;
namespace F = okd::nn::functional;
using test::cpu;
using test::dev;
using test::g_emulated;
using test::kCuda;

Tensor randn_t(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, DType::Float32);
}

// The device result against the CPU's bfloat16 result: equal when emulated; on a GPU within one
// bfloat16 step, 90% of values equal.
void expect_device_matches(const Tensor& on_device, const Tensor& on_cpu, const std::string& what,
                           bool representable = true) {
  ASSERT_TRUE(on_device.device().is_cuda()) << what;
  if (g_emulated) {
    EXPECT_EQ(to_vector<float>(cpu(on_device)), to_vector<float>(on_cpu)) << what;
    return;
  }
  test::expect_bf16_result(cpu(on_device), on_cpu, what, representable, 0.9);
}

}  // namespace

TEST(DeviceBf16, ConvolutionBothGradientsAndBothLayoutsMatchCpu) {
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.precision = Precision::BFloat16;
  const Tensor x = randn_t({4, 16, 8, 8}, 1), w = randn_t({32, 16, 3, 3}, 2), b = randn_t({32}, 3),
               gy = randn_t({4, 32, 8, 8}, 4);
  const Tensor y = ops::conv2d_forward(x, w, b, p);
  const Tensor gx = ops::conv2d_backward_input(gy, w, x.shape(), p);
  const Tensor gw = ops::conv2d_backward_weight(gy, x, w.shape(), p);
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    cuda::set_channels_last(channels_last);
    expect_device_matches(ops::conv2d_forward(dev(x), dev(w), dev(b), p), y, "forward", false);
    expect_device_matches(ops::conv2d_backward_input(dev(gy), dev(w), x.shape(), p), gx,
                          "input gradient");
    expect_device_matches(ops::conv2d_backward_weight(dev(gy), dev(x), w.shape(), p), gw,
                          "weight gradient");
  }
  cuda::set_channels_last(false);
}

TEST(DeviceBf16, MatmulMatchesCpu) {
  const Tensor a = randn_t({3, 20, 48}, 5), b = randn_t({48, 24}, 6);
  expect_device_matches(ops::matmul(dev(a), dev(b), Precision::BFloat16),
                        ops::matmul(a, b, Precision::BFloat16), "batched, broadcast");
  const Tensor at = ops::transpose(randn_t({48, 20}, 7), 0, 1);  // read through its strides
  expect_device_matches(ops::matmul(dev(at), dev(b), Precision::BFloat16),
                        ops::matmul(at, b, Precision::BFloat16), "transposed operand");
}

// conv -> batch norm -> relu -> conv -> pool -> linear -> cross-entropy under Autocast: the
// loss and every parameter gradient, device against CPU.
TEST(DeviceBf16, AutocastNetworkLossAndGradientsMatchCpu) {
  auto run = [](Device d) {
    std::vector<Tensor> params = {randn_t({16, 3, 3, 3}, 11), randn_t({16}, 12),
                                  randn_t({16}, 13),          randn_t({32, 16, 3, 3}, 14),
                                  randn_t({10, 32}, 15),      randn_t({10}, 16)};
    for (Tensor& t : params) {
      t = ops::to(ops::mul(t, 0.2), d);
      t.requires_grad_(true);
    }
    const Tensor x = ops::to(randn_t({8, 3, 12, 12}, 17), d);
    Generator g(18);
    const Tensor labels = ops::to(randint(0, 10, {8}, g), d);
    Tensor loss;
    {
      F::Autocast bf16(Precision::BFloat16);
      Tensor h = F::conv2d(x, params[0], Tensor(), 1, 1);
      h = F::batch_norm_relu(h, Tensor(), Tensor(), params[1], params[2], true);
      h = F::conv2d(h, params[3], Tensor(), 2, 1);
      h = F::adaptive_avg_pool2d(h, 1, 1);
      h = F::linear(reshape(h, {8, 32}), params[4], params[5]);
      loss = F::cross_entropy(h, labels);
    }
    backward(loss);
    std::vector<Tensor> out = {loss};
    for (const Tensor& t : params) out.push_back(t.grad());
    return out;
  };
  const std::vector<Tensor> on_cpu = run(kCPU), on_device = run(kCuda);
  for (size_t i = 0; i < on_cpu.size(); ++i) {
    SCOPED_TRACE(i == 0 ? std::string("loss") : "gradient of parameter " + std::to_string(i - 1));
    ASSERT_TRUE(on_device[i].device().is_cuda());
    const std::vector<float> a = to_vector<float>(on_cpu[i]),
                             b = to_vector<float>(cpu(on_device[i]));
    ASSERT_EQ(a.size(), b.size());
    double scale = 0;
    for (float v : a) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    for (size_t k = 0; k < a.size(); ++k) {
      if (g_emulated)
        ASSERT_EQ(a[k], b[k]) << "[" << k << "]";
      else  // bf16 rounding differences compound through the layers
        ASSERT_LE(std::fabs(a[k] - b[k]), 0.05 * scale) << "[" << k << "]";
    }
  }
}
