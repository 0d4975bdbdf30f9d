// Fused ops against the compositions they replace: batch_norm_relu (training) must give the same
// output, running statistics and gradients as relu(batch_norm(x)), in float32 and float64; in
// eval mode it is the composition itself.
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

}  // namespace
}  // namespace okd
