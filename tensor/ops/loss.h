// Raw softmax-family kernels along the last dim of a [R, C] view (other dims are moved/flattened
// by the caller):
//   log_softmax(x)_c = x_c - m - log sum_c' exp(x_c' - m), m = max_c x_c (stable for any logits)
//   backward: dx = dy - softmax(x) * sum_c dy_c.
//   cross_entropy (mean): with coefficients a[i,c] = ((1-eps) w[y_i] [c = y_i] + eps/C w[c]) / D,
//   D = sum_i w[y_i] (N without class weights), loss = -sum_{i,c} a[i,c] log_softmax(x)[i,c] and
//   dx[i,c] = g (softmax[i,c] sum_c' a[i,c'] - a[i,c]) — PyTorch's formulas, label smoothing and
//   class weights included.
//   kd_div (the KD term, student s and teacher t [N, C], temperature T, teacher_eps e):
//   q = softmax(s / T), p = softmax(t / T) + e (not renormalised; log p = log(p + e) when e > 0),
//   row[n] = sum_c p[n,c] (log p[n,c] - log q[n,c]), each row's log-softmaxes max-subtracted, in
//   double. Its student gradient: with d log q_c / d s_j = ([c = j] - q_j) / T,
//   ds[n,j] = g[n] / T (q[n,j] sum_c p[n,c] - p[n,j]), sum_c p = 1 + C e. No teacher gradient.
#pragma once
#include "tensor/tensor.h"

namespace okd::ops {

Tensor log_softmax_lastdim(const Tensor& x);
Tensor log_softmax_lastdim_backward(const Tensor& dy, const Tensor& log_softmax_out);

// logits [N, C], targets int64 [N], class_weights [C] or undefined. Returns the scalar loss.
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double label_smoothing,
                             const Tensor& class_weights);
// d loss / d logits times the upstream gradient g, a 0-dim tensor on logits' device (read by the
// kernel on a GPU: no host synchronisation).
Tensor cross_entropy_backward(const Tensor& g, const Tensor& logits, const Tensor& targets,
                              double label_smoothing, const Tensor& class_weights);

// student, teacher [N, C] (same shape, float dtype and device), T > 0, teacher_eps >= 0.
// Returns the per-row KD divergence [N] in the input dtype.
Tensor kd_div_rows(const Tensor& student, const Tensor& teacher, double T, double teacher_eps);
// d (sum_n g_rows[n] row[n]) / d student, [N, C]; g_rows [N] on the student's device.
Tensor kd_div_backward_student(const Tensor& g_rows, const Tensor& student, const Tensor& teacher,
                               double T, double teacher_eps);

}  // namespace okd::ops
