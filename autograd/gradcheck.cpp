// gradcheck: the tape's gradient of L = sum(f(x) * w) against central finite differences,
//   dL/dx_k ~ (L(x + eps e_k) - L(x - eps e_k)) / (2 eps),
// in float64, for every element k of every input that requires grad. w is a fixed random
// weighting of the output (seeded, so a failure reproduces), which makes one backward check the
// whole vector-Jacobian product J^T w rather than only the gradient of a plain sum (a plain sum
// would hide, e.g., a backward that permutes its output gradient).
//
// Inputs are copied into private storage with the *same* layout (strides, offset), so a case
// built on a transposed or strided-slice input checks the op on that non-contiguous leaf, and the
// caller's tensors are never perturbed. Like backward(), gradcheck leaves the calling thread's
// tape empty.
//
// The checked inputs may instead all live on one CUDA device (real or emulated). Then f and the
// backward run there; the analytic gradient comes to the host in one copy per input, element k is
// perturbed by fill_ on a 0-d view of the device copy at the element's storage offset, and each
// evaluation's output is copied back and weighted on the host, as on the CPU.
#include "autograd/gradcheck.h"

#include <cmath>
#include <optional>

#include "tensor/ops/copy.h"
#include "tensor/random.h"

namespace okd {

namespace {

// Turns grad mode on for the analytic pass even when the caller is under NoGradGuard.
class GradModeOn {
 public:
  GradModeOn() : prev_(grad_enabled()) { set_grad_enabled(true); }
  ~GradModeOn() { set_grad_enabled(prev_); }

 private:
  bool prev_;
};

// A copy of t on device in fresh storage with t's strides and offset (the whole storage is
// copied, so a view keeps its layout there).
Tensor copy_with_layout(const Tensor& t, Device device) {
  int64_t capacity = static_cast<int64_t>(t.impl()->storage->nbytes() / dtype_size(t.dtype()));
  Tensor whole = make_view(t, {capacity}, {1}, 0);
  Tensor base = device == t.device() ? ops::clone(whole) : ops::to(whole, device);
  return make_view(base, t.shape(), t.strides(), t.offset());
}

// Row-major multi-index of linear element k of shape.
std::vector<int64_t> unravel(int64_t k, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = k % shape[d];
    k /= shape[d];
  }
  return idx;
}

int64_t element_offset(const std::vector<int64_t>& idx, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides[d];
  return off;
}

double weighted_sum(const Tensor& out, const std::vector<double>& w) {
  std::vector<double> y = to_vector<double>(out);
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * w[i];
  return s;
}

}  // namespace

TensorList inputs_on_device(const TensorList& inputs, Device device) {
  TensorList out;
  for (const Tensor& in : inputs) {
    if (!in.defined()) {
      out.push_back(in);
      continue;
    }
    Tensor t = copy_with_layout(in, device);
    t.requires_grad_(in.requires_grad());
    out.push_back(t);
  }
  return out;
}

GradcheckCase case_on_device(const GradcheckCase& c, Device device) {
  GradcheckCase moved = c;
  moved.inputs = inputs_on_device(c.inputs, device);
  return moved;
}

GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& f,
                          const TensorList& inputs, const GradcheckOptions& options) {
  GradcheckResult result;
  result.max_abs_error.assign(inputs.size(), 0.0);
  result.max_rel_error.assign(inputs.size(), 0.0);
  auto fail = [&](std::string message) {
    result.passed = false;
    result.message = std::move(message);
    Tape::current().clear();
    return result;
  };

  // Private leaves with the callers' layouts.
  TensorList xs;
  std::vector<bool> checked(inputs.size(), false);
  std::optional<Device> device;  // of the checked inputs
  size_t first_checked = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    OKD_CHECK(in.defined(), "gradcheck: input ", i, " is undefined");
    if (!in.requires_grad()) {
      xs.push_back(in);
      continue;
    }
    OKD_CHECK(in.dtype() == DType::Float64, "gradcheck: input ", i,
              " requires grad and must be a float64 ",
              in.device().is_cpu() ? std::string("CPU") : in.device().str(), " tensor, got ",
              in.desc());
    if (!device) {
      device = in.device();
      first_checked = i;
    }
    OKD_CHECK(in.device() == *device,
              "gradcheck: inputs that require grad must share a device: input ", first_checked,
              " is on ", device->str(), ", input ", i, " on ", in.device().str(),
              " (move them with inputs_on_device)");
    for (int64_t d = 0; d < in.dim(); ++d)
      OKD_CHECK(in.shape()[d] <= 1 || in.strides()[d] != 0, "gradcheck: input ", i, " ", in.desc(),
                " has a broadcast (stride-0) dim ", d,
                "; its elements alias and cannot be perturbed "
                "one at a time");
    Tensor x = copy_with_layout(in, in.device());
    x.requires_grad_(true);
    x.set_name("input" + std::to_string(i));
    xs.push_back(x);
    checked[i] = true;
  }

  // Analytic: one backward of L = sum(f(x) * w), seeded with w.
  Tensor out;
  std::vector<double> w;
  std::vector<Tensor> analytic(inputs.size());
  try {
    GradModeOn grad_on;
    Tape::current().clear();
    out = f(xs);
    if (!out.defined() || !out.requires_grad())
      return fail(
          "gradcheck: the output of f does not require grad (no checked input reaches it, "
          "or the function did not record itself on the tape)");
    OKD_CHECK(is_floating(out.dtype()), "gradcheck: the output of f must be floating, got ",
              out.desc());
    Generator gen(0x6a09e667);
    Tensor weights = uniform(out.shape(), -1.0, 1.0, gen, DType::Float64);
    w = to_vector<double>(weights);
    backward(out, ops::to(ops::to(weights, out.dtype()), out.device()));
    for (size_t i = 0; i < inputs.size(); ++i)
      if (checked[i])
        analytic[i] = xs[i].grad().defined() ? xs[i].grad() : zeros(xs[i].shape(), DType::Float64);
  } catch (const std::exception& e) {
    return fail(str("gradcheck: the analytic pass threw: ", e.what()));
  }

  // Numeric: central differences, one element at a time, under NoGradGuard.
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!checked[i]) continue;
    const Tensor& x = xs[i];
    std::vector<double> dx = to_vector<double>(analytic[i]);
    // On the CPU element k is written through the data pointer; on a device through fill_ on a
    // 0-d view at the element's storage offset, its original value read from one host copy.
    const bool on_host = x.device().is_cpu();
    double* data = on_host ? x.data<double>() : nullptr;
    const std::vector<double> host_values = on_host ? std::vector<double>() : to_vector<double>(x);
    double worst_excess = 0;
    std::string worst_message;
    for (int64_t k = 0; k < x.numel(); ++k) {
      std::vector<int64_t> idx = unravel(k, x.shape());
      const int64_t offset = element_offset(idx, x.strides());
      Tensor element = on_host ? Tensor() : make_view(x, {}, {}, x.offset() + offset);
      const double original = on_host ? data[offset] : host_values[k];
      auto set = [&](double value) {
        if (on_host)
          data[offset] = value;
        else
          ops::fill_(element, value);
      };
      double plus = 0, minus = 0;
      try {
        set(original + options.eps);
        plus = weighted_sum(f(xs), w);
        set(original - options.eps);
        minus = weighted_sum(f(xs), w);
      } catch (const std::exception& e) {
        set(original);
        return fail(str("gradcheck: the function threw while perturbing input ", i, " element ",
                        shape_str(idx), ": ", e.what()));
      }
      set(original);
      const double numeric = (plus - minus) / (2 * options.eps);
      const double diff = std::fabs(dx[k] - numeric);
      // Relative error with atol as the floor of the denominator, so an element whose true
      // gradient is 0 reports a finite number.
      const double rel = diff / (std::fabs(numeric) + options.atol);
      const double allowed = options.atol + options.rtol * std::fabs(numeric);
      if (!(diff <= result.max_abs_error[i]))
        result.max_abs_error[i] = std::isnan(diff) ? INFINITY : diff;
      if (!(rel <= result.max_rel_error[i]))
        result.max_rel_error[i] = std::isnan(rel) ? INFINITY : rel;
      const double excess = std::isnan(diff) ? INFINITY : diff - allowed;
      if (excess > 0 && (worst_message.empty() || excess > worst_excess)) {
        worst_excess = excess;
        worst_message = str("input ", i, " ", shape_str(x.shape()), " element ", shape_str(idx),
                            ": analytic ", dx[k], " vs numeric ", numeric, " (|diff| ", diff,
                            " > atol + rtol*|numeric| = ", allowed, ")");
      }
    }
    if (!worst_message.empty() && result.passed) {
      result.passed = false;
      result.message = worst_message;
    }
  }
  return result;
}

std::vector<GradcheckCase> gradcheck_cases() {
  std::vector<GradcheckCase> cases;
  add_elementwise_cases(cases);
  add_reduce_cases(cases);
  add_matmul_cases(cases);
  add_view_cases(cases);
  add_index_cases(cases);
  add_nn_cases(cases);
  return cases;
}

}  // namespace okd
