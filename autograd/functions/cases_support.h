// Helpers for writing gradcheck cases (autograd/functions/*_cases.cpp): seeded float64 inputs,
// kept away from an op's kinks, and non-contiguous leaves (a transposed view, a strided slice) so
// every op is also checked on layouts that are not plain row-major.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"

namespace okd::cases {

// Uniform values in [lo, hi) of shape, seeded; any value within margin of a point in avoid is
// pushed to that point +- 2 margin (keeps inputs away from kinks: 0 for abs/relu, clamp bounds).
inline std::vector<double> values(const Shape& shape, double lo, double hi, uint64_t seed,
                                  const std::vector<double>& avoid = {}, double margin = 0.05) {
  Generator gen(seed);
  std::vector<double> v = to_vector<double>(uniform(shape, lo, hi, gen, DType::Float64));
  for (double& x : v)
    for (double p : avoid)
      if (std::fabs(x - p) < margin) x = x < p ? p - 2 * margin : p + 2 * margin;
  return v;
}

// A contiguous float64 leaf that requires grad.
inline Tensor leaf(const Shape& shape, double lo, double hi, uint64_t seed,
                   const std::vector<double>& avoid = {}) {
  Tensor t = from_vector(values(shape, lo, hi, seed, avoid), shape);
  t.requires_grad_(true);
  return t;
}

// A leaf of shape [..., a, b] that is the transpose of a contiguous [..., b, a] tensor:
// non-contiguous, strides swapped in the last two dims.
inline Tensor transposed_leaf(const Shape& shape, double lo, double hi, uint64_t seed,
                              const std::vector<double>& avoid = {}) {
  Shape base_shape = shape;
  std::swap(base_shape[base_shape.size() - 1], base_shape[base_shape.size() - 2]);
  Tensor base = from_vector(values(base_shape, lo, hi, seed, avoid), base_shape);
  Tensor t = ops::transpose(base, -1, -2);
  t.requires_grad_(true);
  return t;
}

// A leaf of shape that is every other element of a contiguous tensor twice as long in the last
// dim (t = base[..., ::2]): non-contiguous with inner stride 2.
inline Tensor strided_leaf(const Shape& shape, double lo, double hi, uint64_t seed,
                           const std::vector<double>& avoid = {}) {
  Shape base_shape = shape;
  base_shape.back() *= 2;
  Tensor base = from_vector(values(base_shape, lo, hi, seed, avoid), base_shape);
  Tensor t = ops::slice(base, -1, 0, base_shape.back(), 2);
  t.requires_grad_(true);
  return t;
}

// A float64 tensor with exactly these values (no grad unless asked).
inline Tensor exact(const std::vector<double>& v, const Shape& shape, bool requires_grad = true) {
  Tensor t = from_vector(v, shape);
  if (requires_grad) t.requires_grad_(true);
  return t;
}

inline Tensor index(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector(v, shape);
}

// t moved to input's device: a tensor that f makes itself (a target, running statistics) must
// live where the inputs do when the case runs on a device (case_on_device). t itself on the CPU.
inline Tensor on_device_of(const Tensor& input, const Tensor& t) {
  return ops::to(t, input.device());
}

inline Tensor no_grad(Tensor t) {
  t.requires_grad_(false);
  return t;
}

inline void add(std::vector<GradcheckCase>& cases, Op op, std::string label,
                std::function<Tensor(const TensorList&)> f, TensorList inputs,
                GradcheckOptions options = {}) {
  cases.push_back(GradcheckCase{op, std::move(label), std::move(f), std::move(inputs), options});
}

}  // namespace okd::cases
