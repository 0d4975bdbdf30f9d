// The op inventory's gradcheck cases (gradcheck_cases()) run with their inputs on a CUDA device:
// case_on_device copies each input's storage there and re-makes its view, so f, the forward
// kernels and every backward run on the device in float64. Shared by test_device (emulated cuda:0,
// or the GPU when one is present) and test_tensor's CudaAutograd tests (a real GPU only).
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/gradcheck.h"

namespace okd::test {

// "op [label]": labels repeat across ops ("[3, 4] . [3, 4]" for every binary op).
inline std::string case_name(const GradcheckCase& c) {
  return std::string(op_name(c.op)) + " [" + c.label + "]";
}

// Cases that cannot run on a device, each with its reason. Empty today: the three cases whose f
// made CPU constants (cross-entropy targets and class weights, batch norm's running statistics)
// now make them on their input's device (cases::on_device_of). A new entry needs a reason that
// is not "f made a CPU tensor" (fix the case instead), and the tests check that every entry still
// names a registered case.
struct DeviceGradcheckSkip {
  std::string name;  // case_name of the skipped case
  std::string reason;
};
inline const std::vector<DeviceGradcheckSkip>& device_gradcheck_skips() {
  static const std::vector<DeviceGradcheckSkip> skips = {};
  return skips;
}

inline bool skipped_on_device(const GradcheckCase& c) {
  for (const auto& s : device_gradcheck_skips())
    if (s.name == case_name(c)) return true;
  return false;
}

// Every case but the skipped ones on device: each must pass. Returns how many ran. When
// cpu_errors_equal (cuda:0 emulated: the CPU kernels run on host memory), each input's largest
// absolute and relative errors must also equal the CPU gradcheck's bit for bit.
inline int expect_cases_pass_on(Device device, bool cpu_errors_equal) {
  int ran = 0, failed = 0;
  for (const GradcheckCase& c : gradcheck_cases()) {
    if (skipped_on_device(c)) continue;
    SCOPED_TRACE(case_name(c));
    const GradcheckCase moved = case_on_device(c, device);
    GradcheckResult r;
    try {
      r = gradcheck(moved.f, moved.inputs, moved.options);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "gradcheck threw: " << e.what();
      ++failed;
      continue;
    }
    ++ran;
    if (!r.passed) ++failed;
    EXPECT_TRUE(r.passed) << r.message;
    if (cpu_errors_equal && r.passed) {
      const GradcheckResult on_cpu = gradcheck(c.f, c.inputs, c.options);
      EXPECT_EQ(r.max_abs_error, on_cpu.max_abs_error);
      EXPECT_EQ(r.max_rel_error, on_cpu.max_rel_error);
    }
  }
  EXPECT_EQ(failed, 0) << "of " << gradcheck_cases().size() << " cases on " << device.str();
  return ran;
}

}  // namespace okd::test
