// KDCL's ensembles and loss (classic.md §9):
//   L = sum_i [ CE(z_i, y) + lambda T^2 KL_T(sg(z_t) || z_i) ]
#include "distill/methods/kdcl.h"

#include <cmath>
#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/reduce.h"

namespace okd::distill {

namespace {
// The logits detached, stacked along `dim` ([m, N, C] for dim 0, [N, m, C] for dim 1).
Tensor stacked(const std::vector<Tensor>& z, int64_t dim) {
  std::vector<Tensor> d;
  for (const auto& zi : z) d.push_back(detach(zi));
  return stack(d, dim);
}
}  // namespace

// Every ensemble is tensor arithmetic on the logits' device, with no host read, so a captured
// step (train_cifar --cuda-graph) can contain it.
Tensor kdcl_minlogit(const std::vector<Tensor>& z, const Tensor& y) {
  NoGradGuard no_grad;
  Tensor idx = reshape(y, {y.numel(), 1});
  Tensor t;
  for (const auto& zi : z) {
    Tensor shifted = detach(zi) - gather(detach(zi), 1, idx);  // own target logit -> 0
    t = t.defined() ? minimum(t, shifted) : shifted;
  }
  return t;
}

// Per sample the student of least CE(z_i, y) = -log_softmax(z_i)[y] (ties: the first student).
Tensor kdcl_naive(const std::vector<Tensor>& z, const Tensor& y) {
  NoGradGuard no_grad;
  const int64_t n = z[0].shape()[0], c = z[0].shape()[1];
  Tensor idx = reshape(y, {n, 1});
  std::vector<Tensor> log_py;  // -CE(z_i, y) per sample: the least CE has the largest log p_y
  for (const auto& zi : z) log_py.push_back(gather(log_softmax(detach(zi), 1), 1, idx));
  Tensor best = ops::argmax(cat(log_py, 1), 1, /*keepdim=*/true);  // [N, 1]
  Tensor pick = expand(reshape(best, {n, 1, 1}), {n, 1, c});
  return reshape(gather(stacked(z, 1), 1, pick), {n, c});
}

// Exponentiated gradient on the simplex from the uniform point, a <- a exp(-lr g) / sum, with
//   g_i = d CE(sum_j a_j z_j) / d a_i = (1/N) sum_b sum_c (p_bc - e_bc) z_i,bc,
// p = softmax(sum_j a_j z_j), e the one-hot labels.
Tensor kdcl_linear_alpha(const std::vector<Tensor>& z, const Tensor& y, int steps, double lr) {
  NoGradGuard no_grad;
  const int64_t m = static_cast<int64_t>(z.size()), n = z[0].shape()[0], c = z[0].shape()[1];
  Tensor zs = stacked(z, 0);  // [m, N, C]
  Tensor e = ops::to(ops::one_hot(y, c, zs.dtype()), zs.device());
  Tensor a = empty({m}, zs.dtype(), zs.device());
  ops::fill_(a, 1.0 / static_cast<double>(m));
  for (int s = 0; s < steps; ++s) {
    Tensor p = softmax(sum(reshape(a, {m, 1, 1}) * zs, {0}), 1);
    Tensor g = sum(zs * unsqueeze(p - e, 0), {1, 2}) * (1.0 / static_cast<double>(n));
    a = a * exp(g * -lr);
    a = a / sum(a);
  }
  return a;
}

std::vector<double> kdcl_linear_weights(const std::vector<Tensor>& z, const Tensor& y, int steps,
                                        double lr) {
  return to_vector<double>(
      ops::to(ops::to(kdcl_linear_alpha(z, y, steps, lr), kCPU), DType::Float64));
}

std::vector<double> kdcl_general_weights(const std::vector<double>& C, int m) {
  // Solve C x = 1 by Gaussian elimination with partial pivoting.
  std::vector<double> A = C, x(m, 1.0);
  const std::vector<double> uniform(m, 1.0 / m);
  for (int col = 0; col < m; ++col) {
    int piv = col;
    for (int r = col + 1; r < m; ++r)
      if (std::fabs(A[r * m + col]) > std::fabs(A[piv * m + col])) piv = r;
    if (std::fabs(A[piv * m + col]) < 1e-12) return uniform;
    if (piv != col) {
      for (int k = 0; k < m; ++k) std::swap(A[col * m + k], A[piv * m + k]);
      std::swap(x[col], x[piv]);
    }
    for (int r = col + 1; r < m; ++r) {
      const double f = A[r * m + col] / A[col * m + col];
      for (int k = col; k < m; ++k) A[r * m + k] -= f * A[col * m + k];
      x[r] -= f * x[col];
    }
  }
  for (int r = m - 1; r >= 0; --r) {
    for (int k = r + 1; k < m; ++k) x[r] -= A[r * m + k] * x[k];
    x[r] /= A[r * m + r];
  }
  double s = 0;
  for (double v : x) s += v;
  if (!std::isfinite(s) || std::fabs(s) < 1e-12) return uniform;
  for (double& v : x) v /= s;
  return x;
}

namespace {
// sum_i w(i) z_i, detached, in order (w(i): a host scalar or a 0-d tensor on the logits' device).
template <class Weight>
Tensor weighted_sum(const std::vector<Tensor>& z, Weight w) {
  NoGradGuard no_grad;
  Tensor t;
  for (size_t i = 0; i < z.size(); ++i) {
    Tensor s = detach(z[i]) * w(i);
    t = t.defined() ? t + s : s;
  }
  return t;
}
}  // namespace

Tensor weighted_logits(const std::vector<Tensor>& z, const std::vector<double>& w) {
  return weighted_sum(z, [&](size_t i) { return w[i]; });
}

Tensor weighted_logits(const std::vector<Tensor>& z, const Tensor& alpha) {
  return weighted_sum(z, [&](size_t i) { return select(alpha, 0, static_cast<int64_t>(i)); });
}

KdclMethod::KdclMethod() {
  options_.declare("students", "2", "number of students m (each on its own augmented view)");
  options_.declare("ensemble", "minlogit", "minlogit | naive | linear | general | mean");
  options_.declare("T", "2", "distillation temperature");
  options_.declare("lambda", "1", "weight of the distillation term");
  options_.declare("linear_steps", "10", "exponentiated-gradient steps of the linear ensemble");
  options_.declare("linear_lr", "1", "exponentiated-gradient step size of the linear ensemble");
  options_.declare("own_views", "true",
                   "each student on its own augmentation (false: all on the first view)");
}

std::string KdclMethod::description() const {
  return "KDCL: m independent students, each on its own augmented view; a detached ensemble of "
         "their logits (MinLogit by default) is distilled into every student (T = 2, lambda 1). "
         "Each student is deployed alone.";
}

void KdclMethod::build(const BuildContext& ctx) {
  const int64_t m = options_.get_int("students");
  OKD_CHECK(m >= 2, "kdcl.students must be at least 2, got ", m);
  const std::string& e = options_.get("ensemble");
  OKD_CHECK(e == "minlogit" || e == "naive" || e == "linear" || e == "general" || e == "mean",
            "kdcl.ensemble must be minlogit, naive, linear, general or mean, got '", e, "'");
  nets_.clear();
  for (int64_t k = 0; k < m; ++k) nets_.push_back(make_method_backbone(ctx, 100 * k));
  general_w_.assign(m, 1.0 / static_cast<double>(m));
  cov_sum_ = zeros({m, m}, DType::Float64, ctx.device);
  cov_count_ = 0;
}

std::vector<std::pair<std::string, nn::ModulePtr>> KdclMethod::networks() const {
  std::vector<std::pair<std::string, nn::ModulePtr>> v;
  for (size_t k = 0; k < nets_.size(); ++k) v.emplace_back("net" + std::to_string(k + 1), nets_[k]);
  return v;
}

int KdclMethod::num_views() const {
  return options_.get_bool("own_views") ? static_cast<int>(options_.get_int("students")) : 1;
}

Tensor KdclMethod::ensemble_target(const std::vector<Tensor>& z, const Tensor& y) const {
  const std::string& e = options_.get("ensemble");
  if (e == "minlogit") return kdcl_minlogit(z, y);
  if (e == "naive") return kdcl_naive(z, y);
  if (e == "linear")
    return weighted_logits(
        z, kdcl_linear_alpha(z, y, static_cast<int>(options_.get_int("linear_steps")),
                             options_.get_double("linear_lr")));
  if (e == "general") return weighted_logits(z, general_w_);
  NoGradGuard no_grad;
  std::vector<Tensor> d;
  for (const auto& zi : z) d.push_back(detach(zi));
  return mean_of(d);
}

StepResult KdclMethod::forward_train(const Batch& batch, const TrainClock&) {
  namespace F = nn::functional;
  const bool own = options_.get_bool("own_views");
  std::vector<Tensor> z;
  for (size_t i = 0; i < nets_.size(); ++i)
    z.push_back(nets_[i]->forward(batch.views.at(own ? i : 0)));
  Tensor target = ensemble_target(z, batch.labels);
  KdOptions kd;
  kd.T = options_.get_double("T");
  const double lambda = options_.get_double("lambda");
  StepResult r;
  for (size_t i = 0; i < z.size(); ++i) {
    Tensor ce = F::cross_entropy(z[i], batch.labels);
    Tensor kl = kd_loss(z[i], target, kd);
    Tensor li = ce + kl * lambda;
    r.loss = r.loss.defined() ? r.loss + li : li;
    r.terms.emplace_back("ce_net" + std::to_string(i + 1), ce);
    r.terms.emplace_back("kl_net" + std::to_string(i + 1), kl);
    r.logits.emplace_back("net" + std::to_string(i + 1), z[i]);
  }
  if (options_.get("ensemble") == "general") {
    // Accumulate C_ij = mean_k (f_i - e_y).(f_j - e_y) for the next epoch's weights, on the
    // device: R = [f_i - e] as rows of m x (N C), C += R R^T (float64).
    NoGradGuard no_grad;
    const int64_t m = static_cast<int64_t>(z.size()), n = batch.size(), c = z[0].shape()[1];
    Tensor f = softmax(stacked(z, 0), 2);  // [m, N, C]
    Tensor e = ops::to(ops::one_hot(batch.labels, c, f.dtype()), f.device());
    Tensor res = ops::to(reshape(f - unsqueeze(e, 0), {m, n * c}), DType::Float64);
    if (cov_sum_.device() != res.device()) cov_sum_ = ops::to(cov_sum_, res.device());
    ops::add_(cov_sum_, matmul(res, transpose(res, 0, 1)));
    cov_count_ += static_cast<double>(n);
    if (cuda::capturing()) cuda::on_replay([this, n] { cov_count_ += static_cast<double>(n); });
    for (size_t i = 0; i < z.size(); ++i)
      r.terms.emplace_back("w_net" + std::to_string(i + 1), scalar_term(general_w_[i]));
  }
  return r;
}

void KdclMethod::on_epoch_start(const TrainClock&) {
  if (cov_count_ > 0) {  // outside any captured step: the host may read
    std::vector<double> C = to_vector<double>(ops::to(cov_sum_, kCPU));
    for (double& v : C) v /= cov_count_;
    general_w_ = kdcl_general_weights(C, static_cast<int>(nets_.size()));
  }
  ops::fill_(cov_sum_, 0.0);
  cov_count_ = 0;
}

std::vector<std::string> KdclMethod::members() const {
  std::vector<std::string> v;
  const int64_t m = options_.get_int("students");
  for (int64_t k = 1; k <= m; ++k) v.push_back("net" + std::to_string(k));
  v.push_back("mean");
  return v;
}

std::vector<std::pair<std::string, Tensor>> KdclMethod::eval_logits(const Tensor& images) {
  // The label-based ensembles need the labels; at test time the students' logit mean is shown.
  std::vector<std::pair<std::string, Tensor>> v;
  std::vector<Tensor> z;
  for (size_t k = 0; k < nets_.size(); ++k) {
    z.push_back(nets_[k]->forward(images));
    v.emplace_back("net" + std::to_string(k + 1), z.back());
  }
  v.emplace_back("mean", mean_of(z));
  return v;
}

nn::NamedTensors KdclMethod::extra_state() const {
  const int64_t m = static_cast<int64_t>(general_w_.size());
  std::vector<double> cov = to_vector<double>(ops::to(cov_sum_, kCPU));
  cov.push_back(cov_count_);
  return {{"general_weights", from_vector<double>(general_w_, {m})},
          {"cov_sum_and_count", from_vector<double>(cov, {m * m + 1})}};
}

void KdclMethod::load_extra_state(const nn::NamedTensors& state) {
  for (const auto& [k, v] : state) {
    if (k == "general_weights") general_w_ = to_vector<double>(v);
    if (k == "cov_sum_and_count") {
      auto d = to_vector<double>(v);
      cov_count_ = d.back();
      d.pop_back();
      const int64_t m = static_cast<int64_t>(nets_.size());
      OKD_CHECK(static_cast<int64_t>(d.size()) == m * m, "kdcl: the checkpoint's covariance has ",
                d.size(), " entries, expected ", m * m);
      cov_sum_ = ops::to(from_vector<double>(d, {m, m}), cov_sum_.device());
    }
  }
}

std::string KdclMethod::variant_summary() const {
  char buf[300];
  std::snprintf(buf, sizeof buf, "m %s, ensemble %s%s, T %s, lambda %s, own_views %s",
                options_.get("students").c_str(), options_.get("ensemble").c_str(),
                options_.get("ensemble") == "general"
                    ? " (C from the previous epoch's training batches, not a held-out split)"
                    : "",
                options_.get("T").c_str(), options_.get("lambda").c_str(),
                options_.get("own_views").c_str());
  return buf;
}

}  // namespace okd::distill
