// Differentiable elementwise functions. Each forward computes the raw op, then, when an input
// requires grad, records a tape entry whose backward (the lambda right below) maps dout, the
// gradient of the output, to the gradients of the inputs. Backward runs under NoGradGuard and
// uses raw ops only. Binary ops broadcast, so each input's gradient is summed back to its shape
// with ops::sum_to. The formulas are collected in docs/autograd.md.
#include "autograd/functions/elementwise.h"

#include <cmath>

#include "autograd/functions/common.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/reduce.h"

namespace okd {

using autograd_detail::mask_as;
using autograd_detail::zero_scalar;

namespace {
using Needs = std::vector<bool>;

// Records a unary op whose backward is dout -> dout * local(saved), with saved one tensor.
template <class Local>
void record_unary(Op op, const Tensor& a, const Tensor& out, const Tensor& to_save, Local local) {
  Saved saved(to_save);
  record(op, {a}, {out},
         [op, saved, local](const TensorList& g, const Needs&) -> TensorList {
           return {local(g[0], saved.get(op))};
         },
         {to_save});
}
}  // namespace

// ---- unary
// ---------------------------------------------------------------------------------------

// d(-a) = -dout
Tensor neg(const Tensor& a) {
  Tensor out = ops::neg(a);
  if (needs_record(a))
    record(Op::neg, {a}, {out},
           [](const TensorList& g, const Needs&) -> TensorList { return {ops::neg(g[0])}; });
  return out;
}

// d(e^a) = dout * e^a: saves the output, not the input.
Tensor exp(const Tensor& a) {
  Tensor out = ops::exp(a);
  if (needs_record(a))
    record_unary(Op::exp, a, out, out,
                 [](const Tensor& dout, const Tensor& y) { return ops::mul(dout, y); });
  return out;
}

// d(log a) = dout / a
Tensor log(const Tensor& a) {
  Tensor out = ops::log(a);
  if (needs_record(a))
    record_unary(Op::log, a, out, a,
                 [](const Tensor& dout, const Tensor& x) { return ops::div(dout, x); });
  return out;
}

// d(sqrt a) = dout / (2 sqrt a)
Tensor sqrt(const Tensor& a) {
  Tensor out = ops::sqrt(a);
  if (needs_record(a))
    record_unary(Op::sqrt, a, out, out, [](const Tensor& dout, const Tensor& y) {
      return ops::div(ops::mul(dout, 0.5), y);
    });
  return out;
}

// d(a^-1/2) = -1/2 a^-3/2 dout = -1/2 y^3 dout
Tensor rsqrt(const Tensor& a) {
  Tensor out = ops::rsqrt(a);
  if (needs_record(a))
    record_unary(Op::rsqrt, a, out, out, [](const Tensor& dout, const Tensor& y) {
      return ops::mul(ops::mul(dout, ops::pow(y, 3.0)), -0.5);
    });
  return out;
}

// d|a| = sign(a) dout (sign(0) = 0: the subgradient 0 at the kink, as PyTorch)
Tensor abs(const Tensor& a) {
  Tensor out = ops::abs(a);
  if (needs_record(a))
    record_unary(Op::abs, a, out, a,
                 [](const Tensor& dout, const Tensor& x) { return ops::mul(dout, ops::sign(x)); });
  return out;
}

// d relu(a) = dout where a > 0, else 0. At a == 0 we take the subgradient 0 (as PyTorch and
// tinygrad do). The output carries the same information as the input (y > 0 iff a > 0), so the
// output is saved: an in-place relu_ on the input later would not then invalidate the entry.
Tensor relu(const Tensor& a) {
  Tensor out = ops::relu(a);
  if (needs_record(a))
    record_unary(Op::relu, a, out, out, [](const Tensor& dout, const Tensor& y) {
      return ops::relu_backward(dout, y);  // dout where y > 0 (fused)
    });
  return out;
}

// d sigmoid(a) = dout * y (1 - y)
Tensor sigmoid(const Tensor& a) {
  Tensor out = ops::sigmoid(a);
  if (needs_record(a))
    record_unary(Op::sigmoid, a, out, out, [](const Tensor& dout, const Tensor& y) {
      return ops::mul(dout, ops::mul(y, ops::rsub(1.0, y)));
    });
  return out;
}

// d tanh(a) = dout * (1 - y^2)
Tensor tanh(const Tensor& a) {
  Tensor out = ops::tanh(a);
  if (needs_record(a))
    record_unary(Op::tanh, a, out, out, [](const Tensor& dout, const Tensor& y) {
      return ops::mul(dout, ops::rsub(1.0, ops::mul(y, y)));
    });
  return out;
}

// d(a^p) = dout * p a^(p-1)
Tensor pow(const Tensor& a, double exponent) {
  Tensor out = ops::pow(a, exponent);
  if (needs_record(a))
    record_unary(Op::pow_scalar, a, out, a, [exponent](const Tensor& dout, const Tensor& x) {
      if (exponent == 0.0) return ops::mul(dout, 0.0);
      return ops::mul(dout, ops::mul(ops::pow(x, exponent - 1.0), exponent));
    });
  return out;
}

// d clamp(a, lo, hi) = dout where lo <= a <= hi (bounds included, as PyTorch), else 0.
Tensor clamp(const Tensor& a, double lo, double hi) {
  OKD_CHECK(!(lo > hi), "clamp: lo (", lo, ") is greater than hi (", hi, ")");
  Tensor out = ops::clamp(a, lo, hi);
  if (needs_record(a))
    record_unary(Op::clamp, a, out, a, [lo, hi](const Tensor& dout, const Tensor& x) {
      Tensor zero = zero_scalar(dout);
      return ops::where(ops::ge(x, lo), ops::where(ops::le(x, hi), dout, zero), zero);
    });
  return out;
}

// ---- binary, broadcasting --------------------------------------------------------------------

// d(a + b): dout to both, summed back over broadcast dims.
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = ops::add(a, b);
  if (needs_record({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    record(Op::add, {a, b}, {out}, [sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
      TensorList d(2);
      if (needs[0]) d[0] = ops::sum_to(g[0], sa);
      if (needs[1]) d[1] = ops::sum_to(g[0], sb);
      return d;
    });
  }
  return out;
}

// d(a - b): dout to a, -dout to b.
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = ops::sub(a, b);
  if (needs_record({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    record(Op::sub, {a, b}, {out}, [sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
      TensorList d(2);
      if (needs[0]) d[0] = ops::sum_to(g[0], sa);
      if (needs[1]) d[1] = ops::sum_to(ops::neg(g[0]), sb);
      return d;
    });
  }
  return out;
}

// d(a b): da = dout b, db = dout a. Each operand is saved only if the other needs a gradient.
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::mul(a, b);
  if (needs_record({a, b})) {
    Saved save_a(b.requires_grad() ? a : Tensor()), save_b(a.requires_grad() ? b : Tensor());
    Shape sa = a.shape(), sb = b.shape();
    record(Op::mul, {a, b}, {out},
           [save_a, save_b, sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
             TensorList d(2);
             if (needs[0]) d[0] = ops::sum_to(ops::mul(g[0], save_b.get(Op::mul)), sa);
             if (needs[1]) d[1] = ops::sum_to(ops::mul(g[0], save_a.get(Op::mul)), sb);
             return d;
           },
           {save_a.tensor, save_b.tensor});
  }
  return out;
}

// d(a / b): da = dout / b, db = -dout a / b^2 = -dout y / b.
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = ops::div(a, b);
  if (needs_record({a, b})) {
    Saved save_b(b), save_out(b.requires_grad() ? out : Tensor());
    Shape sa = a.shape(), sb = b.shape();
    record(Op::div, {a, b}, {out},
           [save_b, save_out, sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
             const Tensor& y = save_out.get(Op::div);
             const Tensor& bv = save_b.get(Op::div);
             TensorList d(2);
             if (needs[0]) d[0] = ops::sum_to(ops::div(g[0], bv), sa);
             if (needs[1]) d[1] = ops::sum_to(ops::neg(ops::div(ops::mul(g[0], y), bv)), sb);
             return d;
           },
           {save_b.tensor, save_out.tensor});
  }
  return out;
}

// d(a^b): da = dout b a^(b-1), db = dout a^b log a, with db = 0 where a == 0 (the limit of
// a^b log a for b > 0, and PyTorch's choice), so pow(0, b) does not produce a NaN gradient.
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = ops::pow(a, b);
  if (needs_record({a, b})) {
    Saved save_a(a), save_b(b), save_out(b.requires_grad() ? out : Tensor());
    Shape sa = a.shape(), sb = b.shape();
    record(
        Op::pow, {a, b}, {out},
        [save_a, save_b, save_out, sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
          const Tensor& x = save_a.get(Op::pow);
          const Tensor& e = save_b.get(Op::pow);
          TensorList d(2);
          if (needs[0])
            d[0] = ops::sum_to(ops::mul(g[0], ops::mul(e, ops::pow(x, ops::add(e, -1.0)))), sa);
          if (needs[1]) {
            Tensor y_log_x = ops::mul(save_out.get(Op::pow), ops::log(x));
            y_log_x = ops::where(ops::eq(x, 0.0), zero_scalar(y_log_x), y_log_x);
            d[1] = ops::sum_to(ops::mul(g[0], y_log_x), sb);
          }
          return d;
        },
        {save_a.tensor, save_b.tensor, save_out.tensor});
  }
  return out;
}

