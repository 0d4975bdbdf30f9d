// kd_loss's fused path (detach_teacher: one kd_div op) against the composition it replaces (the
// same loss with an undetached teacher that requires no grad: softmax/log/log_softmax/mul/sum):
// values and student gradients, float64 within 1e-12 and float32 within 1e-5 relative, both
// reductions, T = 1 and 4, teacher_eps 0 and 1e-7, moderate and huge (+-1000) logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/loss.h"
#include "tensor/random.h"

namespace okd::distill {
namespace {

struct Result {
  double value = 0;
  std::vector<double> grad;
};

Result run(const Tensor& s0, const Tensor& t, const KdOptions& o) {
  Tensor s = ops::clone(s0);
  s.requires_grad_(true);
  Tensor l = kd_loss(s, t, o);
  Result r;
  r.value = l.item();
  backward(l);
  r.grad = to_vector<double>(s.grad());
  return r;
}

TEST(KdFused, MatchesCompositionValuesAndStudentGradient) {
  double worst_value[2] = {0, 0}, worst_grad[2] = {0, 0};  // float64, float32
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double tol = dt == DType::Float64 ? 1e-12 : 1e-5;
    const int k = dt == DType::Float64 ? 0 : 1;
    for (double scale : {3.0, 1000.0}) {
      Generator gen(scale == 3.0 ? 7 : 8);
      const Tensor s = scale == 3.0 ? mul(randn({6, 10}, gen, dt), scale)
                                    : uniform({6, 10}, -scale, scale, gen, dt);
      const Tensor t = scale == 3.0 ? mul(randn({6, 10}, gen, dt), scale)
                                    : uniform({6, 10}, -scale, scale, gen, dt);
      for (double T : {1.0, 4.0}) {
        for (double eps : {0.0, 1e-7}) {
          for (KdReduction red : {KdReduction::kBatchMean, KdReduction::kMeanAll}) {
            SCOPED_TRACE(std::string(dtype_name(dt)) + " scale " + std::to_string(scale) + " T " +
                         std::to_string(T) + " eps " + std::to_string(eps) +
                         (red == KdReduction::kBatchMean ? " batchmean" : " mean_all"));
            KdOptions o;
            o.T = T;
            o.reduction = red;
            o.teacher_eps = eps;
            o.detach_teacher = true;
            const Result fused = run(s, t, o);
            o.detach_teacher = false;  // t requires no grad: the composition, student grad only
            const Result comp = run(s, t, o);
            ASSERT_TRUE(std::isfinite(comp.value));
            ASSERT_TRUE(std::isfinite(fused.value));
            const double dv = std::fabs(fused.value - comp.value) / std::fabs(comp.value);
            EXPECT_LE(dv, tol) << fused.value << " vs " << comp.value;
            double gmax = 0, gdiff = 0;
            for (size_t i = 0; i < comp.grad.size(); ++i) {
              ASSERT_TRUE(std::isfinite(fused.grad[i]));
              gmax = std::max(gmax, std::fabs(comp.grad[i]));
              gdiff = std::max(gdiff, std::fabs(fused.grad[i] - comp.grad[i]));
            }
            // relative to the largest gradient entry (entries of softmax differences reach 0)
            EXPECT_LE(gdiff / gmax, tol);
            worst_value[k] = std::max(worst_value[k], dv);
            worst_grad[k] = std::max(worst_grad[k], gdiff / gmax);
          }
        }
      }
    }
  }
  std::printf(
      "kd fused vs composition, max relative difference: float64 value %.3g grad %.3g; "
      "float32 value %.3g grad %.3g\n",
      worst_value[0], worst_grad[0], worst_value[1], worst_grad[1]);
}

// The raw op against the formula on a row where everything is known: equal logits give q = p, so
// the divergence is 0 without eps, and with eps p = q + eps, sum p = 1 + C eps, so the student
// gradient is g / T (q (1 + C eps) - q - eps).
TEST(KdFused, RawOpOnEqualLogits) {
  const Tensor z = from_vector<double>({1, 2, 3, 1, 1, 1}, {2, 3});
  const std::vector<double> rows = to_vector<double>(ops::kd_div_rows(z, z, 2.0, 0.0));
  EXPECT_NEAR(rows[0], 0, 1e-15);
  EXPECT_NEAR(rows[1], 0, 1e-15);
  const Tensor g = from_vector<double>({0.5, 2.0}, {2});
  const std::vector<double> ds = to_vector<double>(ops::kd_div_backward_student(g, z, z, 2.0, 0.1));
  const std::vector<double> q = to_vector<double>(softmax(z, 1, 2.0));
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c) {
      const double gn = n == 0 ? 0.5 : 2.0;
      EXPECT_NEAR(ds[n * 3 + c], gn / 2.0 * (q[n * 3 + c] * 1.3 - (q[n * 3 + c] + 0.1)), 1e-15);
    }
}

TEST(KdFused, RawOpRejectsBadInputs) {
  const Tensor a = zeros({2, 3}, DType::Float64), b = zeros({3, 2}, DType::Float64);
  EXPECT_THROW(ops::kd_div_rows(a, b, 1.0, 0.0), std::exception);
  EXPECT_THROW(ops::kd_div_rows(a, ops::to(a, DType::Float32), 1.0, 0.0), std::exception);
  EXPECT_THROW(ops::kd_div_rows(a, a, 0.0, 0.0), std::exception);
  EXPECT_THROW(ops::kd_div_rows(zeros({6}, DType::Float64), zeros({6}, DType::Float64), 1.0, 0.0),
               std::exception);
}

}  // namespace
}  // namespace okd::distill
