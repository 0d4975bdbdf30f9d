// Reuse of bfloat16 staging copies (tensor/cuda/bf16_staging.h, to_bf16_reused): a copy is handed
// back only while its source is alive and unwritten, never across an in-place write, a freed and
// reallocated block, another layout, or a graph replay (which writes without advancing versions);
// and a mixed-precision convolution's forward and gradients give the same bits with reuse as
// with every operand staged afresh, while staging fewer copies; and a bf16 result widened into a
// float32 gradient in one pass. GPU tests: they skip without one.
#include <gtest/gtest.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "okd/build_config.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tests/support/cuda_test.h"

#if OKD_HAVE_CUDA
#include "tensor/cuda/bf16_staging.h"
#endif

using namespace okd;

#if OKD_HAVE_CUDA
namespace {

using test::kCuda;

Tensor gpu_randn(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return ops::to(randn(s, g), kCuda);
}

// The bytes of a staging buffer, on the host.
std::vector<uint8_t> bytes(const Tensor& buffer) {
  return to_vector<uint8_t>(ops::to(buffer, kCPU));
}

// Starts each test with no copies held, and leaves none behind.
struct Fresh {
  Fresh() { cuda::gpu::forget_bf16_copies(); }
  ~Fresh() { cuda::gpu::forget_bf16_copies(); }
};

}  // namespace

TEST(CudaBf16Staging, AnUnchangedTensorIsStagedOnce) {
  OKD_REQUIRE_GPU();
  Fresh fresh;
  const Tensor x = gpu_randn({2, 3, 4, 5}, 1);
  const int64_t reused = cuda::gpu::bf16_copies_reused();
  const Tensor a = cuda::gpu::to_bf16_reused(x, false);
  const Tensor b = cuda::gpu::to_bf16_reused(x, false);
  EXPECT_EQ(a.device_raw_data(), b.device_raw_data()) << "the same copy";
  EXPECT_EQ(cuda::gpu::bf16_copies_reused(), reused + 1);
  EXPECT_EQ(bytes(a), bytes(cuda::gpu::to_bf16(x, false)));
  // another handle on the same memory is the same tensor
  const Tensor view = ops::reshape(x, {6, 20});
  const Tensor c = cuda::gpu::to_bf16_reused(ops::reshape(view, {2, 3, 4, 5}), false);
  EXPECT_EQ(c.device_raw_data(), a.device_raw_data());
  // the NHWC order is another copy, with its own bytes
  const Tensor d = cuda::gpu::to_bf16_reused(x, true);
  EXPECT_NE(d.device_raw_data(), a.device_raw_data());
  EXPECT_EQ(bytes(d), bytes(cuda::gpu::to_bf16(x, true)));
  EXPECT_EQ(cuda::gpu::bf16_copies_held(), 2);
  cuda::gpu::forget_bf16_copies();
  EXPECT_EQ(cuda::gpu::bf16_copies_held(), 0);
}

TEST(CudaBf16Staging, AWrittenOrReallocatedTensorIsStagedAgain) {
  OKD_REQUIRE_GPU();
  Fresh fresh;
  Tensor x = gpu_randn({64, 16}, 2);
  const std::vector<uint8_t> before = bytes(cuda::gpu::to_bf16_reused(x, false));
  ops::mul_(x, 3.0);  // an in-place write advances the version
  const std::vector<uint8_t> after = bytes(cuda::gpu::to_bf16_reused(x, false));
  EXPECT_NE(after, before);
  EXPECT_EQ(after, bytes(cuda::gpu::to_bf16(x, false)));
  // a tensor freed, and a new one on (most likely) the same block of the caching allocator
  const void* old_address = x.device_raw_data();
  x = Tensor();
  const Tensor y = gpu_randn({64, 16}, 3);
  const std::vector<uint8_t> staged = bytes(cuda::gpu::to_bf16_reused(y, false));
  EXPECT_EQ(staged, bytes(cuda::gpu::to_bf16(y, false)))
      << (y.device_raw_data() == old_address ? "same block reused" : "another block");
  // a part of a tensor is not the whole
  const Tensor z = gpu_randn({4, 8}, 4);
  cuda::gpu::to_bf16_reused(z, false);
  const Tensor rows = ops::contiguous(ops::slice(z, 0, 1, 3));
  EXPECT_EQ(bytes(cuda::gpu::to_bf16_reused(rows, false)), bytes(cuda::gpu::to_bf16(rows, false)));
}

