// conv2d_backward_input with `accumulate` (conv.h): the result is accumulate + dx, written into
// accumulate's memory and returned as that tensor with its version bumped; exactly so on the CPU,
// within 1e-4 relative of the CPU on CUDA (cuDNN's beta = 1; bf16 staging adds afterwards); a
// tensor that cannot take the sum is a clear error.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tests/support/cuda_test.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

using test::kCuda;

using test::randn_t;

struct Case {
  Shape x, w;
  ops::Conv2dParams p;
};
// 3x3 pad 1 (the CPU's direct kernel where AVX-512 is there), pointwise, strided, dilated and
// grouped: every CPU path of conv2d_backward_input.
const std::vector<Case> kCases = {
    {{2, 4, 7, 6}, {5, 4, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
    {{2, 8, 5, 5}, {6, 8, 1, 1}, {1, 1, 0, 0, 1, 1, 1}},
    {{3, 4, 11, 9}, {6, 2, 3, 2}, {2, 1, 1, 0, 1, 2, 2}},
};

using ::okd::test::error_of;

// Runs conv2d_backward_input(dy, w, xs, p, acc) and checks that it returned acc itself, bumped
// acc's version, and holds before + dx (rtol 0: bit for bit) where dx is the op without acc.
void expect_accumulates(const Tensor& dy, const Tensor& w, const Shape& xs,
                        const ops::Conv2dParams& p, const Tensor& acc, double rtol, double atol) {
  const Tensor before = ops::to(ops::clone(acc), kCPU);
  const Tensor dx = ops::to(ops::conv2d_backward_input(dy, w, xs, p), kCPU);
  const uint64_t version = acc.impl()->storage->version();
  Tensor out = ops::conv2d_backward_input(dy, w, xs, p, acc);
  EXPECT_EQ(out.impl(), acc.impl());
  EXPECT_GT(acc.impl()->storage->version(), version);
  EXPECT_ALLCLOSE(ops::to(out, kCPU), ops::add(before, dx), rtol, atol);
}

TEST(Conv2dAccumulate, CpuResultIsAccumulatePlusDxExactly) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (Precision pr : {Precision::Float32, Precision::BFloat16})
      for (const Case& c : kCases) {
        SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w) + " " + dtype_name(dt) +
                     (pr == Precision::BFloat16 ? " bf16" : ""));
        ops::Conv2dParams p = c.p;
        p.precision = pr;
        Tensor x = randn_t(c.x, dt, 1), w = randn_t(c.w, dt, 2);
        Tensor dy = randn_t(ops::conv2d_forward(x, w, Tensor(), p).shape(), dt, 3);
        expect_accumulates(dy, w, c.x, p, randn_t(c.x, dt, 4), 0.0, 0.0);
      }
}

TEST(Conv2dAccumulate, ATensorThatCannotTakeTheSumIsAClearError) {
  const Case& c = kCases[0];
  Tensor w = randn_t(c.w, DType::Float32, 5), dy = randn_t({2, 5, 7, 6}, DType::Float32, 6);
  auto run = [&](const Tensor& acc) {
    return error_of([&] { ops::conv2d_backward_input(dy, w, c.x, c.p, acc); });
  };
  for (const Tensor& bad :
       {randn_t({2, 4, 7, 5}, DType::Float32, 7),                                 // wrong shape
        randn_t(c.x, DType::Float64, 8),                                          // wrong dtype
        ops::permute(randn_t({2, 4, 6, 7}, DType::Float32, 9), {0, 1, 3, 2})}) {  // not contiguous
    const std::string e = run(bad);
    EXPECT_NE(e.find("conv2d_backward_input: the tensor to accumulate into"), std::string::npos)
        << e;
  }
}

// ---- CUDA (cuDNN; the SIMT simulator's stand-in in a simulator build) -------------------------

TEST(CudaOps, Conv2dBackwardInputAccumulatesIntoAGivenTensor) {
  OKD_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64})
    for (Precision pr : {Precision::Float32, Precision::BFloat16})
      for (const Case& c : kCases) {
        if (pr == Precision::BFloat16 && dt == DType::Float64) continue;  // float32 only
        SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w) + " " + dtype_name(dt) +
                     (pr == Precision::BFloat16 ? " bf16" : ""));
        ops::Conv2dParams p = c.p;
        p.precision = pr;
        Tensor x = randn_t(c.x, dt, 11), w = randn_t(c.w, dt, 12);
        Tensor dy = randn_t(ops::conv2d_forward(x, w, Tensor(), p).shape(), dt, 13);
        Tensor acc = randn_t(c.x, dt, 14);
        const Tensor ref = ops::conv2d_backward_input(dy, w, c.x, p, ops::clone(acc));  // CPU
        const Tensor acc_gpu = ops::to(acc, kCuda);
        Tensor out =
            ops::conv2d_backward_input(ops::to(dy, kCuda), ops::to(w, kCuda), c.x, p, acc_gpu);
        EXPECT_EQ(out.impl(), acc_gpu.impl());
        // bf16: products of bf16-rounded operands, the sum rounded to bf16, then the float add
        const double rtol = pr == Precision::BFloat16 ? 1e-2 : dt == DType::Float32 ? 1e-4 : 1e-12;
        const double atol = pr == Precision::BFloat16 ? 5e-2 : dt == DType::Float32 ? 1e-4 : 1e-10;
        EXPECT_TRUE(test::matches_on_gpu(out, ref, rtol, atol));
        expect_accumulates(ops::to(dy, kCuda), ops::to(w, kCuda), c.x, p, acc_gpu, rtol, atol);
      }
  // Bad tensors are refused on the device too, and the device must match.
  const Case& c = kCases[0];
  Tensor w = ops::to(randn_t(c.w, DType::Float32, 15), kCuda);
  Tensor dy = ops::to(randn_t({2, 5, 7, 6}, DType::Float32, 16), kCuda);
  const std::string e = error_of(
      [&] { ops::conv2d_backward_input(dy, w, c.x, c.p, randn_t(c.x, DType::Float32, 17)); });
  EXPECT_NE(e.find("the tensor to accumulate into"), std::string::npos) << e;
}

}  // namespace
