// Differentiable network ops; each backward sits directly under its forward.
#include "autograd/functions/nn.h"

#include <cmath>

#include "autograd/functions.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/loss.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd {

// ---- convolution ----------------------------------------------------------------------------
// y = conv(x, W) + b:  dx = conv2d_backward_input(dy, W), dW = conv2d_backward_weight(dy, x),
// db = sum over N, H, W of dy. Recorded with record_into: when x already has a gradient g from
// another consumer (a ResNet block's residual) that only the tape holds, dx is added into it in
// place (g + dx; cuDNN's beta = 1), one kernel launch fewer than a separate add.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const ops::Conv2dParams& p) {
  Tensor out = ops::conv2d_forward(input, weight, bias, p);
  if (needs_record({input, weight, bias})) {
    Saved sx(weight.requires_grad() ? input : Tensor()),
        sw(input.requires_grad() ? weight : Tensor());
    Shape xs = input.shape(), ws = weight.shape();
    record_into(Op::conv2d, {input, weight, bias}, {out},
                [sx, sw, xs, ws, p](const TensorList& g, const std::vector<bool>& needs,
                                    const TensorList& into) -> TensorList {
                  TensorList d(3);
                  // into[0] (when defined) is contiguous with x's shape, dtype and device, which
                  // are dy's: the tape hands over only such a gradient.
                  if (needs[0])
                    d[0] = ops::conv2d_backward_input(g[0], sw.get(Op::conv2d), xs, p, into[0]);
                  if (needs[1]) d[1] = ops::conv2d_backward_weight(g[0], sx.get(Op::conv2d), ws, p);
                  if (needs[2]) d[2] = ops::conv2d_backward_bias(g[0]);
                  return d;
                },
                {sx.tensor, sw.tensor});
  }
  return out;
}

// The transposed convolution is conv2d's input-gradient; its own gradients are therefore
// dx = conv2d(dy, W) and dW = conv2d_backward_weight with the roles of x and dy exchanged.
// With output_padding >= stride the output is a crop of the unpadded one (conv.h), so dy is first
// put back into the unpadded output's frame (zeros elsewhere) and the convolutions run unpadded.
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                        const ops::Conv2dParams& p, int64_t oph, int64_t opw) {
  Tensor out = ops::conv_transpose2d_forward(input, weight, bias, p, oph, opw);
  if (needs_record({input, weight, bias})) {
    Saved sx(weight.requires_grad() ? input : Tensor()),
        sw(input.requires_grad() ? weight : Tensor());
    Shape xs = input.shape(), ws = weight.shape();
    const bool crops = ops::conv_transpose2d_crops_full(p, oph, opw);
    record(Op::conv_transpose2d, {input, weight, bias}, {out},
           [sx, sw, xs, ws, p, crops](const TensorList& g,
                                      const std::vector<bool>& needs) -> TensorList {
             TensorList d(3);
             Tensor gy = g[0];
             ops::Conv2dParams q = p;
             if (crops && (needs[0] || needs[1])) {
               gy = ops::conv_transpose2d_uncrop(g[0], xs, ws, p);
               q.pad_h = q.pad_w = 0;
             }
             if (needs[0])
               d[0] = ops::conv2d_forward(gy, sw.get(Op::conv_transpose2d), Tensor(), q);
             if (needs[1])
               d[1] = ops::conv2d_backward_weight(sx.get(Op::conv_transpose2d), gy, ws, q);
             if (needs[2]) d[2] = ops::conv2d_backward_bias(g[0]);
             return d;
           },
           {sx.tensor, sw.tensor});
  }
  return out;
}

