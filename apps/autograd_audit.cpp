// autograd_audit: gradchecks every registered case of every op in the inventory (autograd/ops.def)
// and prints one row per op: cases, worst absolute and relative error, pass/FAIL. An inventory op
// with no case is a FAIL: "every op has a gradient check" is checked here, not assumed.
//
//   autograd_audit              all ops; exit status 1 on any failure
//   autograd_audit --op matmul  one op, with one line per case
//   autograd_audit --list       the inventory with the case labels, nothing run
//   autograd_audit --device cuda  every case with its inputs on the GPU (forward and backward run
//                               there, in float64; OKD_CUDA_EMULATE=1 emulates cuda:0 on the CPU)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "apps/lib/device_flag.h"
#include "autograd/gradcheck.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/runtime.h"

namespace {

struct OpSummary {
  int cases = 0;
  int failed = 0;
  double worst_abs = 0;
  double worst_rel = 0;
  std::vector<std::string> failures;
};

double worst_of(const std::vector<double>& v) {
  double w = 0;
  for (double x : v) w = std::max(w, x);
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{"Gradient-check every differentiable op of okd against central finite differences"};
  std::string only_op;
  bool list = false;
  bool verbose = false;
  app.add_option("--op", only_op, "Check only this op (a name from autograd/ops.def)");
  app.add_flag("--list", list, "List the inventory and the label of every case, run nothing");
  app.add_flag("-v,--verbose", verbose, "One line per case");
  std::string device_name = "cpu";
  app.add_option("--device", device_name,
                 "cpu | cuda: where the inputs live and the forward and backward run (the finite "
                 "differences perturb the device copies); float64 throughout")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  okd::Device device;
  try {
    device = okd::apps::device_from_flag(device_name);
  } catch (const std::exception& e) {
    std::cerr << "autograd_audit: " << e.what() << "\n";
    return 2;
  }

  std::vector<okd::GradcheckCase> cases = okd::gradcheck_cases();
  std::map<okd::Op, std::vector<const okd::GradcheckCase*>> by_op;
  for (const auto& c : cases) by_op[c.op].push_back(&c);

  std::vector<okd::Op> ops;
  for (okd::Op op : okd::all_ops())
    if (only_op.empty() || only_op == okd::op_name(op)) ops.push_back(op);
  if (ops.empty()) {
    std::cerr << "autograd_audit: no op named '" << only_op
              << "' in the inventory; --list shows them\n";
    return 2;
  }
  if (!only_op.empty()) verbose = true;

  if (list) {
    for (okd::Op op : ops) {
      std::printf("%-20s %zu case(s)\n", okd::op_name(op), by_op[op].size());
      for (const auto* c : by_op[op]) std::printf("    %s\n", c->label.c_str());
    }
    return 0;
  }

  std::printf("%s\n", okd::runtime_summary().c_str());
  if (device.is_cuda()) std::printf("device: %s\n", okd::cuda::device_summary().c_str());
  const auto start = std::chrono::steady_clock::now();
  std::printf("%-20s %6s %12s %12s  %s\n", "op", "cases", "max abs err", "max rel err", "result");
  int failed_ops = 0, total_cases = 0;
  std::vector<std::string> all_failures;
  for (okd::Op op : ops) {
    OpSummary s;
    for (const auto* c : by_op[op]) {
      ++s.cases;
      okd::GradcheckResult r;
      try {
        if (device.is_cuda()) {
          const okd::GradcheckCase moved = okd::case_on_device(*c, device);
          r = okd::gradcheck(moved.f, moved.inputs, moved.options);
        } else {
          r = okd::gradcheck(c->f, c->inputs, c->options);
        }
      } catch (const std::exception& e) {
        r.passed = false;
        r.message = e.what();
      }
      double abs_err = worst_of(r.max_abs_error), rel_err = worst_of(r.max_rel_error);
      s.worst_abs = std::max(s.worst_abs, abs_err);
      s.worst_rel = std::max(s.worst_rel, rel_err);
      if (!r.passed) {
        ++s.failed;
        s.failures.push_back(std::string(okd::op_name(op)) + " [" + c->label + "]: " + r.message);
      }
      if (verbose)
        std::printf("  %-50s %12.3e %12.3e  %s\n", c->label.c_str(), abs_err, rel_err,
                    r.passed ? "pass" : "FAIL");
    }
    total_cases += s.cases;
    std::string result =
        s.cases == 0 ? "FAIL (no gradcheck case)"
        : s.failed   ? "FAIL (" + std::to_string(s.failed) + " of " + std::to_string(s.cases) + ")"
                     : "pass";
    if (s.cases == 0)
      s.failures.push_back(std::string(okd::op_name(op)) + ": no gradcheck case registered");
    if (s.cases == 0 || s.failed) ++failed_ops;
    std::printf("%-20s %6d %12.3e %12.3e  %s\n", okd::op_name(op), s.cases, s.worst_abs,
                s.worst_rel, result.c_str());
    all_failures.insert(all_failures.end(), s.failures.begin(), s.failures.end());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!all_failures.empty()) {
    std::printf("\nfailures:\n");
    for (const auto& f : all_failures) std::printf("  %s\n", f.c_str());
  }
  std::printf("\n%zu ops, %d cases on %s, ", ops.size(), total_cases, device.str().c_str());
  if (failed_ops == 0) {
    std::printf("all passed (%.1f s)\n", seconds);
    return 0;
  }
  std::printf("%d op(s) FAILED (%.1f s)\n", failed_ops, seconds);
  return 1;
}
