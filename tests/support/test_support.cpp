// Implementation of the shared test helpers.
#include "tests/support/test_support.h"

#include <cmath>

#include "tensor/npy.h"
#include "tensor/ops/copy.h"

namespace okd::test {

std::string data_path(const std::string& relative) {
  return std::string(OKD_TEST_DATA_DIR) + "/" + relative;
}

Tensor load_ref(const std::string& relative) { return load_npy(data_path(relative + ".npy")); }

::testing::AssertionResult allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure()
           << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  std::vector<double> va = to_vector<double>(a), vb = to_vector<double>(b);
  double worst = 0;
  int64_t worst_i = -1;
  for (size_t i = 0; i < va.size(); ++i) {
    double diff = std::fabs(va[i] - vb[i]);
    bool nan_mismatch = std::isnan(va[i]) != std::isnan(vb[i]);
    if (std::isnan(va[i]) && std::isnan(vb[i])) continue;
    if (va[i] == vb[i]) continue;  // equal infinities
    double excess = diff - (atol + rtol * std::fabs(vb[i]));
    if (nan_mismatch || excess > 0) {
      if (nan_mismatch || std::isnan(excess) || excess > worst || worst_i < 0) {
        worst = nan_mismatch ? INFINITY : excess;
        worst_i = static_cast<int64_t>(i);
      }
    }
  }
  if (worst_i < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "not close (rtol " << rtol << ", atol " << atol << ") at flat index " << worst_i
         << ": got " << va[worst_i] << ", expected " << vb[worst_i] << " (shape "
         << shape_str(a.shape()) << ")";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace okd::test
