// Gradcheck cases of the views and copies. Each view is checked on contiguous and non-contiguous
// inputs; the output is passed through exp() in some cases so that the weighting sees a
// nonlinear function of the view (a wrong element mapping then cannot cancel out).
#include "autograd/functions/cases_support.h"

namespace okd {

void add_view_cases(std::vector<GradcheckCase>& out) {
  using namespace cases;
  add(out, Op::reshape, "[3, 4] -> [2, 6]",
      [](const TensorList& x) {
        return reshape(x[0], {2, 6});
      },
      {leaf({3, 4}, -1, 1, 101)});
  add(out, Op::reshape, "transposed [3, 4] -> [-1] (copies)",
      [](const TensorList& x) { return reshape(x[0], {-1}); },
      {transposed_leaf({3, 4}, -1, 1, 102)});
  add(out, Op::reshape, "view [2, 3, 4] -> [6, 4]",
      [](const TensorList& x) {
        return exp(view(x[0], {6, 4}));
      },
      {leaf({2, 3, 4}, -1, 1, 103)});
  add(out, Op::reshape, "flatten(1) of transposed [2, 3, 4]",
      [](const TensorList& x) { return flatten(x[0], 1); },
      {transposed_leaf({2, 3, 4}, -1, 1, 104)});
  add(out, Op::reshape, "flatten() of strided [2, 3]",
      [](const TensorList& x) { return flatten(x[0]); }, {strided_leaf({2, 3}, -1, 1, 105)});

  add(out, Op::transpose, "[3, 4] (0, 1)",
      [](const TensorList& x) { return exp(transpose(x[0], 0, 1)); }, {leaf({3, 4}, -1, 1, 111)});
  add(out, Op::transpose, "[2, 3, 4] (0, -1) of transposed",
      [](const TensorList& x) { return transpose(x[0], 0, -1); },
      {transposed_leaf({2, 3, 4}, -1, 1, 112)});

  add(out, Op::permute, "[2, 3, 4] (2, 0, 1)",
      [](const TensorList& x) {
        return exp(permute(x[0], {2, 0, 1}));
      },
      {leaf({2, 3, 4}, -1, 1, 113)});
  add(out, Op::permute, "strided [2, 3, 4] (1, 2, 0)",
      [](const TensorList& x) {
        return permute(x[0], {1, 2, 0});
      },
      {strided_leaf({2, 3, 4}, -1, 1, 114)});

  add(out, Op::slice, "[6, 3] [1:5:2] dim 0",
      [](const TensorList& x) { return exp(slice(x[0], 0, 1, 5, 2)); }, {leaf({6, 3}, -1, 1, 121)});
  add(out, Op::slice, "transposed [4, 5] [-3:] dim 1",
      [](const TensorList& x) { return slice(x[0], 1, -3, 5); },
      {transposed_leaf({4, 5}, -1, 1, 122)});
  add(out, Op::slice, "narrow(1, 1, 2) of strided [3, 4]",
      [](const TensorList& x) { return exp(narrow(x[0], 1, 1, 2)); },
      {strided_leaf({3, 4}, -1, 1, 123)});
  add(out, Op::slice, "split(2, dim 1) pieces recombined",
      [](const TensorList& x) {
        std::vector<Tensor> p = split(x[0], 2, 1);  // [3,2], [3,2], [3,1]
        return add(mul(p[0], p[1]), exp(p[2]));
      },
      {leaf({3, 5}, -1, 1, 124)});
  add(out, Op::slice, "chunk(3, dim 0) pieces recombined",
      [](const TensorList& x) {
        std::vector<Tensor> p = chunk(x[0], 3, 0);  // [2,4], [2,4], [2,4]
        return sub(mul(p[0], p[2]), p[1]);
      },
      {transposed_leaf({6, 4}, -1, 1, 125)});

  add(out, Op::select, "[3, 4] row 1", [](const TensorList& x) { return exp(select(x[0], 0, 1)); },
      {leaf({3, 4}, -1, 1, 131)});
  add(out, Op::select, "transposed [2, 3, 4] dim -1 index -1",
      [](const TensorList& x) { return select(x[0], -1, -1); },
      {transposed_leaf({2, 3, 4}, -1, 1, 132)});

  add(out, Op::expand, "[3, 1] -> [2, 3, 4]",
      [](const TensorList& x) {
        return exp(expand(x[0], {2, 3, 4}));
      },
      {leaf({3, 1}, -1, 1, 141)});
  add(out, Op::expand, "strided [1, 3] -> [4, -1]",
      [](const TensorList& x) {
        return expand(x[0], {4, -1});
      },
      {strided_leaf({1, 3}, -1, 1, 142)});

  add(out, Op::squeeze, "all of [3, 1, 4, 1]",
      [](const TensorList& x) { return exp(squeeze(x[0])); }, {leaf({3, 1, 4, 1}, -1, 1, 151)});
  add(out, Op::squeeze, "dim 1 of transposed [2, 1, 3]",
      [](const TensorList& x) { return squeeze(x[0], 1); },
      {transposed_leaf({2, 1, 3}, -1, 1, 152)});
  add(out, Op::squeeze, "dim 0 of [3, 4] (size 3: no-op)",
      [](const TensorList& x) { return squeeze(x[0], 0); }, {leaf({3, 4}, -1, 1, 153)});
  add(out, Op::unsqueeze, "[3, 4] dim 1",
      [](const TensorList& x) { return exp(unsqueeze(x[0], 1)); }, {leaf({3, 4}, -1, 1, 154)});
  add(out, Op::unsqueeze, "strided [3, 4] dim -1",
      [](const TensorList& x) { return unsqueeze(x[0], -1); }, {strided_leaf({3, 4}, -1, 1, 155)});

  add(out, Op::contiguous, "transposed [3, 4]",
      [](const TensorList& x) { return exp(contiguous(x[0])); },
      {transposed_leaf({3, 4}, -1, 1, 161)});
  add(out, Op::contiguous, "already contiguous [3, 4]",
      [](const TensorList& x) { return contiguous(x[0]); }, {leaf({3, 4}, -1, 1, 162)});
  add(out, Op::clone, "strided [3, 4]", [](const TensorList& x) { return exp(clone(x[0])); },
      {strided_leaf({3, 4}, -1, 1, 163)});
  add(out, Op::clone, "[5]", [](const TensorList& x) { return clone(x[0]); },
      {leaf({5}, -1, 1, 164)});

  // Through float32 and back: the finite difference needs a step well above float32's rounding.
  GradcheckOptions through_float32;
  through_float32.eps = 1e-2;
  through_float32.atol = 1e-4;
  add(
      out, Op::to_dtype, "float64 -> float32 -> float64",
      [](const TensorList& x) { return to(to(x[0], DType::Float32), DType::Float64); },
      {leaf({3, 4}, -1, 1, 171)}, through_float32);
  add(out, Op::to_dtype, "float64 -> float64 (no copy)",
      [](const TensorList& x) { return exp(to(x[0], DType::Float64)); },
      {transposed_leaf({3, 4}, -1, 1, 172)});
}

}  // namespace okd
