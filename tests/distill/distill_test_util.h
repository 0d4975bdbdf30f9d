// Helpers shared by the distill test suites: tiny build contexts and batches, gradient sums and
// parameter selection by name prefix.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "distill/method.h"
#include "nn/module.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace okd::distill::test {

inline BuildContext tiny_context(const std::string& arch = "resnet20", int64_t classes = 10) {
  BuildContext ctx;
  ctx.arch = arch;
  ctx.num_classes = classes;
  ctx.seed = 7;
  return ctx;
}

// A batch of n random images of size s x s (views independent draws), labels i % classes.
inline Batch tiny_batch(int n, int s, int views = 1, uint64_t seed = 1, int classes = 4) {
  Generator gen(seed);
  Batch b;
  for (int v = 0; v < views; ++v) b.views.push_back(randn({n, 3, s, s}, gen));
  std::vector<int64_t> y(n);
  for (int i = 0; i < n; ++i) y[i] = i % classes;
  b.labels = from_vector<int64_t>(y, {n});
  return b;
}

inline double abs_sum(const Tensor& t) {
  if (!t.defined()) return 0;
  double s = 0;
  for (double v : to_vector<double>(to(t, DType::Float64))) s += std::fabs(v);
  return s;
}
inline double grad_sum(const std::vector<Tensor>& params) {
  double s = 0;
  for (const auto& p : params) s += abs_sum(p.grad());
  return s;
}
inline void clear_grads(const std::vector<Tensor>& params) {
  for (auto p : params) p.set_grad(Tensor());
}
inline std::vector<Tensor> params_with_prefix(const nn::Module& m, const std::string& prefix) {
  std::vector<Tensor> v;
  for (const auto& [n, p] : m.named_parameters())
    if (n.rfind(prefix, 0) == 0) v.push_back(p);
  return v;
}

}  // namespace okd::distill::test
