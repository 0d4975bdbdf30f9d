// Gradcheck cases of the nn ops: convolution (stride, padding, dilation, groups, depthwise,
// transposed), batch norm (train and eval), pooling, log_softmax, cross-entropy and the KD
// divergence.
#include "autograd/functions/cases_support.h"

namespace okd {

using namespace cases;

void add_nn_cases(std::vector<GradcheckCase>& cs) {
  auto conv = [](ops::Conv2dParams p) {
    return [p](const TensorList& in) {
      return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p);
    };
  };
  add(cs, Op::conv2d, "3x3 pad 1 with bias", conv({1, 1, 1, 1, 1, 1, 1}),
      {leaf({2, 3, 5, 5}, -1, 1, 1), leaf({4, 3, 3, 3}, -1, 1, 2), leaf({4}, -1, 1, 3)});
  add(cs, Op::conv2d, "stride 2, dilation 2, no bias", conv({2, 2, 1, 1, 2, 2, 1}),
      {leaf({2, 2, 7, 6}, -1, 1, 4), leaf({3, 2, 3, 3}, -1, 1, 5)});
  add(cs, Op::conv2d, "groups 2, 1x1", conv({1, 1, 0, 0, 1, 1, 2}),
      {leaf({1, 4, 3, 3}, -1, 1, 6), leaf({6, 2, 1, 1}, -1, 1, 7), leaf({6}, -1, 1, 8)});
  add(cs, Op::conv2d, "depthwise 3x3 stride 2", conv({2, 2, 1, 1, 1, 1, 3}),
      {leaf({2, 3, 5, 5}, -1, 1, 9), leaf({3, 1, 3, 3}, -1, 1, 10)});
  add(cs, Op::conv2d, "non-contiguous input", conv({1, 1, 1, 1, 1, 1, 1}),
      {transposed_leaf({1, 2, 4, 5}, -1, 1, 11), leaf({2, 2, 3, 3}, -1, 1, 12)});

