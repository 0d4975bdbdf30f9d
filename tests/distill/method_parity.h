// Deterministic inputs shared with tests/reference/method_parity/common.py: every parameter of a
// method's networks and every image of a batch is a function of its name alone (FNV-1a of the
// name seeds a SplitMix64 stream), so okd and an independent PyTorch implementation of a method
// start one training step from the same numbers without shipping weights.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "autograd/tape.h"
#include "distill/method.h"
#include "nn/module.h"
#include "tensor/ops/copy.h"
#include "tensor/tensor.h"

namespace okd::distill::parity {

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// n values in [-1, 1): SplitMix64 seeded with fnv1a64(key), the top 53 bits of each draw as u in
// [0, 1), returned as 2u - 1.
inline std::vector<double> det_uniform(const std::string& key, int64_t n) {
  uint64_t state = fnv1a64(key);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    x = 2.0 * (static_cast<double>(z >> 11) * 0x1.0p-53) - 1.0;
  }
  return v;
}

// The value of the parameter called key with this shape:
//   two or more dimensions: u * sqrt(3 / fan_in), fan_in = numel / shape[0] (variance 1/fan_in);
//   one dimension named *weight (batch-norm scales): 1 + 0.1 u;  anything else: 0.1 u.
inline std::vector<double> det_param_values(const std::string& key, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> v = det_uniform(key, n);
  if (shape.size() >= 2) {
    const double scale = std::sqrt(3.0 / static_cast<double>(n / shape[0]));
    for (auto& x : v) x *= scale;
  } else if (key.ends_with("weight")) {
    for (auto& x : v) x = 1.0 + 0.1 * x;
  } else {
    for (auto& x : v) x *= 0.1;
  }
  return v;
}

// t = values rounded to float32 (whatever t's dtype: both sides start from float32 numbers).
inline void set_rounded(const Tensor& t, std::vector<double> values) {
  for (auto& x : values) x = static_cast<double>(static_cast<float>(x));
  ops::copy_(t, from_vector<double>(values, t.shape()));  // converts to t's dtype
}

// Overwrites every parameter of every network (key "<network>/<parameter name>"; a tensor shared
// by several networks takes the first name met, networks() order) with det_param_values,
// rounded to float32 first whatever the parameter's dtype. So are the floating-point buffers
// other than batch norm's running statistics (MCL's memory banks, drawn at random when built);
// running_mean, running_var and integer buffers keep their built values.
inline bool det_buffer(const std::string& name, const Tensor& t) {
  return (t.dtype() == DType::Float32 || t.dtype() == DType::Float64) &&
         !name.ends_with("running_mean") && !name.ends_with("running_var");
}

inline void det_init(const Method& m) {
  NoGradGuard ng;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [net_name, net] : m.networks()) {
    nn::NamedTensors targets = net->named_parameters();
    for (const auto& [bname, b] : net->named_buffers())
      if (det_buffer(bname, b)) targets.emplace_back(bname, b);
    for (const auto& [pname, p] : targets) {
      if (seen.insert(p.impl()).second)
        set_rounded(p, det_param_values(net_name + "/" + pname, p.shape()));
    }
  }
}

// A frozen teacher's state for the offline methods (kd, at), written to a file the method loads:
// every parameter from "teacher/<name>" as det_init does, running_mean 0.1 u and running_var
// 1 + 0.5 u from the same keys (an eval-mode teacher uses them), float32.
inline void det_teacher(const nn::Module& net) {
  NoGradGuard ng;
  for (const auto& [name, p] : net.named_parameters())
    set_rounded(p, det_param_values("teacher/" + name, p.shape()));
  for (const auto& [name, b] : net.named_buffers()) {
    const bool mean = name.ends_with("running_mean");
    if (!mean && !name.ends_with("running_var")) continue;
    std::vector<double> v = det_uniform("teacher/" + name, b.numel());
    for (auto& x : v) x = mean ? 0.1 * x : 1.0 + 0.5 * x;
    set_rounded(b, std::move(v));
  }
}

// views[v] = float32-rounded det_uniform("batch/view<v>") as [n, 3, size, size]; labels i %
// classes.
inline Batch det_batch(int64_t n, int64_t size, int views, int64_t classes, DType dtype) {
  Batch b;
  for (int v = 0; v < views; ++v) {
    std::vector<double> px = det_uniform("batch/view" + std::to_string(v), n * 3 * size * size);
    for (auto& x : px) x = static_cast<double>(static_cast<float>(x));
    b.views.push_back(ops::to(from_vector<double>(px, {n, 3, size, size}), dtype));
  }
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = i % classes;
  b.labels = from_vector<int64_t>(y, {n});
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  b.indices = from_vector<int64_t>(idx, {n});
  return b;
}

}  // namespace okd::distill::parity
