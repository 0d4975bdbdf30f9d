// Gradcheck cases of matmul: plain 2-D, transposed (non-contiguous) operands, batched, batch
// broadcasting (a missing batch dim and a size-1 batch dim), 1-D operands on either side, and
// only one operand requiring grad.
#include "autograd/functions/cases_support.h"

namespace okd {

void add_matmul_cases(std::vector<GradcheckCase>& out) {
  using namespace cases;
  auto f = [](const TensorList& x) { return matmul(x[0], x[1]); };
  add(out, Op::matmul, "[3, 4] x [4, 5]", f, {leaf({3, 4}, -1, 1, 71), leaf({4, 5}, -1, 1, 72)});
  add(out, Op::matmul, "transposed [3, 4] x transposed [4, 2]", f,
      {transposed_leaf({3, 4}, -1, 1, 73), transposed_leaf({4, 2}, -1, 1, 74)});
  add(out, Op::matmul, "strided [3, 4] x [4, 2]", f,
      {strided_leaf({3, 4}, -1, 1, 75), leaf({4, 2}, -1, 1, 76)});
  add(out, Op::matmul, "batched [2, 3, 4] x [2, 4, 2]", f,
      {leaf({2, 3, 4}, -1, 1, 77), leaf({2, 4, 2}, -1, 1, 78)});
  add(out, Op::matmul, "batch broadcast [2, 3, 4] x [4, 2]", f,
      {leaf({2, 3, 4}, -1, 1, 79), leaf({4, 2}, -1, 1, 80)});
  add(out, Op::matmul, "batch broadcast [1, 3, 4] x [2, 4, 2]", f,
      {leaf({1, 3, 4}, -1, 1, 81), leaf({2, 4, 2}, -1, 1, 82)});
  add(out, Op::matmul, "batched transposed [2, 3, 4] x [2, 4, 3]", f,
      {transposed_leaf({2, 3, 4}, -1, 1, 83), leaf({2, 4, 3}, -1, 1, 84)});
  add(out, Op::matmul, "1-D [4] x [4, 3]", f, {leaf({4}, -1, 1, 85), leaf({4, 3}, -1, 1, 86)});
  add(out, Op::matmul, "[3, 4] x 1-D [4]", f, {leaf({3, 4}, -1, 1, 87), leaf({4}, -1, 1, 88)});
  add(out, Op::matmul, "dot 1-D [5] x [5]", f, {leaf({5}, -1, 1, 89), leaf({5}, -1, 1, 90)});
  add(out, Op::matmul, "batched [2, 3, 4] x 1-D [4]", f,
      {leaf({2, 3, 4}, -1, 1, 91), leaf({4}, -1, 1, 92)});
  add(out, Op::matmul, "only rhs requires grad", f,
      {no_grad(leaf({3, 4}, -1, 1, 93)), leaf({4, 5}, -1, 1, 94)});
}

}  // namespace okd
