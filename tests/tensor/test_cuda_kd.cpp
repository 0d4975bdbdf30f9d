// The fused KD divergence's CUDA kernels (loss_cuda.cu: kd_div_rows, kd_div_backward_student)
// against the CPU op (loss_cpu.cpp) on random logits, moderate and huge (+-1000), float32 within
// 1e-5 and float64 within 1e-12 relative; non-contiguous inputs; and run-to-run bit identity (one
// block per row, fixed-order reductions). Skips, saying so, without a real GPU (the emulated
// cuda:0 runs the CPU op itself).
#include <gtest/gtest.h>

#include <string>

#include "autograd/functions.h"
#include "okd/build_config.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/loss.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/cuda_test.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

using test::kCuda;

Tensor gpu(const Tensor& t) { return ops::to(t, kCuda); }

double rtol_for(DType dt) { return dt == DType::Float32 ? 1e-5 : 1e-12; }

::testing::AssertionResult matches(const Tensor& on_gpu, const Tensor& ref, double rtol,
                                   double atol = 1e-6) {
  return test::matches_on_gpu(on_gpu, ref, rtol, atol);
}

const DType kFloats[] = {DType::Float32, DType::Float64};

}  // namespace

TEST(CudaKd, RowsAndStudentGradientMatchCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    for (const Shape& shape : {Shape{37, 10}, Shape{5, 1000}, Shape{3, 1}}) {
      for (double scale : {3.0, 1000.0}) {
        Generator gen(131);
        const Tensor s = ops::mul(uniform(shape, -1, 1, gen, dt), scale);
        const Tensor t = ops::mul(uniform(shape, -1, 1, gen, dt), scale);
        const Tensor g = uniform({shape[0]}, 0.5, 2.0, gen, dt);
        for (double T : {1.0, 4.0}) {
          for (double eps : {0.0, 1e-7}) {
            SCOPED_TRACE(shape_str(shape) + " " + dtype_name(dt) + " scale " +
                         std::to_string(scale) + " T " + std::to_string(T) + " eps " +
                         std::to_string(eps));
            EXPECT_TRUE(matches(ops::kd_div_rows(gpu(s), gpu(t), T, eps),
                                ops::kd_div_rows(s, t, T, eps), rtol_for(dt)));
            EXPECT_TRUE(matches(ops::kd_div_backward_student(gpu(g), gpu(s), gpu(t), T, eps),
                                ops::kd_div_backward_student(g, s, t, T, eps), rtol_for(dt), 1e-7));
          }
        }
      }
    }
  }
}

TEST(CudaKd, NonContiguousInputsAndAutograd) {
  OKD_REQUIRE_GPU();
  Generator gen(132);
  const Tensor s = ops::transpose(randn({10, 6}, gen, DType::Float64), 0, 1);  // [6, 10]
  const Tensor t = ops::mul(randn({6, 10}, gen, DType::Float64), 2.0);
  EXPECT_TRUE(matches(ops::kd_div_rows(gpu(s), gpu(t), 4.0, 1e-7),
                      ops::kd_div_rows(s, t, 4.0, 1e-7), 1e-12));
  Tensor sc = ops::clone(s), sg = gpu(s);
  sc.requires_grad_(true);
  sg.requires_grad_(true);
  backward(sum(kd_div(sc, t, 4.0, 1e-7)));
  backward(sum(kd_div(sg, gpu(t), 4.0, 1e-7)));
  EXPECT_TRUE(matches(sg.grad(), sc.grad(), 1e-12, 1e-12));
}

TEST(CudaKd, RunToRunBitIdentical) {
  OKD_REQUIRE_GPU();
  Generator gen(133);
  const Tensor s = gpu(ops::mul(randn({64, 1000}, gen, DType::Float32), 5.0));
  const Tensor t = gpu(ops::mul(randn({64, 1000}, gen, DType::Float32), 5.0));
  const Tensor g = gpu(uniform({64}, 0.5, 2.0, gen, DType::Float32));
  const Tensor r1 = ops::kd_div_rows(s, t, 4.0, 1e-7), r2 = ops::kd_div_rows(s, t, 4.0, 1e-7);
  EXPECT_TRUE(test::allclose(r1, r2, 0, 0));
  const Tensor d1 = ops::kd_div_backward_student(g, s, t, 4.0, 1e-7);
  const Tensor d2 = ops::kd_div_backward_student(g, s, t, 4.0, 1e-7);
  EXPECT_TRUE(test::allclose(d1, d2, 0, 0));
}
