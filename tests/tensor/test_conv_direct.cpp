// The direct AVX-512 3x3 convolution (tensor/ops/conv3x3_direct.cpp) against the float64
// im2col + GEMM path: forward with and without bias, input gradient and weight gradient, on
// wide rows (one or more 16-pixel segments, ragged tails), narrow rows (W <= 8, two rows per
// vector, odd H) and channel counts that are not multiples of the register tiles (8 and 3).
// The weight gradient does not depend on the thread count. Skips on CPUs without AVX-512.
#include <functional>
#include <string>
#include <vector>

#include "tensor/ops/conv.h"
#include "tensor/ops/conv3x3_direct.h"
#include "tensor/ops/copy.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

struct DirectToggle {  // restores the process-wide switch and the thread count
  bool saved = ops::conv_direct_enabled();
  int threads = num_threads();
  ~DirectToggle() {
    ops::set_conv_direct_enabled(saved);
    set_num_threads(threads);
  }
};

struct Case {
  int64_t N, C, O, H, W;
};

const ops::Conv2dParams kSame{1, 1, 1, 1, 1, 1, 1};  // 3x3, stride 1, pad 1

// float64 reference through im2col + GEMM (the direct kernel is float32 only).
Tensor ref64(const std::function<Tensor(const Tensor&, const Tensor&)>& f, const Tensor& a,
             const Tensor& b) {
  return f(ops::to(a, DType::Float64), ops::to(b, DType::Float64));
}

}  // namespace

TEST(ConvDirect3x3, MatchesIm2colGemmInFloat64) {
  DirectToggle guard;
  ops::set_conv_direct_enabled(true);
  if (!ops::conv_direct_enabled() || !__builtin_cpu_supports("avx512f") ||
      !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512dq") ||
      !__builtin_cpu_supports("avx512vl"))
    GTEST_SKIP() << "CPU without AVX-512: the direct 3x3 kernel is not used here";
  const std::vector<Case> cases = {
      {2, 16, 16, 32, 32},  // CIFAR stage 1: two full segments per row
      {3, 5, 11, 7, 7},     // narrow, odd H, O not a multiple of 8 or 3
      {2, 8, 24, 8, 8},     // CIFAR stage 3 shape: exactly two rows per vector
      {1, 3, 10, 9, 17},    // wide with a 1-pixel tail segment
      {2, 4, 4, 1, 1},      // a single pixel
      {1, 2, 7, 5, 6},      // narrow, W < 8
      {2, 7, 9, 16, 20},    // 16-pixel segment + 4-pixel tail, odd channel counts
      {3, 4, 6, 4, 4},      // CIFAR-like stages of an 8x8 input: 4x4, 2x2
      {4, 5, 3, 2, 2},      //
      {1, 1, 1, 3, 3},      // one channel in and out
      {2, 3, 5, 1, 8},      // one row
      {1, 4, 4, 12, 12},    // 12 pixels: one ragged wide segment
      {16, 16, 16, 8, 8},   // a batch that fills the weight-gradient chunks
  };
  Generator gen(7);
  for (const auto& c : cases) {
    const std::string what = "N" + std::to_string(c.N) + " C" + std::to_string(c.C) + " O" +
                             std::to_string(c.O) + " " + std::to_string(c.H) + "x" +
                             std::to_string(c.W);
    Tensor x = randn({c.N, c.C, c.H, c.W}, gen);
    Tensor w = randn({c.O, c.C, 3, 3}, gen);
    Tensor b = randn({c.O}, gen);
    Tensor dy = randn({c.N, c.O, c.H, c.W}, gen);
    const Shape xs = x.shape(), ws = w.shape();

    Tensor y = ops::conv2d_forward(x, w, b, kSame);
    Tensor y_nobias = ops::conv2d_forward(x, w, Tensor(), kSame);
    Tensor dx = ops::conv2d_backward_input(dy, w, xs, kSame);
    Tensor dw = ops::conv2d_backward_weight(dy, x, ws, kSame);

    Tensor y64 = ops::conv2d_forward(ops::to(x, DType::Float64), ops::to(w, DType::Float64),
                                     ops::to(b, DType::Float64), kSame);
    Tensor y64_nobias =
        ref64([&](const Tensor& a,
                  const Tensor& k) { return ops::conv2d_forward(a, k, Tensor(), kSame); },
              x, w);
    Tensor dx64 =
        ref64([&](const Tensor& g,
                  const Tensor& k) { return ops::conv2d_backward_input(g, k, xs, kSame); },
              dy, w);
    Tensor dw64 =
        ref64([&](const Tensor& g,
                  const Tensor& a) { return ops::conv2d_backward_weight(g, a, ws, kSame); },
              dy, x);
    // float32 sums of up to C*9 (forward, input grad) or N*H*W (weight grad) products
    EXPECT_ALLCLOSE(ops::to(y, DType::Float64), y64, 1e-5, 1e-5) << what;
    EXPECT_ALLCLOSE(ops::to(y_nobias, DType::Float64), y64_nobias, 1e-5, 1e-5) << what;
    EXPECT_ALLCLOSE(ops::to(dx, DType::Float64), dx64, 1e-5, 1e-5) << what;
    EXPECT_ALLCLOSE(ops::to(dw, DType::Float64), dw64, 1e-5, 1e-4) << what;

    // and the float32 im2col path gives the same within float32 rounding
    ops::set_conv_direct_enabled(false);
    EXPECT_ALLCLOSE(ops::conv2d_forward(x, w, b, kSame), y, 1e-5, 1e-5) << what;
    EXPECT_ALLCLOSE(ops::conv2d_backward_weight(dy, x, ws, kSame), dw, 1e-5, 1e-4) << what;
    ops::set_conv_direct_enabled(true);
  }
}

