// conv2d_backward_weight on the CPU against a naive float64 sum over batches larger than its 16
// chunks (partial sums per chunk, added in order), where its im2col + GEMM path runs: 3x3
// stride 1 on 8x8 planes (the direct kernel's weight gradient is used only for wider planes),
// 3x3 stride 2 onto 8x8, 1x1 (pointwise), groups, and batches that leave uneven chunks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/random.h"

using namespace okd;

namespace {

// dW[o, c, i, j] = sum_n sum_(oh, ow) dY[n, o, oh, ow] x[n, g*Cg + c, oh*s - p + i, ow*s - p + j]
std::vector<double> naive_weight_grad(const Tensor& dy, const Tensor& x, const Shape& ws,
                                      const ops::Conv2dParams& p) {
  const auto dyv = to_vector<double>(ops::to(dy, DType::Float64));
  const auto xv = to_vector<double>(ops::to(x, DType::Float64));
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = ws[0], Cg = ws[1], kH = ws[2], kW = ws[3], OH = dy.size(2), OW = dy.size(3);
  const int64_t Og = O / p.groups;
  std::vector<double> dw(static_cast<size_t>(O * Cg * kH * kW), 0.0);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t i = 0; i < kH; ++i)
        for (int64_t j = 0; j < kW; ++j) {
          double s = 0;
          const int64_t cin = (o / Og) * Cg + c;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t oh = 0; oh < OH; ++oh)
              for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t h = oh * p.stride_h - p.pad_h + i, w = ow * p.stride_w - p.pad_w + j;
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                s += dyv[((n * O + o) * OH + oh) * OW + ow] * xv[((n * C + cin) * H + h) * W + w];
              }
          dw[((o * Cg + c) * kH + i) * kW + j] = s;
        }
  return dw;
}

struct Case {
  int64_t N, C, O, H, k, stride, pad, groups;
};

TEST(ConvWeightGrad, BatchesOverItsChunksMatchTheNaiveSum) {
  Generator g(17);
  for (const Case& c : {Case{40, 6, 5, 8, 3, 1, 1, 1}, Case{37, 6, 5, 16, 3, 2, 1, 1},
                        Case{40, 6, 5, 8, 1, 1, 0, 1}, Case{40, 6, 4, 8, 3, 1, 1, 2},
                        Case{130, 3, 4, 8, 3, 1, 1, 1}}) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " H " << c.H << " k " << c.k << " stride "
                                    << c.stride << " groups " << c.groups);
    ops::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride;
    p.pad_h = p.pad_w = c.pad;
    p.groups = c.groups;
    const Shape ws{c.O, c.C / c.groups, c.k, c.k};
    const Tensor x = randn({c.N, c.C, c.H, c.H}, g);
    const int64_t OH = (c.H + 2 * c.pad - c.k) / c.stride + 1;
    const Tensor dy = randn({c.N, c.O, OH, OH}, g);
    const auto got = to_vector<double>(ops::to(ops::conv2d_backward_weight(dy, x, ws, p),
                                               DType::Float64));
    const auto want = naive_weight_grad(dy, x, ws, p);
    ASSERT_EQ(got.size(), want.size());
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * scale) << i;
  }
}

}  // namespace