// ---- batch norm ------------------------------------------------------------------------------
namespace {
// running = (1 - m) running + m batch, with the unbiased batch variance (PyTorch).
// The running statistics the training forward advances (none when the layer keeps none).
ops::BatchNormRunning running_stats(const Tensor& running_mean, const Tensor& running_var,
                                    double momentum, const Tensor& num_batches_tracked) {
  if (!running_mean.defined() || !running_var.defined()) return {};
  return {running_mean, running_var, momentum, num_batches_tracked};
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, const Tensor& num_batches_tracked) {
  if (training) {
    auto [y, st] = ops::batch_norm_train(
        x, weight, bias, eps, /*relu=*/false, Tensor(),
        running_stats(running_mean, running_var, momentum, num_batches_tracked));
    if (needs_record({x, weight, bias})) {
      Saved sx(x), sw(weight);
      Tensor mean = st.mean, invstd = st.invstd;
      record(Op::batch_norm, {x, weight, bias}, {y},
             [sx, sw, mean, invstd](const TensorList& g, const std::vector<bool>&) -> TensorList {
               auto [dx, dw, db] = ops::batch_norm_backward(g[0], sx.get(Op::batch_norm),
                                                            sw.get(Op::batch_norm), mean, invstd);
               return {dx, dw, db};
             },
             {x, mean, invstd});
    }
    return y;
  }
  OKD_CHECK(running_mean.defined() && running_var.defined(),
            "batch_norm: eval mode needs running statistics (the layer was built without them)");
  Tensor y = ops::batch_norm_eval(x, running_mean, running_var, weight, bias, eps);
  if (needs_record({x, weight, bias})) {
    // y = w (x - mu) s + b with fixed mu, s = 1/sqrt(var + eps): dx = dy w s, dw = sum dy xhat.
    const int64_t C = x.size(1);
    Shape bshape(x.dim(), 1);
    bshape[1] = C;
    Tensor s = ops::reshape(ops::rsqrt(ops::add(ops::to(running_var, x.dtype()), eps)), bshape);
    Tensor mu = ops::reshape(ops::to(running_mean, x.dtype()), bshape);
    Saved sx(x), sw(weight);
    record(
        Op::batch_norm, {x, weight, bias}, {y},
        [sx, sw, s, mu, bshape](const TensorList& g, const std::vector<bool>& needs) -> TensorList {
          std::vector<int64_t> dims;
          for (int64_t d = 0; d < static_cast<int64_t>(bshape.size()); ++d)
            if (d != 1) dims.push_back(d);
          TensorList d(3);
          const Tensor& w = sw.get(Op::batch_norm);
          Tensor scale = w.defined() ? ops::mul(s, ops::reshape(w, bshape)) : s;
          if (needs[0]) d[0] = ops::mul(g[0], scale);
          if (needs[1]) {
            Tensor xhat = ops::mul(ops::sub(sx.get(Op::batch_norm), mu), s);
            d[1] = ops::sum(ops::mul(g[0], xhat), dims);
          }
          if (needs[2]) d[2] = ops::sum(g[0], dims);
          return d;
        },
        {x});
  }
  return y;
}

// relu(batch_norm(x)) in one op when training: one pass writes max(y, 0), and the backward masks
// dz by z > 0 inside the batch-norm backward instead of materialising relu's gradient. The
// saved output z carries the mask. Eval mode composes the two ops.
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps, const Tensor& num_batches_tracked) {
  if (!training)
    return relu(batch_norm(x, running_mean, running_var, weight, bias, false, momentum, eps));
  auto [z, st] = ops::batch_norm_train(
      x, weight, bias, eps, /*relu=*/true, Tensor(),
      running_stats(running_mean, running_var, momentum, num_batches_tracked));
  if (needs_record({x, weight, bias})) {
    Saved sx(x), sw(weight), sz(z);
    Tensor mean = st.mean, invstd = st.invstd;
    record(Op::batch_norm_relu, {x, weight, bias}, {z},
           [sx, sw, sz, mean, invstd](const TensorList& g, const std::vector<bool>&) -> TensorList {
             auto [dx, dw, db] = ops::batch_norm_backward(g[0], sx.get(Op::batch_norm_relu),
                                                          sw.get(Op::batch_norm_relu), mean, invstd,
                                                          sz.get(Op::batch_norm_relu));
             return {dx, dw, db};
           },
           {x, mean, invstd, z});
  }
  return z;
}

// z = relu(batch_norm(x) + r) in one forward pass when training. Backward: dr = dz where z > 0,
// and that same masked gradient is the batch norm's dy, written once by the batch-norm backward's
// own pass (the residual needs it as its own gradient). Eval mode composes the ops.
Tensor batch_norm_add_relu(const Tensor& x, const Tensor& residual, const Tensor& running_mean,
                           const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                           bool training, double momentum, double eps,
                           const Tensor& num_batches_tracked) {
  if (!training)
    return relu(add(batch_norm(x, running_mean, running_var, weight, bias, false, momentum, eps),
                    residual));
  OKD_CHECK(residual.shape() == x.shape(), "batch_norm_add_relu: the residual ",
            shape_str(residual.shape()), " does not have the input's shape ", shape_str(x.shape()));
  auto [z, st] = ops::batch_norm_train(
      x, weight, bias, eps, /*relu=*/true, residual,
      running_stats(running_mean, running_var, momentum, num_batches_tracked));
  if (needs_record({x, residual, weight, bias})) {
    Saved sx(x), sw(weight), sz(z);
    Tensor mean = st.mean, invstd = st.invstd;
    record(Op::batch_norm_add_relu, {x, residual, weight, bias}, {z},
           [sx, sw, sz, mean, invstd](const TensorList& g,
                                      const std::vector<bool>& needs) -> TensorList {
             const Tensor& z = sz.get(Op::batch_norm_add_relu);
             TensorList d(4);
             if (!needs[0] && !needs[2] && !needs[3]) {
               d[1] = ops::relu_backward(g[0], z);
               return d;
             }
             auto [dx, dw, db, dr] = ops::batch_norm_add_relu_backward(
                 g[0], sx.get(Op::batch_norm_add_relu), sw.get(Op::batch_norm_add_relu), mean,
                 invstd, z);
             d[0] = dx;
             d[2] = dw;
             d[3] = db;
             if (needs[1]) d[1] = dr;
             return d;
           },
           {x, mean, invstd, z});
  }
  return z;
}

