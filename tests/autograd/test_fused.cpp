// Fused ops against the compositions they replace: batch_norm_relu (training) must give the same
// output, running statistics and gradients as relu(batch_norm(x)), and batch_norm_add_relu the
// same as relu(batch_norm(x) + r), in float32 and float64; in eval mode each is the composition.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "tensor/ops/copy.h"
#include "tensor/random.h"
#include "tests/support/test_support.h"

namespace okd {
namespace {

struct Outcome {
  Tensor out, dx, dw, db, running_mean, running_var;
};

Outcome run(bool fused, DType dtype, bool training) {
  Generator gen(5);
  Tensor x = ops::to(randn({6, 4, 5, 7}, gen), dtype);
  Tensor w = ops::to(rand({4}, gen), dtype);
  Tensor b = ops::to(from_vector<double>({0.3, -0.2, 0.1, -0.4}), dtype);
  Tensor seed = ops::to(randn({6, 4, 5, 7}, gen), dtype);  // d loss / d out
  Tensor rm = zeros({4}, dtype), rv = ones({4}, dtype);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  Tensor out = fused ? batch_norm_relu(x, rm, rv, w, b, training, 0.1, 1e-5)
                     : relu(batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5));
  backward(sum(mul(out, seed)));
  return {ops::clone(out), x.grad(), w.grad(), b.grad(), rm, rv};
}

TEST(FusedBatchNormRelu, MatchesTheComposition) {
  for (DType dtype : {DType::Float32, DType::Float64})
    for (bool training : {true, false}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (training ? " train" : " eval"));
      Outcome f = run(true, dtype, training), c = run(false, dtype, training);
      // The same arithmetic per element (scale, shift, max) and the same masked sums.
      const double tol = dtype == DType::Float32 ? 1e-6 : 1e-12;
      EXPECT_ALLCLOSE(f.out, c.out, 0, 0);
      EXPECT_ALLCLOSE(f.running_mean, c.running_mean, 0, 0);
      EXPECT_ALLCLOSE(f.running_var, c.running_var, 0, 0);
      EXPECT_ALLCLOSE(f.dx, c.dx, tol, tol);
      EXPECT_ALLCLOSE(f.dw, c.dw, tol, tol);
      EXPECT_ALLCLOSE(f.db, c.db, tol, tol);
      // about half the outputs are clipped, so the mask matters
      auto v = to_vector<double>(ops::to(f.out, DType::Float64));
      int zeros_seen = 0;
      for (double e : v) zeros_seen += e == 0.0;
      EXPECT_GT(zeros_seen, static_cast<int>(v.size()) / 4);
      EXPECT_LT(zeros_seen, static_cast<int>(v.size()) * 3 / 4);
    }
}

struct ResidualOutcome {
  Tensor out, dx, dr, dw, db, running_mean, running_var;
};

ResidualOutcome run_residual(bool fused, DType dtype, bool training) {
  Generator gen(6);
  Tensor x = ops::to(randn({6, 4, 5, 7}, gen), dtype);
  Tensor r = ops::to(randn({6, 4, 5, 7}, gen), dtype);
  Tensor w = ops::to(rand({4}, gen), dtype);
  Tensor b = ops::to(from_vector<double>({0.3, -0.2, 0.1, -0.4}), dtype);
  Tensor seed = ops::to(randn({6, 4, 5, 7}, gen), dtype);
  Tensor rm = zeros({4}, dtype), rv = ones({4}, dtype);
  for (Tensor* t : {&x, &r, &w, &b}) t->requires_grad_();
  Tensor out = fused ? batch_norm_add_relu(x, r, rm, rv, w, b, training, 0.1, 1e-5)
                     : relu(add(batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5), r));
  backward(sum(mul(out, seed)));
  return {ops::clone(out), x.grad(), r.grad(), w.grad(), b.grad(), rm, rv};
}

TEST(FusedBatchNormAddRelu, MatchesTheComposition) {
  for (DType dtype : {DType::Float32, DType::Float64})
    for (bool training : {true, false}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (training ? " train" : " eval"));
      ResidualOutcome f = run_residual(true, dtype, training),
                      c = run_residual(false, dtype, training);
      // The forward rounds y before adding the residual, as the composition does: equal bits.
      // The backward is the composition's own ops (relu_backward, then the batch-norm backward).
      EXPECT_ALLCLOSE(f.out, c.out, 0, 0);
      EXPECT_ALLCLOSE(f.running_mean, c.running_mean, 0, 0);
      EXPECT_ALLCLOSE(f.running_var, c.running_var, 0, 0);
      EXPECT_ALLCLOSE(f.dx, c.dx, 0, 0);
      EXPECT_ALLCLOSE(f.dr, c.dr, 0, 0);
      EXPECT_ALLCLOSE(f.dw, c.dw, 0, 0);
      EXPECT_ALLCLOSE(f.db, c.db, 0, 0);
      auto v = to_vector<double>(ops::to(f.out, DType::Float64));
      int zeros_seen = 0;
      for (double e : v) zeros_seen += e == 0.0;
      EXPECT_GT(zeros_seen, static_cast<int>(v.size()) / 4);
      EXPECT_LT(zeros_seen, static_cast<int>(v.size()) * 3 / 4);
    }
}

TEST(FusedBatchNormAddRelu, ResidualOfAnotherShapeIsAClearError) {
  Tensor x = zeros({2, 3, 4, 4}), r = zeros({2, 3, 4, 5});
  try {
    batch_norm_add_relu(x, r, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not have the input's shape"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace okd
