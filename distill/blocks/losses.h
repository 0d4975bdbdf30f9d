// The distillation losses every method is built from (seeds.md §1.2-§1.4, §5.3; classic.md §1.1):
// the KD term with explicit direction, reduction, temperature and detach; the three spatial
// attention maps; FFSD's attention loss, diversity target and shifted decoder input.
#pragma once
#include <string>

#include "tensor/tensor.h"

namespace okd::distill {

enum class KdReduction {
  kBatchMean,  // sum over classes, mean over the batch (the standard KL-div "batchmean")
  kMeanAll,    // mean over all N*C elements (a default-constructed KL-div loss; EKD-FWSNet)
};
KdReduction parse_kd_reduction(const std::string& s);  // "batchmean" | "mean_all"

struct KdOptions {
  double T = 1.0;
  KdReduction reduction = KdReduction::kBatchMean;
  bool detach_teacher = true;
  double teacher_eps = 0.0;  // added to the teacher probabilities after the softmax (FFL: 1e-7)
};

// KD(s <- t) = T^2 * reduce_{n,c} p_t[n,c] * (log p_t[n,c] - log_softmax(s/T)[n,c]),
// p_t = softmax(t/T) (+ teacher_eps, not renormalised). The teacher is the first argument of the
// KL; with detach_teacher = false the gradient also flows into t.
Tensor kd_loss(const Tensor& student_logits, const Tensor& teacher_logits, const KdOptions& o);

// att_sum_z: A = sum_c F[:, c] ([N, H, W]), z-scored per sample over the H*W positions with the
// unbiased std (no epsilon, as in the reference: a constant map gives NaN). EKD-FWSNet.
Tensor attention_sum_zscore(const Tensor& features);
// att_meansq: A = mean_c F[:, c]^2, [N, 1, H, W]. FFSD.
Tensor attention_mean_square(const Tensor& features);
// l2n: each sample flattened and divided by max(||v||_2, 1e-12); the shape is kept.
Tensor l2_normalize_per_sample(const Tensor& x);
// FFSD's attention loss AL(x, y) = mean over all elements of (l2n(x) - l2n(y))^2.
Tensor normalized_mse(const Tensor& x, const Tensor& y);

// FFSD's diversity target (seeds.md §5.3) for an un-normalised attention map y ([N, ...], no
// gradient): per sample, with n = ||y||, yh = l2n(y), thr = the k-th smallest yh (k = HW/3):
//   y' = (n/2 - yh) * sign(yh - thr) + n/2
// Returned flattened, [N, HW].
Tensor diversity_target(const Tensor& y);
// DIV(x, y) = mean over N*HW of (l2n(x) - diversity_target(sg(y)))^2.
Tensor diversity_loss(const Tensor& x, const Tensor& y);
// The shifted decoder input DT(Y) for Y = [N, c, H, W] (no gradient):
//   Y + (diversity_target(a(Y)) - l2n(a(Y))) * ||a(Y)|| / c, broadcast over the channels
// [REF-QUIRK] mixes the scale of the un-normalised norm with unit-norm values, as the reference.
Tensor diversity_shifted_input(const Tensor& features);

}  // namespace okd::distill
