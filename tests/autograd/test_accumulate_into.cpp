// record_into and conv2d's accumulate-into input gradient (tape.h, nn.cpp): when a tensor feeding
// a convolution already has a gradient from another consumer that only the tape holds (a ResNet
// block's residual), conv2d adds dx into it in place instead of the tape adding the two. The
// gradients must be bit-identical to the computation with the sharing broken (x + y == y + x in
// floating point), in either order of the two backwards, and a gradient held elsewhere must never
// be written.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/random.h"
#include "tests/support/test_support.h"

namespace okd {
namespace {

class AccumulateIntoTest : public ::testing::Test {
 protected:
  void SetUp() override { Tape::current().clear(); }
  void TearDown() override { Tape::current().clear(); }
};

const ops::Conv2dParams k3x3{1, 1, 1, 1, 1, 1, 1};  // stride 1, pad 1: x and conv(x) alike

Tensor randn_t(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, DType::Float32);
}
Tensor leaf_copy(const Tensor& t) {
  Tensor c = ops::clone(t);
  c.requires_grad_(true);
  return c;
}

// An identity op for watching the tape: its backward keeps a copy of the gradient it receives
// (got) and its address, and returns a fresh copy (a gradient that only the tape holds), noting
// that copy's address; with hold, the test keeps that copy too (a gradient held elsewhere) and a
// snapshot of its values.
struct Probe {
  bool hold = false;
  Tensor got, held, held_snapshot;
  const void* received = nullptr;
  const void* returned = nullptr;
};
Tensor probe(const Tensor& x, Probe& pr) {
  Tensor out = ops::clone(x);
  if (needs_record(x))
    record(Op::clone, {x}, {out},
           [&pr](const TensorList& g, const std::vector<bool>&) -> TensorList {
             pr.got = ops::clone(g[0]);
             pr.received = g[0].data<float>();
             Tensor d = ops::clone(g[0]);
             pr.returned = d.data<float>();
             if (pr.hold) {
               pr.held = d;
               pr.held_snapshot = ops::clone(d);
             }
             return {d};
           });
  return out;
}

Tensor bn_add_relu(const Tensor& h, const Tensor& residual) {
  return batch_norm_add_relu(h, residual, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
}

// The same block with the sharing broken: the convolution and the residual read two separate
// leaves holding x's values, so each gradient arrives alone; their sum is the reference for
// x's gradient (and w's gradient must come out the same).
struct Reference {
  Tensor dx, dw;
};
Reference reference(const Tensor& x_values, const Tensor& w_values, const Tensor& c) {
  Tape::current().clear();
  Tensor xa = leaf_copy(x_values), xb = leaf_copy(x_values), w = leaf_copy(w_values);
  Tensor y = bn_add_relu(conv2d(xa, w, Tensor(), k3x3), xb);
  backward(sum(mul(y, c)));
  return {ops::add(xb.grad(), xa.grad()), w.grad()};
}

const Shape kX = {2, 4, 6, 6}, kW = {4, 4, 3, 3};

// The residual's backward runs first (recorded after the convolution, as in a ResNet block), so
// the convolution finds x's gradient in place and adds dx into it: x's producer receives the very
// tensor the residual path returned, holding d_residual + dx bit for bit.
TEST_F(AccumulateIntoTest, ConvAddsIntoTheResidualGradientInPlaceBitExactly) {
  Tensor x0 = randn_t(kX, 1), w_values = randn_t(kW, 2), c = randn_t(kX, 3);
  const Reference ref = reference(x0, w_values, c);
  Tensor x_leaf = leaf_copy(x0), w = leaf_copy(w_values);
  Probe px, pres;
  Tensor x = probe(x_leaf, px);
  x.retain_grad();
  Tensor h = conv2d(x, w, Tensor(), k3x3);
  Tensor r = probe(x, pres);  // after conv2d on the tape: its backward runs first
  backward(sum(mul(bn_add_relu(h, r), c)));
  ASSERT_NE(pres.returned, nullptr);
  EXPECT_EQ(px.received, pres.returned) << "conv2d did not accumulate into the residual gradient";
  EXPECT_ALLCLOSE(px.got, ref.dx, 0.0, 0.0);
  EXPECT_ALLCLOSE(x.grad(), ref.dx, 0.0, 0.0);
  EXPECT_ALLCLOSE(w.grad(), ref.dw, 0.0, 0.0);
  EXPECT_ALLCLOSE(x_leaf.grad(), ref.dx, 0.0, 0.0);  // the probe passes it on unchanged
}

// The convolution's backward runs first (the residual consumer is recorded before it): x has no
// gradient yet, conv2d returns a new dx, and the tape adds the residual's gradient to it later.
TEST_F(AccumulateIntoTest, ConvRunningFirstGivesTheSameGradient) {
  Tensor x0 = randn_t(kX, 4), w_values = randn_t(kW, 5), c = randn_t(kX, 6);
  const Reference ref = reference(x0, w_values, c);
  Tensor w = leaf_copy(w_values);
  Probe px, pres;
  Tensor x = probe(leaf_copy(x0), px);
  Tensor r = probe(x, pres);  // before conv2d on the tape: its backward runs after conv2d's
  Tensor h = conv2d(x, w, Tensor(), k3x3);
  backward(sum(mul(bn_add_relu(h, r), c)));
  ASSERT_NE(px.received, nullptr);
  EXPECT_NE(px.received, pres.returned);
  EXPECT_ALLCLOSE(px.got, ref.dx, 0.0, 0.0);
  EXPECT_ALLCLOSE(w.grad(), ref.dw, 0.0, 0.0);
}

// The residual's gradient is also held outside the tape: the convolution must not write into it
// (the tape adds as before), and the gradient is still exact.
TEST_F(AccumulateIntoTest, AGradientHeldElsewhereIsNotWritten) {
  Tensor x0 = randn_t(kX, 7), w_values = randn_t(kW, 8), c = randn_t(kX, 9);
  const Reference ref = reference(x0, w_values, c);
  Tensor w = leaf_copy(w_values);
  Probe px, pres;
  pres.hold = true;
  Tensor x = probe(leaf_copy(x0), px);
  Tensor h = conv2d(x, w, Tensor(), k3x3);
  Tensor r = probe(x, pres);
  backward(sum(mul(bn_add_relu(h, r), c)));
  ASSERT_TRUE(pres.held.defined());
  EXPECT_NE(px.received, pres.returned);
  EXPECT_ALLCLOSE(pres.held, pres.held_snapshot, 0.0, 0.0);
  EXPECT_ALLCLOSE(px.got, ref.dx, 0.0, 0.0);
  EXPECT_ALLCLOSE(w.grad(), ref.dw, 0.0, 0.0);
}

// A leaf feeding the convolution and the residual: leaves take no buffer (their .grad is the
// user's), so x.grad is the tape's sum, and the residual's gradient tensor is not modified.
TEST_F(AccumulateIntoTest, ALeafInputIsAccumulatedAsBefore) {
  Tensor x0 = randn_t(kX, 10), w_values = randn_t(kW, 11), c = randn_t(kX, 12);
  const Reference ref = reference(x0, w_values, c);
  Tensor x = leaf_copy(x0), w = leaf_copy(w_values);
  backward(sum(mul(bn_add_relu(conv2d(x, w, Tensor(), k3x3), x), c)));
  EXPECT_ALLCLOSE(x.grad(), ref.dx, 0.0, 0.0);
  EXPECT_ALLCLOSE(w.grad(), ref.dw, 0.0, 0.0);
}

// A BackwardIntoFn that ignores its buffer (returns a new gradient) is accumulated as a plain
// BackwardFn is, and into[j] is handed only to inputs that have a producer and a gradient.
TEST_F(AccumulateIntoTest, RecordIntoHandsBuffersOnlyWhereAGradientIsWaiting) {
  Tensor a0 = leaf_copy(tensor<float>({1, 2, 3}, {3}));
  Probe pa;
  Tensor a = probe(a0, pa);
  Tensor first = mul(a, 3.0);  // recorded before: its gradient reaches a after the op's
  std::vector<bool> had_buffer;
  Tensor out = ops::mul(a, 2.0);
  record_into(Op::mul, {a, a0}, {out},
              [&had_buffer](const TensorList& g, const std::vector<bool>& needs,
                            const TensorList& into) -> TensorList {
                for (const Tensor& t : into) had_buffer.push_back(t.defined());
                return {ops::mul(g[0], 2.0), needs[1] ? ops::mul(g[0], 0.0) : Tensor()};
              });
  Tensor later = mul(a, 5.0);  // recorded after: its gradient is waiting when the op runs
  backward(sum(add(add(out, first), later)));
  ASSERT_EQ(had_buffer.size(), 2u);
  EXPECT_TRUE(had_buffer[0]);   // a: produced by the probe, gradient 5 already there
  EXPECT_FALSE(had_buffer[1]);  // a0: a leaf
  EXPECT_ALLCLOSE(pa.got, tensor<float>({10, 10, 10}, {3}), 0.0, 0.0);  // 5 + 2 + 3
}

}  // namespace
}  // namespace okd
