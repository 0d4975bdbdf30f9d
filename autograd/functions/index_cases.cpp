// Gradcheck cases of joining and indexing: cat and stack (several dims, mixed layouts, an input
// that needs no grad), index_select and gather with repeated indices (their gradients must add
// up), scatter_add into both its arguments, topk and kthvalue on inputs with distinct values.
#include "autograd/functions/cases_support.h"

namespace okd {

void add_index_cases(std::vector<GradcheckCase>& out) {
  using namespace cases;
  add(out, Op::cat, "dim 0 of [2, 3], [1, 3], [3, 3]",
      [](const TensorList& x) { return cat(x, 0); },
      {leaf({2, 3}, -1, 1, 201), leaf({1, 3}, -1, 1, 202), leaf({3, 3}, -1, 1, 203)});
  add(out, Op::cat, "dim -1 transposed + strided + constant",
      [](const TensorList& x) { return exp(cat(x, -1)); },
      {transposed_leaf({3, 2}, -1, 1, 204), strided_leaf({3, 4}, -1, 1, 205),
       no_grad(leaf({3, 1}, -1, 1, 206))});
  add(out, Op::cat, "one input used twice",
      [](const TensorList& x) {
        return cat({x[0], x[1], x[0]}, 1);
      },
      {leaf({2, 2}, -1, 1, 207), leaf({2, 3}, -1, 1, 208)});

  add(out, Op::stack, "dim 0 of three [2, 3]", [](const TensorList& x) { return stack(x, 0); },
      {leaf({2, 3}, -1, 1, 211), transposed_leaf({2, 3}, -1, 1, 212),
       strided_leaf({2, 3}, -1, 1, 213)});
  add(out, Op::stack, "dim -1 of two [3, 2]", [](const TensorList& x) { return exp(stack(x, -1)); },
      {leaf({3, 2}, -1, 1, 214), no_grad(leaf({3, 2}, -1, 1, 215))});

  add(out, Op::index_select, "dim 0 repeated rows",
      [](const TensorList& x) { return exp(index_select(x[0], 0, x[1])); },
      {leaf({4, 3}, -1, 1, 221), index({3, 0, 3, 1, 3}, {5})});
  add(out, Op::index_select, "dim 1 of transposed [2, 3, 4]",
      [](const TensorList& x) { return index_select(x[0], 1, x[1]); },
      {transposed_leaf({2, 3, 4}, -1, 1, 222), index({2, 2, 0}, {3})});

  add(out, Op::gather, "dim 1 repeated",
      [](const TensorList& x) { return exp(gather(x[0], 1, x[1])); },
      {leaf({3, 4}, -1, 1, 231), index({0, 0, 3, 1, 2, 1, 3, 3, 3}, {3, 3})});
  add(out, Op::gather, "dim 0 of strided [3, 4], index [2, 4]",
      [](const TensorList& x) { return gather(x[0], 0, x[1]); },
      {strided_leaf({3, 4}, -1, 1, 232), index({2, 0, 1, 2, 2, 2, 0, 0}, {2, 4})});

  add(out, Op::scatter_add, "dim 0 into [3, 4] from [2, 4]",
      [](const TensorList& x) { return exp(scatter_add(x[0], 0, x[1], x[2])); },
      {leaf({3, 4}, -1, 1, 241), index({2, 0, 1, 2, 2, 2, 0, 0}, {2, 4}),
       leaf({2, 4}, -1, 1, 242)});
  add(out, Op::scatter_add, "dim 1 transposed target, only src requires grad",
      [](const TensorList& x) { return scatter_add(x[0], 1, x[1], x[2]); },
      {no_grad(transposed_leaf({3, 4}, -1, 1, 243)), index({0, 0, 3, 1, 1, 2}, {3, 2}),
       leaf({3, 2}, -1, 1, 244)});

  add(out, Op::topk, "k=2 largest along -1",
      [](const TensorList& x) { return topk(x[0], 2).first; }, {leaf({3, 5}, -2, 2, 251)});
  add(out, Op::topk, "k=3 smallest along 0 of transposed",
      [](const TensorList& x) { return exp(topk(x[0], 3, 0, false).first); },
      {transposed_leaf({4, 3}, -2, 2, 252)});
  add(out, Op::topk, "k=1 of strided [2, 3, 4] dim 1",
      [](const TensorList& x) { return topk(x[0], 1, 1).first; },
      {strided_leaf({2, 3, 4}, -2, 2, 253)});

  add(out, Op::kthvalue, "k=2 along -1",
      [](const TensorList& x) { return kthvalue(x[0], 2).first; }, {leaf({3, 5}, -2, 2, 261)});
  add(out, Op::kthvalue, "k=3 dim 0 keepdim of transposed",
      [](const TensorList& x) { return exp(kthvalue(x[0], 3, 0, true).first); },
      {transposed_leaf({4, 3}, -2, 2, 262)});
}

}  // namespace okd
