// Forward values and gradients of the nn ops against PyTorch (tests/reference/make_op_refs.py):
// convolutions with stride/padding/dilation/groups/depthwise, the FFSD transposed convolution and
// transposed convolutions whose output_padding reaches the stride,
// batch norm training (two calls update the running statistics twice) and eval, pooling,
// log_softmax/softmax with a temperature on logits of magnitude 1000, and cross-entropy with
// label smoothing and class weights.
#include "autograd/functions.h"
#include "tensor/ops/view.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {
Tensor R(const std::string& c, const std::string& k) {
  return test::load_ref("nn_ops/" + c + "_" + k);
}
}  // namespace

TEST(NnOpsReference, Conv2dForwardAndGradients) {
  struct Case {
    std::string name;
    ops::Conv2dParams p;
  };
  for (const Case& c :
       {Case{"conv_s2_p1", {2, 2, 1, 1, 1, 1, 1}}, Case{"conv_d2_g2", {1, 1, 2, 2, 2, 2, 2}},
        Case{"conv_dw", {1, 1, 1, 1, 1, 1, 5}}, Case{"conv_1x1", {1, 1, 0, 0, 1, 1, 1}}}) {
    SCOPED_TRACE(c.name);
    Tensor x = R(c.name, "x").requires_grad_(), w = R(c.name, "w").requires_grad_(),
           b = R(c.name, "b").requires_grad_();
    Tensor y = conv2d(x, w, b, c.p);
    EXPECT_ALLCLOSE(y, R(c.name, "out"), 1e-4, 1e-5);
    backward(y, R(c.name, "gy"));
    EXPECT_ALLCLOSE(x.grad(), R(c.name, "gx"), 1e-4, 1e-5);
    EXPECT_ALLCLOSE(w.grad(), R(c.name, "gw"), 1e-4, 1e-4);
    EXPECT_ALLCLOSE(b.grad(), R(c.name, "gb"), 1e-4, 1e-4);
  }
}

TEST(NnOpsReference, ConvTransposeOfTheFfsdDecoder) {
  Tensor x = R("convt_ffsd", "x").requires_grad_(), w = R("convt_ffsd", "w").requires_grad_(),
         b = R("convt_ffsd", "b").requires_grad_();
  Tensor y = conv_transpose2d(x, w, b, {2, 2, 1, 1, 1, 1, 1}, 1, 1);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 8, 8}));
  EXPECT_ALLCLOSE(y, R("convt_ffsd", "out"), 1e-4, 1e-5);
  backward(y, R("convt_ffsd", "gy"));
  EXPECT_ALLCLOSE(x.grad(), R("convt_ffsd", "gx"), 1e-4, 1e-5);
  EXPECT_ALLCLOSE(w.grad(), R("convt_ffsd", "gw"), 1e-4, 1e-4);
  EXPECT_ALLCLOSE(b.grad(), R("convt_ffsd", "gb"), 1e-4, 1e-4);
}

// output_padding >= stride, allowed while below the dilation: the output has rows past the
// uncropped transposed convolution (bias only) and, with padding, rows the padding would crop.
TEST(NnOpsReference, ConvTransposeWithOutputPaddingAtLeastTheStride) {
  struct Case {
    std::string name;
    ops::Conv2dParams p;
    int64_t oph, opw;
    Shape out;
  };
  for (const Case& c : {Case{"convt_op_d2", {1, 1, 0, 0, 2, 2, 1}, 1, 1, {1, 3, 9, 9}},
                        Case{"convt_op_d2_p1", {1, 1, 1, 1, 2, 2, 1}, 1, 1, {2, 3, 7, 7}},
                        Case{"convt_op_mixed_g2", {2, 2, 1, 1, 3, 1, 2}, 2, 1, {1, 2, 8, 8}}}) {
    SCOPED_TRACE(c.name);
    Tensor x = R(c.name, "x").requires_grad_(), w = R(c.name, "w").requires_grad_(),
           b = R(c.name, "b").requires_grad_();
    Tensor y = conv_transpose2d(x, w, b, c.p, c.oph, c.opw);
    EXPECT_EQ(y.shape(), c.out);
    EXPECT_ALLCLOSE(y, R(c.name, "out"), 1e-4, 1e-5);
    backward(y, R(c.name, "gy"));
    EXPECT_ALLCLOSE(x.grad(), R(c.name, "gx"), 1e-4, 1e-5);
    EXPECT_ALLCLOSE(w.grad(), R(c.name, "gw"), 1e-4, 1e-4);
    EXPECT_ALLCLOSE(b.grad(), R(c.name, "gb"), 1e-4, 1e-4);
  }
}

