// Gradcheck cases of the elementwise ops: every unary op over a contiguous, a transposed and a
// strided input (and a 0-d one), every binary op with equal shapes, broadcasting both ways, a
// non-contiguous operand and only one operand requiring grad. Inputs avoid kinks: abs/relu away
// from 0, clamp away from its bounds, log/sqrt/rsqrt/pow on positive values, maximum/minimum
// with distinct values except in the tie cases (where the central difference is exactly 1/2,
// which is what the half/half tie rule gives).
#include "autograd/functions/cases_support.h"

namespace okd {

namespace {
using namespace cases;

using Unary = std::function<Tensor(const Tensor&)>;
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;

// Four layouts of one unary op with inputs in [lo, hi) avoiding the points in avoid.
void add_unary(std::vector<GradcheckCase>& out, Op op, const std::string& what, const Unary& fn,
               double lo, double hi, const std::vector<double>& avoid = {}) {
  auto f = [fn](const TensorList& x) { return fn(x[0]); };
  add(out, op, what + " on [7]", f, {leaf({7}, lo, hi, 11, avoid)});
  add(out, op, what + " on [3, 4]", f, {leaf({3, 4}, lo, hi, 12, avoid)});
  add(out, op, what + " on transposed [2, 3, 4]", f,
      {transposed_leaf({2, 3, 4}, lo, hi, 13, avoid)});
  add(out, op, what + " on strided [3, 5]", f, {strided_leaf({3, 5}, lo, hi, 14, avoid)});
  add(out, op, what + " on 0-d", f, {leaf({}, lo, hi, 15, avoid)});
}

// Broadcasting and layout variants of one binary op, with operands drawn from [lo, hi).
void add_binary(std::vector<GradcheckCase>& out, Op op, const Binary& fn, double lo_a, double hi_a,
                double lo_b, double hi_b, const std::vector<double>& avoid_b = {}) {
  auto f = [fn](const TensorList& x) { return fn(x[0], x[1]); };
  add(out, op, "[3, 4] . [3, 4]", f,
      {leaf({3, 4}, lo_a, hi_a, 21), leaf({3, 4}, lo_b, hi_b, 22, avoid_b)});
  add(out, op, "[3, 4] . [4] broadcast", f,
      {leaf({3, 4}, lo_a, hi_a, 23), leaf({4}, lo_b, hi_b, 24, avoid_b)});
  add(out, op, "[3, 1] . [1, 4] broadcast both", f,
      {leaf({3, 1}, lo_a, hi_a, 25), leaf({1, 4}, lo_b, hi_b, 26, avoid_b)});
  add(out, op, "[3] . [2, 3, 3] broadcast lhs", f,
      {leaf({3}, lo_a, hi_a, 27), leaf({2, 3, 3}, lo_b, hi_b, 28, avoid_b)});
  add(out, op, "[2, 3, 4] . 0-d", f,
      {leaf({2, 3, 4}, lo_a, hi_a, 29), leaf({}, lo_b, hi_b, 30, avoid_b)});
  add(out, op, "transposed [3, 4] . strided [3, 4]", f,
      {transposed_leaf({3, 4}, lo_a, hi_a, 31), strided_leaf({3, 4}, lo_b, hi_b, 32, avoid_b)});
  add(out, op, "only lhs requires grad", f,
      {leaf({3, 4}, lo_a, hi_a, 33), no_grad(leaf({4}, lo_b, hi_b, 34, avoid_b))});
  add(out, op, "only rhs requires grad", f,
      {no_grad(leaf({3, 4}, lo_a, hi_a, 35)), leaf({3, 4}, lo_b, hi_b, 36, avoid_b)});
}
}  // namespace

void add_elementwise_cases(std::vector<GradcheckCase>& out) {
  // --- unary ---
  add_unary(
      out, Op::neg, "neg(a)", [](const Tensor& a) { return neg(a); }, -2, 2);
  add_unary(
      out, Op::neg, "-a", [](const Tensor& a) { return -a; }, -2, 2);
  add_unary(
      out, Op::exp, "exp(a)", [](const Tensor& a) { return exp(a); }, -2, 2);
  add_unary(
      out, Op::log, "log(a)", [](const Tensor& a) { return log(a); }, 0.3, 3);
  add_unary(
      out, Op::sqrt, "sqrt(a)", [](const Tensor& a) { return sqrt(a); }, 0.3, 3);
  add_unary(
      out, Op::rsqrt, "rsqrt(a)", [](const Tensor& a) { return rsqrt(a); }, 0.3, 3);
  add_unary(out, Op::abs, "abs(a)", [](const Tensor& a) { return abs(a); }, -2, 2, {0.0});
  add_unary(out, Op::relu, "relu(a)", [](const Tensor& a) { return relu(a); }, -2, 2, {0.0});
  add_unary(
      out, Op::sigmoid, "sigmoid(a)", [](const Tensor& a) { return sigmoid(a); }, -3, 3);
  add_unary(
      out, Op::tanh, "tanh(a)", [](const Tensor& a) { return tanh(a); }, -2, 2);
  add_unary(
      out, Op::pow_scalar, "pow(a, 2.0)", [](const Tensor& a) { return pow(a, 2.0); }, -2, 2);
  add_unary(
      out, Op::pow_scalar, "pow(a, 3.0)", [](const Tensor& a) { return pow(a, 3.0); }, -2, 2);
  add_unary(
      out, Op::pow_scalar, "pow(a, 0.5)", [](const Tensor& a) { return pow(a, 0.5); }, 0.3, 3);
  add_unary(
      out, Op::pow_scalar, "pow(a, -1.5)", [](const Tensor& a) { return pow(a, -1.5); }, 0.3, 3);
  add_unary(out, Op::clamp, "clamp(a, -0.5, 0.7)",
            [](const Tensor& a) { return clamp(a, -0.5, 0.7); }, -2, 2, {-0.5, 0.7});
  add_unary(out, Op::clamp, "clamp(a, -INFINITY, 0.2)",
            [](const Tensor& a) { return clamp(a, -INFINITY, 0.2); }, -1, 1, {0.2});

  // --- binary ---
  add_binary(
      out, Op::add, [](const Tensor& a, const Tensor& b) { return add(a, b); }, -2, 2, -2, 2);
  add_binary(
      out, Op::sub, [](const Tensor& a, const Tensor& b) { return sub(a, b); }, -2, 2, -2, 2);
  add_binary(
      out, Op::mul, [](const Tensor& a, const Tensor& b) { return mul(a, b); }, -2, 2, -2, 2);
  add_binary(out, Op::div, [](const Tensor& a, const Tensor& b) { return div(a, b); }, -2, 2, -2, 2,
             {-0.25, 0.0, 0.25});
  add_binary(
      out, Op::pow, [](const Tensor& a, const Tensor& b) { return pow(a, b); }, 0.3, 2.5, -1.5,
      1.5);
  add_binary(
      out, Op::maximum, [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, -2, 2, -2,
      2);
  add_binary(
      out, Op::minimum, [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, -2, 2, -2,
      2);
  auto max_f = [](const TensorList& x) { return maximum(x[0], x[1]); };
  auto min_f = [](const TensorList& x) { return minimum(x[0], x[1]); };
  add(out, Op::maximum, "ties split half/half", max_f,
      {exact({0.5, -1.0, 2.0, 0.25}, {4}), exact({0.5, 1.0, 2.0, -0.75}, {4})});
  add(out, Op::minimum, "ties split half/half", min_f,
      {exact({0.5, -1.0, 2.0, 0.25}, {4}), exact({0.5, 1.0, 2.0, -0.75}, {4})});
  add(out, Op::pow, "0^b for b > 0: d/db taken as 0",
      [](const TensorList& x) { return pow(x[0], x[1]); },
      {exact({0.0, 1.5, 0.0}, {3}, false), exact({1.5, 0.5, 2.5}, {3})});

  // --- operators compose the ops above; (a * b + a) / b - 1 mixes tensor and scalar forms ---
  add(out, Op::mul, "operators (a*b + a)/b - 1, 2*a, 1/b, 3-a",
      [](const TensorList& x) {
        const Tensor& a = x[0];
        const Tensor& b = x[1];
        return (a * b + a) / b - 1.0 + 2.0 * a + 1.0 / b + (3.0 - a) * 0.5 + a / 4.0 + (a + 1.0);
      },
      {leaf({3, 4}, -2, 2, 41), leaf({4}, 0.5, 2, 42)});

  // --- with a scalar ---
  add_unary(
      out, Op::add_scalar, "add(a, 1.5)", [](const Tensor& a) { return add(a, 1.5); }, -2, 2);
  add_unary(
      out, Op::add_scalar, "sub(a, 0.5)", [](const Tensor& a) { return sub(a, 0.5); }, -2, 2);
  add_unary(
      out, Op::mul_scalar, "mul(a, -2.5)", [](const Tensor& a) { return mul(a, -2.5); }, -2, 2);
  add_unary(
      out, Op::mul_scalar, "div(a, 4.0)", [](const Tensor& a) { return div(a, 4.0); }, -2, 2);
  add_unary(
      out, Op::rsub_scalar, "rsub(2.0, a)", [](const Tensor& a) { return rsub(2.0, a); }, -2, 2);
  add_unary(out, Op::rdiv_scalar, "rdiv(3.0, a)", [](const Tensor& a) { return rdiv(3.0, a); }, -2,
            2, {-0.25, 0.0, 0.25});

  // --- where ---
  auto where_f = [](const TensorList& x) { return where(x[0], x[1], x[2]); };
  Tensor cond34 = from_vector(std::vector<uint8_t>{1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1}, {3, 4});
  Tensor cond4 = from_vector(std::vector<uint8_t>{0, 1, 1, 0}, {4});
  add(out, Op::where, "[3, 4] all same shape", where_f,
      {cond34, leaf({3, 4}, -2, 2, 51), leaf({3, 4}, -2, 2, 52)});
  add(out, Op::where, "cond [4], a [3, 1], b 0-d broadcast", where_f,
      {cond4, leaf({3, 1}, -2, 2, 53), leaf({}, -2, 2, 54)});
  add(out, Op::where, "transposed a, strided b", where_f,
      {cond34, transposed_leaf({3, 4}, -2, 2, 55), strided_leaf({3, 4}, -2, 2, 56)});
  add(out, Op::where, "only b requires grad", where_f,
      {cond34, no_grad(leaf({3, 4}, -2, 2, 57)), leaf({4}, -2, 2, 58)});
}

}  // namespace okd