  auto convt = [](ops::Conv2dParams p, int64_t op) {
    return [p, op](const TensorList& in) {
      return conv_transpose2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p, op, op);
    };
  };
  add(cs, Op::conv_transpose2d, "k3 s2 p1 output_padding 1 (FFSD decoder)",
      convt({2, 2, 1, 1, 1, 1, 1}, 1),
      {leaf({2, 3, 3, 3}, -1, 1, 13), leaf({3, 2, 3, 3}, -1, 1, 14), leaf({2}, -1, 1, 15)});
  add(cs, Op::conv_transpose2d, "groups 2 dilation 2", convt({1, 1, 0, 0, 2, 2, 2}, 0),
      {leaf({1, 4, 3, 3}, -1, 1, 16), leaf({4, 1, 2, 2}, -1, 1, 17)});
  // output_padding >= stride (below the dilation): rows past the uncropped output, and with
  // padding the rows it would crop.
  add(cs, Op::conv_transpose2d, "dilation 2 output_padding 1 (>= stride)",
      convt({1, 1, 0, 0, 2, 2, 1}, 1),
      {leaf({1, 2, 3, 3}, -1, 1, 301), leaf({2, 2, 3, 3}, -1, 1, 302), leaf({2}, -1, 1, 303)});
  add(cs, Op::conv_transpose2d, "pad 1 dilation 2 output_padding 1, groups 2",
      convt({1, 1, 1, 1, 2, 2, 2}, 1),
      {leaf({1, 4, 3, 3}, -1, 1, 304), leaf({4, 1, 3, 3}, -1, 1, 305)});
  add(cs, Op::conv_transpose2d, "stride 2, output_padding (2, 1), dilation (3, 1), pad (1, 0)",
      [](const TensorList& in) {
        return conv_transpose2d(in[0], in[1], in[2], {2, 2, 1, 0, 3, 1, 1}, 2, 1);
      },
      {leaf({2, 2, 2, 3}, -1, 1, 306), leaf({2, 3, 2, 2}, -1, 1, 307), leaf({3}, -1, 1, 308)});

  add(cs, Op::batch_norm, "train, affine, 4-D",
      [](const TensorList& in) {
        return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
      },
      {leaf({3, 2, 2, 3}, -2, 2, 18), leaf({2}, 0.5, 1.5, 19), leaf({2}, -1, 1, 20)});
  add(cs, Op::batch_norm, "train, no affine, 2-D",
      [](const TensorList& in) {
        return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
      },
      {leaf({5, 3}, -2, 2, 21)});
  add(cs, Op::batch_norm, "eval with running statistics",
      [](const TensorList& in) {
        Tensor rm = on_device_of(in[0], from_vector<double>({0.1, -0.2}));
        Tensor rv = on_device_of(in[0], from_vector<double>({0.5, 2.0}));
        return batch_norm(in[0], rm, rv, in[1], in[2], false, 0.1, 1e-5);
      },
      {leaf({2, 2, 3, 3}, -2, 2, 22), leaf({2}, 0.5, 1.5, 23), leaf({2}, -1, 1, 24)});

  // Inputs spread so that about half the outputs are clipped, none within 1e-3 of the kink.
  add(cs, Op::batch_norm_relu, "train, affine, 4-D (fused)",
      [](const TensorList& in) {
        return batch_norm_relu(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, 1e-5);
      },
      {leaf({3, 2, 2, 3}, -2, 2, 25), leaf({2}, 0.5, 1.5, 26), leaf({2}, -0.3, 0.3, 27)});
  add(cs, Op::batch_norm_relu, "train, no affine, 2-D (fused)",
      [](const TensorList& in) {
        return batch_norm_relu(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
      },
      {leaf({6, 3}, -2, 2, 28)});

  // residual spread like the input; the sum is kept away from the kink as above
  add(cs, Op::batch_norm_add_relu, "train, affine, 4-D (fused, residual)",
      [](const TensorList& in) {
        return batch_norm_add_relu(in[0], in[1], Tensor(), Tensor(), in[2], in[3], true, 0.1, 1e-5);
      },
      {leaf({3, 2, 2, 3}, -2, 2, 29), leaf({3, 2, 2, 3}, -1, 1, 30), leaf({2}, 0.5, 1.5, 31),
       leaf({2}, -0.3, 0.3, 32)});
  add(cs, Op::batch_norm_add_relu, "train, no affine, 2-D (fused, residual)",
      [](const TensorList& in) {
        return batch_norm_add_relu(in[0], in[1], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1,
                                   1e-5);
      },
      {leaf({6, 3}, -2, 2, 33), leaf({6, 3}, -1, 1, 34)});

  // Distinct values keep the max unique (the max is not differentiable at ties).
  add(cs, Op::max_pool2d, "k2 s2", [](const TensorList& in) { return max_pool2d(in[0], 2, 2); },
      {exact(
          [] {
            std::vector<double> v(2 * 2 * 4 * 4);
            for (size_t i = 0; i < v.size(); ++i)
              v[i] = std::sin(1.7 * static_cast<double>(i)) * 3 + 0.01 * static_cast<double>(i);
            return v;
          }(),
          {2, 2, 4, 4})});
  add(cs, Op::max_pool2d, "k3 s2 pad 1",
      [](const TensorList& in) { return max_pool2d(in[0], 3, 2, 1); },
      {exact(
          [] {
            std::vector<double> v(1 * 2 * 5 * 5);
            for (size_t i = 0; i < v.size(); ++i)
              v[i] = std::cos(2.3 * static_cast<double>(i)) * 2 + 0.013 * static_cast<double>(i);
            return v;
          }(),
          {1, 2, 5, 5})});
  add(cs, Op::avg_pool2d, "k3 s2 pad 1",
      [](const TensorList& in) { return avg_pool2d(in[0], 3, 2, 1); },
      {leaf({2, 2, 5, 5}, -1, 1, 25)});
  add(cs, Op::adaptive_avg_pool2d, "5x7 -> 2x3 (overlapping cells)",
      [](const TensorList& in) { return adaptive_avg_pool2d(in[0], 2, 3); },
      {leaf({2, 2, 5, 7}, -1, 1, 26)});
  add(cs, Op::adaptive_avg_pool2d, "global",
      [](const TensorList& in) { return adaptive_avg_pool2d(in[0], 1, 1); },
      {strided_leaf({2, 3, 2, 3}, -1, 1, 27)});

  add(cs, Op::log_softmax, "last dim", [](const TensorList& in) { return log_softmax(in[0], -1); },
      {leaf({3, 5}, -3, 3, 28)});
  add(cs, Op::log_softmax, "dim 1 of 3-D, T = 4",
      [](const TensorList& in) { return log_softmax(in[0], 1, 4.0); },
      {leaf({2, 4, 3}, -3, 3, 29)});
  add(cs, Op::log_softmax, "softmax composition",
      [](const TensorList& in) { return softmax(in[0], -1, 2.0); },
      {transposed_leaf({3, 4}, -2, 2, 30)});

  add(cs, Op::cross_entropy, "plain",
      [](const TensorList& in) {
        return cross_entropy(in[0], on_device_of(in[0], index({2, 0, 3}, {3})));
      },
      {leaf({3, 4}, -2, 2, 31)});
  add(cs, Op::cross_entropy, "label smoothing 0.1 and class weights",
      [](const TensorList& in) {
        return cross_entropy(in[0], on_device_of(in[0], index({1, 1, 0, 2}, {4})), 0.1,
                             on_device_of(in[0], from_vector<double>({0.5, 2.0, 1.0})));
      },
      {leaf({4, 3}, -2, 2, 32)});

  // The teacher is a constant made inside f (no gradient), as kd_loss's detached teacher.
  add(cs, Op::kd_div, "T = 1",
      [](const TensorList& in) {
        return kd_div(in[0], on_device_of(in[0], exact(values({3, 5}, -3, 3, 34), {3, 5}, false)),
                      1.0);
      },
      {leaf({3, 5}, -3, 3, 33)});
  add(cs, Op::kd_div, "T = 4, teacher_eps 1e-7, transposed student",
      [](const TensorList& in) {
        return kd_div(in[0], on_device_of(in[0], exact(values({4, 3}, -5, 5, 36), {4, 3}, false)),
                      4.0, 1e-7);
      },
      {transposed_leaf({4, 3}, -5, 5, 35)});
}

}  // namespace okd