// A replay writes its tensors on the device without the host code that advances their versions:
// a copy staged before it must not be handed back after it.
TEST(CudaBf16Staging, AReplayRetiresEveryCopy) {
  OKD_REQUIRE_GPU();
  Fresh fresh;
  Tensor x = gpu_randn({32, 8}, 5);
  cuda::CapturedGraph graph;
  graph.capture([&] { ops::mul_(x, 3.0); });  // x *= 3, once now and once per replay
  const std::vector<uint8_t> staged = bytes(cuda::gpu::to_bf16_reused(x, false));
  graph.replay();
  const std::vector<uint8_t> restaged = bytes(cuda::gpu::to_bf16_reused(x, false));
  EXPECT_NE(restaged, staged);
  EXPECT_EQ(restaged, bytes(cuda::gpu::to_bf16(x, false)));
}

// A mixed-precision conv2d forward, input gradient and weight gradient: with reuse, the weight is
// staged once for the forward and the input gradient, the input once for the forward and the
// weight gradient, the output gradient once for both gradients; the results are bit for bit
// those of staging every operand afresh.
TEST(CudaBf16Staging, ConvolutionReusesItsOperandsWithTheSameResults) {
  OKD_REQUIRE_GPU();
  Fresh fresh;
  const Tensor x = gpu_randn({4, 8, 6, 6}, 6), w = gpu_randn({16, 8, 3, 3}, 7);
  const Tensor dy = gpu_randn({4, 16, 6, 6}, 8);
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.precision = Precision::BFloat16;
  for (bool nhwc : {false, true}) {
    SCOPED_TRACE(nhwc ? "NHWC" : "NCHW");
    cuda::set_channels_last(nhwc);
    auto run = [&](bool reuse) {
      std::vector<Tensor> out;
      const auto step = [&](auto f) {
        if (!reuse) cuda::gpu::forget_bf16_copies();
        out.push_back(f());
      };
      step([&] { return ops::conv2d_forward(x, w, Tensor(), p); });
      step([&] { return ops::conv2d_backward_input(dy, w, x.shape(), p); });
      step([&] { return ops::conv2d_backward_weight(dy, x, w.shape(), p); });
      return out;
    };
    cuda::gpu::forget_bf16_copies();
    const int64_t before = cuda::gpu::bf16_copies_reused();
    const std::vector<Tensor> reused = run(true);
    EXPECT_EQ(cuda::gpu::bf16_copies_reused() - before, 3) << "w, dy and x once each";
    const std::vector<Tensor> afresh = run(false);
    for (size_t i = 0; i < reused.size(); ++i)
      EXPECT_TRUE(test::allclose(ops::to(reused[i], kCPU), ops::to(afresh[i], kCPU), 0, 0)) << i;
  }
  cuda::set_channels_last(false);
}

