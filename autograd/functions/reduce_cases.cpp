// Gradcheck cases of the reductions: over all dims, one dim, several dims, negative dims, with
// and without keepdim, on contiguous, transposed and strided inputs. Random inputs have distinct
// values, so max/min/amax/amin have a unique winner; the amax/amin tie cases use a 2-way tie,
// where the central difference is exactly 1/2, what splitting the gradient evenly gives.
#include "autograd/functions/cases_support.h"

namespace okd {

namespace {
using namespace cases;
using Reduce = std::function<Tensor(const Tensor&)>;

// The same reduction over several input layouts.
void add_layouts(std::vector<GradcheckCase>& out, Op op, const std::string& what, const Reduce& fn,
                 double lo = -2, double hi = 2, const std::vector<double>& avoid = {}) {
  auto f = [fn](const TensorList& x) { return fn(x[0]); };
  add(out, op, what + " on [3, 4, 5]", f, {leaf({3, 4, 5}, lo, hi, 61, avoid)});
  add(out, op, what + " on transposed [3, 4, 5]", f,
      {transposed_leaf({3, 4, 5}, lo, hi, 62, avoid)});
  add(out, op, what + " on strided [3, 4, 5]", f, {strided_leaf({3, 4, 5}, lo, hi, 63, avoid)});
}
}  // namespace

void add_reduce_cases(std::vector<GradcheckCase>& out) {
  using V = std::vector<int64_t>;
  add_layouts(out, Op::sum, "all", [](const Tensor& a) { return sum(a); });
  add_layouts(out, Op::sum, "dim 1", [](const Tensor& a) { return sum(a, V{1}); });
  add_layouts(out, Op::sum, "dims {0, 2} keepdim", [](const Tensor& a) {
    return sum(a, V{0, 2}, true);
  });
  add_layouts(out, Op::sum, "dim -1", [](const Tensor& a) { return sum(a, V{-1}); });

  add_layouts(out, Op::mean, "all", [](const Tensor& a) { return mean(a); });
  add_layouts(out, Op::mean, "dims {-1, 0}", [](const Tensor& a) { return mean(a, V{-1, 0}); });
  add_layouts(out, Op::mean, "dim 1 keepdim", [](const Tensor& a) { return mean(a, V{1}, true); });

  add_layouts(out, Op::var, "all unbiased", [](const Tensor& a) { return var(a); });
  add_layouts(out, Op::var, "dim 2 biased", [](const Tensor& a) { return var(a, V{2}, false); });
  add_layouts(out, Op::var, "dims {0, 1} unbiased keepdim", [](const Tensor& a) {
    return var(a, V{0, 1}, true, true);
  });

  add_layouts(out, Op::std, "all unbiased", [](const Tensor& a) { return okd::std(a); });
  add_layouts(out, Op::std, "dim 1 biased",
              [](const Tensor& a) { return okd::std(a, V{1}, false); });
  add_layouts(out, Op::std, "dim -1 unbiased keepdim",
              [](const Tensor& a) { return okd::std(a, V{-1}, true, true); });

  add_layouts(out, Op::amax, "all", [](const Tensor& a) { return amax(a); });
  add_layouts(out, Op::amax, "dim 1", [](const Tensor& a) { return amax(a, V{1}); });
  add_layouts(out, Op::amax, "dims {0, 2} keepdim", [](const Tensor& a) {
    return amax(a, V{0, 2}, true);
  });
  add_layouts(out, Op::amin, "all", [](const Tensor& a) { return amin(a); });
  add_layouts(out, Op::amin, "dim 0", [](const Tensor& a) { return amin(a, V{0}); });
  add_layouts(out, Op::amin, "dim -1 keepdim",
              [](const Tensor& a) { return amin(a, V{-1}, true); });
  const std::vector<double> tie = {1.0, 3.0, 3.0, -2.0, -4.0, 0.5, 2.0, -4.0};
  add(out, Op::amax, "2-way tie in row 0 split evenly",
      [](const TensorList& x) { return amax(x[0], V{1}); }, {exact(tie, {2, 4})});
  add(out, Op::amin, "2-way tie in row 1 split evenly",
      [](const TensorList& x) { return amin(x[0], V{1}); }, {exact(tie, {2, 4})});

  add_layouts(out, Op::max_dim, "dim 1", [](const Tensor& a) { return max(a, 1).first; });
  add_layouts(out, Op::max_dim, "dim -1 keepdim",
              [](const Tensor& a) { return max(a, -1, true).first; });
  add_layouts(out, Op::max_dim, "dim 0", [](const Tensor& a) { return max(a, 0).first; });
  add_layouts(out, Op::min_dim, "dim 1", [](const Tensor& a) { return min(a, 1).first; });
  add_layouts(out, Op::min_dim, "dim 2 keepdim",
              [](const Tensor& a) { return min(a, 2, true).first; });
  add_layouts(out, Op::min_dim, "dim 0", [](const Tensor& a) { return min(a, 0).first; });

  add_layouts(out, Op::logsumexp, "dim 1", [](const Tensor& a) { return logsumexp(a, V{1}); });
  add_layouts(out, Op::logsumexp, "dims {0, 2} keepdim", [](const Tensor& a) {
    return logsumexp(a, V{0, 2}, true);
  });
  add_layouts(
      out, Op::logsumexp, "dim -1, large values",
      [](const Tensor& a) { return logsumexp(a, V{-1}); }, 50, 60);

  add_layouts(out, Op::norm, "p=2 all", [](const Tensor& a) { return norm(a); });
  add_layouts(out, Op::norm, "p=2 dim 1", [](const Tensor& a) { return norm(a, 2.0, V{1}); });
  add_layouts(out, Op::norm, "p=1 dim -1 keepdim",
              [](const Tensor& a) { return norm(a, 1.0, V{-1}, true); }, -2, 2, {0.0});
  add_layouts(out, Op::norm, "p=3 dims {0, 1}",
              [](const Tensor& a) {
                return norm(a, 3.0, V{0, 1});
              },
              -2, 2, {0.0});
}

}  // namespace okd
