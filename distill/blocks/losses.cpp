// KD term, attention maps and FFSD's attention, diversity and shifted-input helpers, composed from
// differentiable functions so that autograd gives every gradient (including the teacher side of
// an undetached KD term); the KD term with a detached teacher is the fused op kd_div.
#include "distill/blocks/losses.h"

#include <cmath>
#include <limits>

#include "autograd/functions.h"
#include "tensor/ops/elementwise.h"

namespace okd::distill {

KdReduction parse_kd_reduction(const std::string& s) {
  if (s == "batchmean") return KdReduction::kBatchMean;
  if (s == "mean_all") return KdReduction::kMeanAll;
  OKD_FAIL("unknown KD reduction '", s, "' (known: batchmean, mean_all)");
}

Tensor kd_loss(const Tensor& student, const Tensor& teacher, const KdOptions& o) {
  OKD_CHECK(student.dim() == 2 && student.shape() == teacher.shape(),
            "kd_loss: student and teacher logits must both be [N, C], got ",
            shape_str(student.shape()), " and ", shape_str(teacher.shape()));
  OKD_CHECK(o.T > 0, "kd_loss: the temperature must be positive, got ", o.T);
  const double n = static_cast<double>(student.shape()[0]);
  const double denom = o.reduction == KdReduction::kBatchMean ? n : n * student.shape()[1];
  // A detached teacher: one fused op (kd_div, per-row sums in double) instead of the composition
  // below; same values and student gradient (tests/distill/test_kd_fused.cpp). Mixed dtypes or
  // devices keep the composition (its ops promote or report them).
  if (o.detach_teacher && student.dtype() == teacher.dtype() &&
      student.device() == teacher.device())
    return sum(kd_div(student, teacher, o.T, o.teacher_eps)) * (o.T * o.T / denom);
  const Tensor t = o.detach_teacher ? detach(teacher) : teacher;
  Tensor p_t, log_p_t;
  if (o.teacher_eps > 0) {
    p_t = softmax(t, 1, o.T) + o.teacher_eps;
    log_p_t = log(p_t);
  } else {
    log_p_t = log_softmax(t, 1, o.T);
    p_t = exp(log_p_t);
  }
  Tensor elem = p_t * (log_p_t - log_softmax(student, 1, o.T));
  return sum(elem) * (o.T * o.T / denom);
}

Tensor attention_sum_zscore(const Tensor& f) {
  OKD_CHECK(f.dim() == 4, "attention_sum_zscore: expected [N, C, H, W], got ",
            shape_str(f.shape()));
  const int64_t n = f.shape()[0], h = f.shape()[2], w = f.shape()[3];
  Tensor a = reshape(sum(f, {1}), {n, h * w});
  Tensor z = (a - mean(a, {1}, true)) / std(a, {1}, /*unbiased=*/true, true);
  return reshape(z, {n, h, w});
}

Tensor attention_mean_square(const Tensor& f) {
  OKD_CHECK(f.dim() == 4, "attention_mean_square: expected [N, C, H, W], got ",
            shape_str(f.shape()));
  return mean(f * f, {1}, true);
}

Tensor l2_normalize_per_sample(const Tensor& x) {
  const int64_t n = x.shape()[0];
  Tensor v = reshape(x, {n, -1});
  Tensor norms = clamp(norm(v, 2.0, {1}, true), 1e-12, std::numeric_limits<double>::infinity());
  return reshape(v / norms, x.shape());
}

Tensor normalized_mse(const Tensor& x, const Tensor& y) {
  OKD_CHECK(x.numel() == y.numel() && x.shape()[0] == y.shape()[0],
            "normalized_mse: shapes differ: ", shape_str(x.shape()), " vs ", shape_str(y.shape()));
  Tensor d = l2_normalize_per_sample(x) - reshape(l2_normalize_per_sample(y), x.shape());
  return mean(d * d);
}

namespace {
// The pieces of the diversity target for an attention map y (no gradient): n = ||y|| [N, 1],
// yh = l2n(y) [N, HW] and y' [N, HW].
struct DiversityParts {
  Tensor norms, normalized, target;
};

DiversityParts diversity_parts(const Tensor& y_in) {
  NoGradGuard no_grad;
  const int64_t n = y_in.shape()[0];
  Tensor y = reshape(detach(y_in), {n, -1});
  const int64_t hw = y.shape()[1], k = hw / 3;
  OKD_CHECK(k >= 1, "diversity target: the map needs at least 3 positions, got ", hw);
  DiversityParts p;
  p.norms = norm(y, 2.0, {1}, true);
  p.normalized = y / clamp(p.norms, 1e-12, std::numeric_limits<double>::infinity());
  Tensor thr = kthvalue(p.normalized, k, 1, true).first;  // k-th smallest (k from 1)
  Tensor half = p.norms * 0.5;
  p.target = (half - p.normalized) * ops::sign(p.normalized - thr) + half;
  return p;
}
}  // namespace

Tensor diversity_target(const Tensor& y) { return diversity_parts(y).target; }

Tensor diversity_loss(const Tensor& x, const Tensor& y) {
  const int64_t n = x.shape()[0];
  Tensor target = diversity_target(y);
  Tensor xh = reshape(l2_normalize_per_sample(x), {n, -1});
  OKD_CHECK(xh.shape() == target.shape(), "diversity_loss: shapes differ: ", shape_str(x.shape()),
            " vs ", shape_str(y.shape()));
  Tensor d = xh - target;
  return mean(d * d);
}

Tensor diversity_shifted_input(const Tensor& features) {
  NoGradGuard no_grad;
  OKD_CHECK(features.dim() == 4, "diversity_shifted_input: expected [N, C, H, W], got ",
            shape_str(features.shape()));
  const int64_t n = features.shape()[0], c = features.shape()[1];
  const int64_t h = features.shape()[2], w = features.shape()[3];
  Tensor f = detach(features);
  DiversityParts p = diversity_parts(attention_mean_square(f));
  Tensor shift = (p.target - p.normalized) * p.norms / static_cast<double>(c);
  return f + reshape(shift, {n, 1, h, w});
}

}  // namespace okd::distill