namespace {
// Shared backward of maximum/minimum. wins_a marks where a is the strict winner (a > b for
// maximum). Ties split the gradient half/half, as PyTorch 1.12+ does: then the gradient of
// maximum(x, x) is dout, as it should be for the identity.
Tensor binary_extremum(Op op, const Tensor& a, const Tensor& b, bool is_max) {
  Tensor out = is_max ? ops::maximum(a, b) : ops::minimum(a, b);
  if (needs_record({a, b})) {
    Saved save_a(a), save_b(b);
    Shape sa = a.shape(), sb = b.shape();
    record(op, {a, b}, {out},
           [op, is_max, save_a, save_b, sa, sb](const TensorList& g,
                                                const Needs& needs) -> TensorList {
             const Tensor& x = save_a.get(op);
             const Tensor& y = save_b.get(op);
             Tensor zero = zero_scalar(g[0]);
             Tensor half = ops::where(ops::eq(x, y), ops::mul(g[0], 0.5), zero);
             Tensor a_wins = is_max ? ops::gt(x, y) : ops::lt(x, y);
             Tensor b_wins = is_max ? ops::lt(x, y) : ops::gt(x, y);
             TensorList d(2);
             if (needs[0]) d[0] = ops::sum_to(ops::where(a_wins, g[0], half), sa);
             if (needs[1]) d[1] = ops::sum_to(ops::where(b_wins, g[0], half), sb);
             return d;
           },
           {a, b});
  }
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_extremum(Op::maximum, a, b, true);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_extremum(Op::minimum, a, b, false);
}

// ---- with a scalar
// -------------------------------------------------------------------------------

// d(a + s) = dout
Tensor add(const Tensor& a, double s) {
  Tensor out = ops::add(a, s);
  if (needs_record(a))
    record(Op::add_scalar, {a}, {out},
           [](const TensorList& g, const Needs&) -> TensorList { return {g[0]}; });
  return out;
}

Tensor sub(const Tensor& a, double s) { return add(a, -s); }

// d(a s) = dout s
Tensor mul(const Tensor& a, double s) {
  Tensor out = ops::mul(a, s);
  if (needs_record(a))
    record(Op::mul_scalar, {a}, {out},
           [s](const TensorList& g, const Needs&) -> TensorList { return {ops::mul(g[0], s)}; });
  return out;
}

Tensor div(const Tensor& a, double s) {
  OKD_CHECK(s != 0.0, "div: division of ", a.desc(), " by the scalar 0");
  return mul(a, 1.0 / s);
}

// d(s - a) = -dout
Tensor rsub(double s, const Tensor& a) {
  Tensor out = ops::rsub(s, a);
  if (needs_record(a))
    record(Op::rsub_scalar, {a}, {out},
           [](const TensorList& g, const Needs&) -> TensorList { return {ops::neg(g[0])}; });
  return out;
}

// d(s / a) = -dout s / a^2 = -dout y / a
Tensor rdiv(double s, const Tensor& a) {
  Tensor out = ops::rdiv(s, a);
  if (needs_record(a)) {
    Saved save_a(a), save_out(out);
    record(Op::rdiv_scalar, {a}, {out},
           [save_a, save_out](const TensorList& g, const Needs&) -> TensorList {
             return {ops::neg(ops::div(ops::mul(g[0], save_out.get(Op::rdiv_scalar)),
                                       save_a.get(Op::rdiv_scalar)))};
           },
           {a, out});
  }
  return out;
}

// d where(c, a, b): dout to a where c, to b elsewhere; each summed back over broadcast dims.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = ops::where(cond, a, b);
  if (needs_record({a, b})) {
    Saved save_cond(cond);
    Shape sa = a.shape(), sb = b.shape();
    record(Op::where, {a, b}, {out},
           [save_cond, sa, sb](const TensorList& g, const Needs& needs) -> TensorList {
             const Tensor& c = save_cond.get(Op::where);
             Tensor zero = zero_scalar(g[0]);
             TensorList d(2);
             if (needs[0]) d[0] = ops::sum_to(ops::where(c, g[0], zero), sa);
             if (needs[1]) d[1] = ops::sum_to(ops::where(c, zero, g[0]), sb);
             return d;
           },
           {cond});
  }
  return out;
}

// ---- operators
// -----------------------------------------------------------------------------------
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return div(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(double s, const Tensor& a) { return rdiv(s, a); }

}  // namespace okd