TEST(NnOpsReference, BatchNormTrainTwiceThenEval) {
  Tensor x = R("bn", "x"), w = R("bn", "w"), b = R("bn", "b");
  Tensor rm = zeros({3}), rv = ones({3});
  EXPECT_ALLCLOSE(batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5), R("bn", "y1"), 1e-5, 1e-5);
  EXPECT_ALLCLOSE(batch_norm(mul(x, 0.5), rm, rv, w, b, true, 0.1, 1e-5), R("bn", "y2"), 1e-5,
                  1e-5);
  // Two calls, two updates of the running statistics (seeds.md §1.8).
  EXPECT_ALLCLOSE(rm, R("bn", "rm"), 1e-5, 1e-6);
  EXPECT_ALLCLOSE(rv, R("bn", "rv"), 1e-5, 1e-6);
  EXPECT_ALLCLOSE(batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5), R("bn", "eval"), 1e-5, 1e-5);
}

TEST(NnOpsReference, Pooling) {
  Tensor x = R("pool", "x");
  EXPECT_ALLCLOSE(max_pool2d(x, 3, 2, 1), R("pool", "max_k3s2p1"), 0, 0);
  EXPECT_ALLCLOSE(avg_pool2d(x, 3, 2, 1), R("pool", "avg_k3s2p1"), 1e-6, 1e-6);
  EXPECT_ALLCLOSE(adaptive_avg_pool2d(x, 3, 2), R("pool", "adaptive_3x2"), 1e-6, 1e-6);
}

TEST(NnOpsReference, SoftmaxFamilyAndCrossEntropy) {
  Tensor z = R("softmax", "z"), y = R("softmax", "y"), w = R("softmax", "w");
  Tensor lsm = log_softmax(z, 1, 4.0);
  EXPECT_ALLCLOSE(lsm, R("softmax", "lsm_T4"), 1e-5, 1e-4);
  EXPECT_ALLCLOSE(softmax(z, 1, 4.0), R("softmax", "sm_T4"), 1e-5, 1e-6);
  EXPECT_ALLCLOSE(cross_entropy(mul(z, 0.01), y), R("softmax", "ce"), 1e-5, 1e-6);
  EXPECT_ALLCLOSE(cross_entropy(mul(z, 0.01), y, 0.1, w), R("softmax", "ce_ls_w"), 1e-5, 1e-6);
}

TEST(NnOpsReference, FusedCrossEntropyMatchesTheComposedForm) {
  // CE = -mean(log_softmax(z)[y]): the fused op and the composition give the same value and
  // the same gradient.
  Tensor z1 = R("softmax", "z"), y = R("softmax", "y");
  z1 = mul(z1, 0.01);
  Tensor za = clone(z1).requires_grad_(), zb = clone(z1).requires_grad_();
  Tensor fused = cross_entropy(za, y);
  Tensor composed = neg(mean(gather(log_softmax(zb, 1), 1, ops::unsqueeze(y, 1))));
  EXPECT_ALLCLOSE(fused, composed, 1e-6, 1e-7);
  // Both graphs share the thread's tape, which a backward() consumes whole: keep it for the second.
  backward(fused, {}, /*retain_graph=*/true);
  backward(composed);
  EXPECT_ALLCLOSE(za.grad(), zb.grad(), 1e-5, 1e-7);
}

TEST(NnOpsReference, ChannelMismatchNamesBothShapes) {
  try {
    conv2d(zeros({8, 4, 32, 32}), zeros({16, 3, 3, 3}), Tensor(), {});
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("input has 4 channels but weight expects 3"), std::string::npos) << m;
    EXPECT_NE(m.find("[8, 4, 32, 32]"), std::string::npos) << m;
    EXPECT_NE(m.find("[16, 3, 3, 3]"), std::string::npos) << m;
  }
}