// With set_bf16_prestaging (what Autocast(bf16) turns on), training batch norm writes the bfloat16
// copies of its output (forward) and of its input gradient (backward) in its own kernels, in both
// the one-block and the split forms, and the next to_bf16_reused of those tensors finds them: the
// same bytes as staging them afresh, one conversion fewer each, the values themselves unchanged.
// Not under channels-last staging (the convolutions then want NHWC copies).
TEST(CudaBf16Staging, BatchNormWritesTheCopiesItsConvolutionsRead) {
  OKD_REQUIRE_GPU();
  Fresh fresh;
  struct Restore {
    ~Restore() {
      cuda::set_bf16_prestaging(false);
      cuda::set_batch_norm_split(2);
      cuda::set_channels_last(false);
    }
  } restore;
  // N S = 8192 values a channel: 4 blocks each when split (batch_norm_parts)
  const Tensor x = gpu_randn({8, 4, 32, 32}, 21), res = gpu_randn({8, 4, 32, 32}, 22);
  const Tensor w = gpu_randn({4}, 23), b = gpu_randn({4}, 24), dz = gpu_randn({8, 4, 32, 32}, 25);
  for (int split : {0, 1}) {
    SCOPED_TRACE(split ? "split" : "one block");
    cuda::set_batch_norm_split(split);
    ASSERT_EQ(cuda::batch_norm_parts(8, 4, 32 * 32), split ? 4 : 1);
    cuda::set_bf16_prestaging(false);
    const auto [y0, st0] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
    const Tensor dx0 =
        std::get<0>(ops::batch_norm_add_relu_backward(dz, x, w, st0.mean, st0.invstd, y0));
    cuda::set_bf16_prestaging(true);
    const auto [y1, st1] = ops::batch_norm_train(x, w, b, 1e-5, true, res);
    const Tensor dx1 =
        std::get<0>(ops::batch_norm_add_relu_backward(dz, x, w, st1.mean, st1.invstd, y1));
    EXPECT_TRUE(test::allclose(ops::to(y1, kCPU), ops::to(y0, kCPU), 0, 0));
    EXPECT_TRUE(test::allclose(ops::to(dx1, kCPU), ops::to(dx0, kCPU), 0, 0));
    for (const Tensor& t : {y1, dx1}) {
      const int64_t reused = cuda::gpu::bf16_copies_reused();
      const Tensor copy = cuda::gpu::to_bf16_reused(t, false);
      EXPECT_EQ(cuda::gpu::bf16_copies_reused(), reused + 1) << "written by batch norm";
      EXPECT_EQ(bytes(copy), bytes(cuda::gpu::to_bf16(t, false)));
    }
    // without prestaging nothing was written for y0 and dx0
    const int64_t reused = cuda::gpu::bf16_copies_reused();
    cuda::gpu::to_bf16_reused(y0, false);
    cuda::gpu::to_bf16_reused(dx0, false);
    EXPECT_EQ(cuda::gpu::bf16_copies_reused(), reused);
  }
  // A bf16 convolution of the batch norm's output reads the copy and gives the same bits.
  cuda::set_batch_norm_split(2);
  ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  p.precision = Precision::BFloat16;
  const Tensor cw = gpu_randn({5, 4, 3, 3}, 26);
  cuda::set_bf16_prestaging(false);
  const Tensor want = ops::conv2d_forward(ops::batch_norm_train(x, w, b, 1e-5).first, cw, {}, p);
  cuda::set_bf16_prestaging(true);
  const Tensor y = ops::batch_norm_train(x, w, b, 1e-5).first;
  const int64_t before = cuda::gpu::bf16_copies_reused();
  const Tensor got = ops::conv2d_forward(y, cw, {}, p);
  EXPECT_GE(cuda::gpu::bf16_copies_reused(), before + 1);
  EXPECT_TRUE(test::allclose(ops::to(got, kCPU), ops::to(want, kCPU), 0, 0));
  // Channels-last staging: batch norm leaves the (NHWC) staging to the convolution.
  cuda::set_channels_last(true);
  const int64_t held = cuda::gpu::bf16_copies_held();
  ops::batch_norm_train(x, w, b, 1e-5);
  EXPECT_EQ(cuda::gpu::bf16_copies_held(), held);
}

// Widening a bfloat16 result into a gradient (the bf16 input gradient of a convolution added into
// the residual's): bit for bit a widening followed by add_, in both layouts, with the version
// advanced.
TEST(CudaBf16Staging, WideningIntoATensorAddsInOnePass) {
  OKD_REQUIRE_GPU();
  for (bool nhwc : {false, true}) {
    SCOPED_TRACE(nhwc ? "NHWC" : "NCHW");
    const Tensor values = gpu_randn({3, 5, 4, 6}, 9);
    const Tensor buffer = cuda::gpu::to_bf16(values, nhwc);
    const Tensor start = gpu_randn({3, 5, 4, 6}, 10);
    Tensor want = ops::clone(start);
    ops::add_(want, cuda::gpu::from_bf16(buffer, want.shape(), nhwc));
    Tensor got = ops::clone(start);
    const uint64_t version = got.impl()->storage->version();
    cuda::gpu::add_from_bf16_(got, buffer, nhwc);
    EXPECT_GT(got.impl()->storage->version(), version);
    EXPECT_TRUE(test::allclose(ops::to(got, kCPU), ops::to(want, kCPU), 0, 0));
    EXPECT_FALSE(test::allclose(ops::to(got, kCPU), ops::to(start, kCPU), 0, 0));
    EXPECT_THROW(cuda::gpu::add_from_bf16_(gpu_randn({3, 5, 4, 5}, 11), buffer, nhwc), Error);
  }
}

#else
TEST(CudaBf16Staging, NeedsCuda) { GTEST_SKIP() << "okd was built without CUDA (-DOKD_CUDA=OFF)"; }
#endif
