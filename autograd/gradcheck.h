// gradcheck: compares the tape's gradients with central finite differences in float64, and the
// registry of gradcheck cases that covers every op of the inventory (ops.def).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/tape.h"

namespace okd {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // pass when |analytic - numeric| <= atol + rtol * |numeric| everywhere
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool passed = true;
  std::vector<double> max_abs_error;  // per input (0 for inputs that do not require grad)
  std::vector<double> max_rel_error;
  std::string message;  // on failure: which input, which element, both values
};

// f maps inputs (float64 tensors; those with requires_grad are checked) to an output of any
// shape. The output is reduced against a fixed random weighting w: L = sum(f(x) * w), so every
// output element's gradient is exercised. Each input element is perturbed by +-eps. The checked
// inputs are CPU tensors or all on one CUDA device (real or emulated); on a device, f and the
// backward run there; the inputs' values, the gradients and f's outputs are copied to the host.
GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& f,
                          const TensorList& inputs, const GradcheckOptions& options = {});

// One gradcheck case of an inventory op: label says which variant (broadcast, non-contiguous ...).
struct GradcheckCase {
  Op op;
  std::string label;
  std::function<Tensor(const TensorList&)> f;
  TensorList inputs;  // float64; those that should be checked have requires_grad set
  GradcheckOptions options{};
};

// inputs on device, each with the same shape, strides and offset (its whole storage is copied, so
// a transposed or strided leaf stays non-contiguous there) and the same requires_grad.
TensorList inputs_on_device(const TensorList& inputs, Device device);
// c with its inputs moved by inputs_on_device; f is unchanged and must create any tensor it makes
// itself (a target, an index, a constant) on its inputs' device.
GradcheckCase case_on_device(const GradcheckCase& c, Device device);

// Every registered case. Each op family contributes through its add_*_cases function below,
// defined next to its differentiable functions (autograd/functions/<family>_cases.cpp).
std::vector<GradcheckCase> gradcheck_cases();

void add_elementwise_cases(std::vector<GradcheckCase>& cases);
void add_reduce_cases(std::vector<GradcheckCase>& cases);
void add_matmul_cases(std::vector<GradcheckCase>& cases);
void add_view_cases(std::vector<GradcheckCase>& cases);
void add_index_cases(std::vector<GradcheckCase>& cases);
void add_nn_cases(std::vector<GradcheckCase>& cases);  // conv, norm, pool, losses (issue 3)

}  // namespace okd