// ---- pooling ---------------------------------------------------------------------------------
Tensor max_pool2d(const Tensor& x, int64_t k, int64_t s, int64_t p) {
  auto [y, idx] = ops::max_pool2d_forward(x, k, s, p);
  if (needs_record(x)) {
    Shape xs = x.shape();
    record(Op::max_pool2d, {x}, {y},
           [idx, xs](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::max_pool2d_backward(g[0], idx, xs)};
           },
           {idx});
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, int64_t k, int64_t s, int64_t p) {
  Tensor y = ops::avg_pool2d_forward(x, k, s, p);
  if (needs_record(x)) {
    Shape xs = x.shape();
    record(Op::avg_pool2d, {x}, {y},
           [xs, k, s, p](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::avg_pool2d_backward(g[0], xs, k, s, p)};
           });
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t oh, int64_t ow) {
  Tensor y = ops::adaptive_avg_pool2d_forward(x, oh, ow);
  if (needs_record(x)) {
    Shape xs = x.shape();
    record(Op::adaptive_avg_pool2d, {x}, {y},
           [xs](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::adaptive_avg_pool2d_backward(g[0], xs)};
           });
  }
  return y;
}

// ---- softmax family --------------------------------------------------------------------------
namespace {
// log_softmax over the last dim (the primitive).
Tensor log_softmax_last(const Tensor& x) {
  Tensor y = ops::log_softmax_lastdim(x);
  if (needs_record(x)) {
    Saved sy(y);
    record(Op::log_softmax, {x}, {y},
           [sy](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::log_softmax_lastdim_backward(g[0], sy.get(Op::log_softmax))};
           },
           {y});
  }
  return y;
}
}  // namespace

Tensor log_softmax(const Tensor& x, int64_t dim, double T) {
  OKD_CHECK(T > 0, "log_softmax: temperature must be positive, got ", T);
  const int64_t d = wrap_dim(dim, x.dim(), "log_softmax");
  Tensor z = T == 1.0 ? x : okd::mul(x, 1.0 / T);
  if (d == x.dim() - 1 || x.dim() == 0) return log_softmax_last(z);
  return okd::transpose(log_softmax_last(okd::transpose(z, d, -1)), d, -1);
}

Tensor softmax(const Tensor& x, int64_t dim, double T) { return okd::exp(log_softmax(x, dim, T)); }

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, double eps,
                     const Tensor& weights) {
  Tensor loss = ops::cross_entropy_forward(logits, targets, eps, weights);
  if (needs_record(logits)) {
    Saved sl(logits);
    record(
        Op::cross_entropy, {logits}, {loss},
        [sl, targets, eps, weights](const TensorList& g, const std::vector<bool>&) -> TensorList {
          return {
              ops::cross_entropy_backward(g[0], sl.get(Op::cross_entropy), targets, eps, weights)};
        },
        {logits});
  }
  return loss;
}

Tensor kd_div(const Tensor& student, const Tensor& teacher_in, double T, double eps) {
  const Tensor teacher = detach(teacher_in);
  Tensor rows = ops::kd_div_rows(student, teacher, T, eps);
  if (needs_record(student)) {
    Saved ss(student), st(teacher);
    record(Op::kd_div, {student}, {rows},
           [ss, st, T, eps](const TensorList& g, const std::vector<bool>&) -> TensorList {
             return {ops::kd_div_backward_student(g[0], ss.get(Op::kd_div), st.get(Op::kd_div), T,
                                                  eps)};
           },
           {student, teacher});
  }
  return rows;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  OKD_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  // Drawn on x's device from the generator's Philox stream: a seed gives the same mask on every
  // device (tensor/philox.h).
  Tensor mask =
      ops::mul(bernoulli(x.shape(), 1.0 - p, gen, x.dtype(), x.device()), 1.0 / (1.0 - p));
  return okd::mul(x, mask);
}

Tensor mse_loss(const Tensor& a, const Tensor& b) {
  Tensor d = okd::sub(a, b);
  return okd::mean(okd::mul(d, d));
}

Tensor l1_loss(const Tensor& a, const Tensor& b) { return okd::mean(okd::abs(okd::sub(a, b))); }

// 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere.
Tensor smooth_l1_loss(const Tensor& a, const Tensor& b, double beta) {
  Tensor d = okd::sub(a, b);
  Tensor ad = okd::abs(d);
  Tensor quad = okd::mul(okd::mul(d, d), 0.5 / beta);
  Tensor lin = okd::add(ad, -0.5 * beta);
  return okd::mean(okd::where(ops::lt(ad, beta), quad, lin));
}

// sum(a b) / max(||a|| ||b||, eps) along dim.
Tensor cosine_similarity(const Tensor& a, const Tensor& b, int64_t dim, double eps) {
  Tensor dot = okd::sum(okd::mul(a, b), {dim});
  Tensor na = okd::norm(a, 2.0, {dim}), nb = okd::norm(b, 2.0, {dim});
  Tensor den = okd::clamp(okd::mul(na, nb), eps, INFINITY);
  return okd::div(dot, den);
}

}  // namespace okd