TEST(ConvDirect3x3, WeightGradientDoesNotDependOnThreads) {
  DirectToggle guard;
  ops::set_conv_direct_enabled(true);
  Generator gen(3);
  Tensor x = randn({37, 6, 12, 12}, gen);
  Tensor dy = randn({37, 10, 12, 12}, gen);
  set_num_threads(1);
  Tensor one = ops::conv2d_backward_weight(dy, x, {10, 6, 3, 3}, kSame);
  set_num_threads(2);
  Tensor two = ops::conv2d_backward_weight(dy, x, {10, 6, 3, 3}, kSame);
  EXPECT_ALLCLOSE(one, two, 0, 0);
}

// The vectorised im2col of 8-wide planes (im2col_w8_planes) writes exactly the naive
// col[(c*3 + i)*3 + j][oh*8 + ow] = x[c][oh + i - 1][ow + j - 1] (0 outside), and the weight
// gradient built on it is the generic im2col path's bit for bit (the same GEMM on the same
// columns), for every even height it takes; odd or taller planes keep the generic im2col.
TEST(ConvDirect3x3, EightWideIm2colMatchesTheNaiveColumns) {
  DirectToggle guard;
  ops::set_conv_direct_enabled(true);
  if (!ops::direct3x3::im2col_w8_applies(DType::Float32, {4, 3, 3, 3}, kSame, 8, 8))
    GTEST_SKIP() << "CPU without AVX-512: the 8-wide im2col is not used here";
  EXPECT_FALSE(ops::direct3x3::im2col_w8_applies(DType::Float32, {4, 3, 3, 3}, kSame, 7, 8));
  EXPECT_FALSE(ops::direct3x3::im2col_w8_applies(DType::Float32, {4, 3, 3, 3}, kSame, 8, 7));
  EXPECT_FALSE(ops::direct3x3::im2col_w8_applies(DType::Float32, {4, 3, 3, 3}, kSame, 66, 8));
  EXPECT_FALSE(ops::direct3x3::im2col_w8_applies(DType::Float64, {4, 3, 3, 3}, kSame, 8, 8));
  Generator gen(11);
  for (int64_t H : {2, 6, 8, 64}) {
    const int64_t C = 3, L = H * 8;
    Tensor x = randn({C, H, 8}, gen);
    std::vector<float> col(static_cast<size_t>(C * 9 * L), -1.0f);
    ops::direct3x3::im2col_w8_planes(x.data<float>(), C, H, col.data());
    const float* xp = x.data<float>();
    int64_t wrong = 0;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j)
          for (int64_t oh = 0; oh < H; ++oh)
            for (int64_t ow = 0; ow < 8; ++ow) {
              const int64_t h = oh + i - 1, w = ow + j - 1;
              const float want = h >= 0 && h < H && w >= 0 && w < 8 ? xp[(c * H + h) * 8 + w] : 0;
              wrong += col[static_cast<size_t>(((c * 3 + i) * 3 + j) * L + oh * 8 + ow)] != want;
            }
    EXPECT_EQ(wrong, 0) << "H " << H;
  }
  for (int64_t H : {2, 8, 16, 64, 9, 66}) {
    Tensor x = randn({5, 6, H, 8}, gen);
    Tensor dy = randn({5, 7, H, 8}, gen);
    Tensor dw = ops::conv2d_backward_weight(dy, x, {7, 6, 3, 3}, kSame);
    ops::set_conv_direct_enabled(false);
    Tensor generic = ops::conv2d_backward_weight(dy, x, {7, 6, 3, 3}, kSame);
    ops::set_conv_direct_enabled(true);
    EXPECT_ALLCLOSE(dw, generic, 0, 0) << "H " << H;
  }
}
