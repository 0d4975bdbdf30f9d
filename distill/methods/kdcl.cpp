// KDCL's ensembles and loss (classic.md §9):
//   L = sum_i [ CE(z_i, y) + lambda T^2 KL_T(sg(z_t) || z_i) ]
#include "distill/methods/kdcl.h"

#include <cmath>
#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "tensor/ops/copy.h"

namespace okd::distill {

namespace {
std::vector<double> as_doubles(const Tensor& t) {
  return to_vector<double>(to(detach(t), DType::Float64));
}
Tensor like(const std::vector<double>& v, const Tensor& ref) {
  return ops::to(to(from_vector<double>(v, ref.shape()), ref.dtype()), ref.device());
}
}  // namespace

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

Tensor kdcl_naive(const std::vector<Tensor>& z, const Tensor& y) {
  NoGradGuard no_grad;
  const int64_t n = z[0].shape()[0], c = z[0].shape()[1];
  auto labels = to_vector<int64_t>(y);
  std::vector<std::vector<double>> zs;
  for (const auto& zi : z) zs.push_back(as_doubles(zi));
  std::vector<double> out(n * c);
  for (int64_t b = 0; b < n; ++b) {
    size_t best = 0;
    double best_ce = INFINITY;
    for (size_t i = 0; i < z.size(); ++i) {
      const double* r = zs[i].data() + b * c;
      double m = r[0];
      for (int64_t k = 1; k < c; ++k) m = std::max(m, r[k]);
      double s = 0;
      for (int64_t k = 0; k < c; ++k) s += std::exp(r[k] - m);
      const double ce = m + std::log(s) - r[labels[b]];
      if (ce < best_ce) best_ce = ce, best = i;  // ties: the first student
    }
    for (int64_t k = 0; k < c; ++k) out[b * c + k] = zs[best][b * c + k];
  }
  return like(out, z[0]);
}

std::vector<double> kdcl_linear_weights(const std::vector<Tensor>& z, const Tensor& y, int steps,
                                        double lr) {
  const size_t m = z.size();
  const int64_t n = z[0].shape()[0], c = z[0].shape()[1];
  auto labels = to_vector<int64_t>(y);
  std::vector<std::vector<double>> zs;
  for (const auto& zi : z) zs.push_back(as_doubles(zi));
  std::vector<double> a(m, 1.0 / static_cast<double>(m)), mix(c), p(c);
  for (int s = 0; s < steps; ++s) {
    // g_i = d CE(sum_j a_j z_j) / d a_i = (1/N) sum_b sum_c (p_bc - e_bc) z_i,bc
    std::vector<double> g(m, 0.0);
    for (int64_t b = 0; b < n; ++b) {
      double mx = -INFINITY;
      for (int64_t k = 0; k < c; ++k) {
        mix[k] = 0;
        for (size_t i = 0; i < m; ++i) mix[k] += a[i] * zs[i][b * c + k];
        mx = std::max(mx, mix[k]);
      }
      double sum = 0;
      for (int64_t k = 0; k < c; ++k) sum += (p[k] = std::exp(mix[k] - mx));
      for (int64_t k = 0; k < c; ++k) {
        const double d = p[k] / sum - (k == labels[b] ? 1.0 : 0.0);
        for (size_t i = 0; i < m; ++i) g[i] += d * zs[i][b * c + k] / static_cast<double>(n);
      }
    }
    double total = 0;
    for (size_t i = 0; i < m; ++i) total += (a[i] *= std::exp(-lr * g[i]));
    for (double& v : a) v /= total;
  }
  return a;
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

Tensor weighted_logits(const std::vector<Tensor>& z, const std::vector<double>& w) {
  NoGradGuard no_grad;
  Tensor t;
  for (size_t i = 0; i < z.size(); ++i) {
    Tensor s = detach(z[i]) * w[i];
    t = t.defined() ? t + s : s;
  }
  return t;
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
  cov_sum_.assign(m * m, 0.0);
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
        z, kdcl_linear_weights(z, y, static_cast<int>(options_.get_int("linear_steps")),
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
    // Accumulate C_ij = mean_k (f_i - e_y).(f_j - e_y) for the next epoch's weights.
    NoGradGuard no_grad;
    const size_t m = z.size();
    const int64_t n = batch.size(), c = z[0].shape()[1];
    auto labels = to_vector<int64_t>(batch.labels);
    std::vector<std::vector<double>> f;
    for (const auto& zi : z) f.push_back(as_doubles(softmax(detach(zi), 1)));
    for (int64_t b = 0; b < n; ++b)
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < m; ++j) {
          double s = 0;
          for (int64_t k = 0; k < c; ++k) {
            const double e = k == labels[b] ? 1.0 : 0.0;
            s += (f[i][b * c + k] - e) * (f[j][b * c + k] - e);
          }
          cov_sum_[i * m + j] += s;
        }
    cov_count_ += static_cast<double>(n);
    for (size_t i = 0; i < m; ++i)
      r.terms.emplace_back("w_net" + std::to_string(i + 1), scalar_term(general_w_[i]));
  }
  return r;
}

void KdclMethod::on_epoch_start(const TrainClock&) {
  if (cov_count_ > 0) {
    std::vector<double> C = cov_sum_;
    for (double& v : C) v /= cov_count_;
    general_w_ = kdcl_general_weights(C, static_cast<int>(nets_.size()));
  }
  std::fill(cov_sum_.begin(), cov_sum_.end(), 0.0);
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
  std::vector<double> cov = cov_sum_;
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
      cov_sum_ = d;
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
