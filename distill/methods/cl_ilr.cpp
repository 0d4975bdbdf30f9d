// CL-ILR's head tree, rescaling and loss (classic.md §7):
//   paper:  L = sum_h [ beta CE(z_h) + (1 - beta) T^2 KL_T(sg(t_h) || z_h) ]
//   okddip: L = sum_h CE(z_h) + w(e) sum_h T^2 KL_T(t_h || z_h)
#include "distill/methods/cl_ilr.h"

#include <algorithm>
#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/classic_common.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

std::vector<Tensor> clilr_targets(const std::vector<Tensor>& z) {
  OKD_CHECK(z.size() >= 2, "clilr_targets: need at least 2 heads, got ", z.size());
  std::vector<Tensor> t;
  for (size_t h = 0; h < z.size(); ++h) {
    std::vector<Tensor> others;
    for (size_t j = 0; j < z.size(); ++j)
      if (j != h) others.push_back(z[j]);
    t.push_back(mean_of(others));
  }
  return t;
}

ClIlrNet::ClIlrNet(nn::BackbonePtr base, bool hierarchical, int heads, bool rescale, Generator& gen)
    : nn::Module("ClIlrNet"), base_(std::move(base)), rescale_(rescale) {
  const int K = base_->num_stages();
  OKD_CHECK(heads >= 2, "cl-ilr: need at least 2 heads, got ", heads);
  OKD_CHECK(!hierarchical || heads % 2 == 0,
            "cl-ilr: the hierarchical tree needs an even number "
            "of heads, got ",
            heads);
  OKD_CHECK(K >= (hierarchical ? 5 : 4), "cl-ilr: the backbone has too few stages (", K, ")");
  register_module("base", base_);
  const int mid = K - 3, last = K - 2;  // stage indices (the head is K - 1)
  trunk_end_ = hierarchical ? mid : last;
  // Copy c of stage s: the backbone's own layers for c = 0, a fresh copy registered as
  // "<prefix><c>.<child>" otherwise.
  auto copy_of = [&](int s, int c, const std::string& prefix) -> Layers {
    if (c == 0) return base_->stage(s).layers;
    auto fresh = base_->make_stage(s, gen);
    auto holder_name = prefix + std::to_string(c);
    std::shared_ptr<nn::Module> holder;
    for (const auto& [n, m] : named_children())
      if (n == holder_name) holder = m;
    if (!holder) holder = register_module(holder_name, std::make_shared<nn::Module>("Copy"));
    for (const auto& [name, layer] : fresh->items()) {
      if (layer->named_parameters().empty() && layer->named_buffers().empty()) continue;
      std::string child = name;  // DenseNet's "features.denseblock2": no '.' in a child name
      std::replace(child.begin(), child.end(), '.', '_');
      holder->register_module(child, layer);
    }
    return fresh->items();
  };
  if (hierarchical) {
    for (int c = 0; c < 2; ++c) mids_.push_back({copy_of(mid, c, "mid")});
  }
  for (int h = 0; h < heads; ++h) {
    std::vector<Layers> stages;
    for (int s = last; s < K; ++s) stages.push_back(copy_of(s, h, "head"));
    heads_.push_back(stages);
  }
}

Tensor ClIlrNet::run(const std::vector<Layers>& stages, const Tensor& x) {
  Tensor y = x;
  for (const auto& st : stages)
    for (const auto& [n, l] : st) y = l->forward(y);
  return y;
}

std::vector<Tensor> ClIlrNet::forward(const Tensor& x) {
  const int H = num_heads();
  Tensor h = base_->run_stages(0, trunk_end_ - 1, x);
  std::vector<Tensor> z;
  if (hierarchical()) {
    const int per_mid = H / 2;
    if (rescale_) h = grad_rescale(h, 2);
    for (int m = 0; m < 2; ++m) {
      Tensor f = run(mids_[m], h);
      if (rescale_) f = grad_rescale(f, per_mid);
      for (int k = 0; k < per_mid; ++k) z.push_back(run(heads_[m * per_mid + k], f));
    }
  } else {
    if (rescale_) h = grad_rescale(h, H);
    for (int k = 0; k < H; ++k) z.push_back(run(heads_[k], h));
  }
  return z;
}

ClIlrMethod::ClIlrMethod() {
  options_.declare("variant", "paper",
                   "paper: beta CE + (1 - beta) T^2 KL to the detached mean of the other heads; "
                   "okddip: the OKDDip authors' re-implementation (CE + ramped KL, not detached)");
  options_.declare("heads", "4", "number of heads H");
  options_.declare("layout", "auto",
                   "hierarchical (tree 1-2-4) | simple (split at the last stage); auto: "
                   "hierarchical for paper, simple for okddip");
  options_.declare("T", "auto", "temperature; auto: 2 (paper) or 3 (okddip)");
  options_.declare("beta", "0.5", "paper variant: weight of the CE (the KL gets 1 - beta)");
  options_.declare("detach", "auto", "stop-gradient on the targets; auto: paper yes, okddip no");
  options_.declare("rampup_epochs", "80", "okddip variant: sigmoid ramp-up of the KL");
  options_.declare("rescale", "true", "backpropagation rescaling of the shared layers");
}

std::string ClIlrMethod::description() const {
  return "CL-ILR: 4 heads sharing low-level stages in a 1-2-4 tree with backpropagation "
         "rescaling; each head learns from the labels and the detached mean logits of the "
         "other heads (beta 0.5, T 2). Deploys head 1.";
}

double ClIlrMethod::temperature() const {
  const std::string& t = options_.get("T");
  return t == "auto" ? (okddip_variant() ? 3.0 : 2.0) : options_.get_double("T");
}
bool ClIlrMethod::detach_targets() const {
  const std::string& d = options_.get("detach");
  return d == "auto" ? !okddip_variant() : options_.get_bool("detach");
}
std::string ClIlrMethod::layout() const {
  const std::string& l = options_.get("layout");
  return l == "auto" ? (okddip_variant() ? "simple" : "hierarchical") : l;
}

void ClIlrMethod::build(const BuildContext& ctx) {
  const std::string& v = options_.get("variant");
  OKD_CHECK(v == "paper" || v == "okddip", "cl-ilr.variant must be paper or okddip, got '", v, "'");
  const std::string l = layout();
  OKD_CHECK(l == "hierarchical" || l == "simple",
            "cl-ilr.layout must be hierarchical, simple or auto, got '", l, "'");
  auto base = make_method_backbone(ctx, 0);
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<ClIlrNet>(base, l == "hierarchical",
                                    static_cast<int>(options_.get_int("heads")),
                                    options_.get_bool("rescale"), gen);
}

StepResult ClIlrMethod::loss(const std::vector<Tensor>& z, const Tensor& y, int64_t epoch) const {
  namespace F = nn::functional;
  KdOptions kd;
  kd.T = temperature();
  kd.detach_teacher = detach_targets();
  const bool okd = okddip_variant();
  const double beta = options_.get_double("beta");
  const double w =
      okd ? sigmoid_rampup(static_cast<double>(epoch), options_.get_double("rampup_epochs")) : 1.0;
  const double ce_w = okd ? 1.0 : beta, kl_w = okd ? w : 1.0 - beta;
  auto targets = clilr_targets(z);
  StepResult r;
  Tensor ce_sum, kl_sum;
  for (size_t h = 0; h < z.size(); ++h) {
    Tensor ce = F::cross_entropy(z[h], y);
    Tensor kl = kd_loss(z[h], targets[h], kd);
    ce_sum = ce_sum.defined() ? ce_sum + ce : ce;
    kl_sum = kl_sum.defined() ? kl_sum + kl : kl;
    r.terms.emplace_back("ce_head" + std::to_string(h + 1), ce);
    r.logits.emplace_back("head" + std::to_string(h + 1), z[h]);
  }
  r.loss = ce_sum * ce_w + kl_sum * kl_w;
  r.terms.emplace_back("kl", kl_sum);
  if (okd) r.terms.emplace_back("w_rampup", scalar_term(w));
  r.logits.emplace_back("ensemble", mean_of(z));
  return r;
}

StepResult ClIlrMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  return loss(net_->forward(batch.images()), batch.labels, clock.epoch);
}

std::vector<std::string> ClIlrMethod::members() const {
  std::vector<std::string> v;
  const int64_t H = options_.get_int("heads");
  for (int64_t h = 1; h <= H; ++h) v.push_back("head" + std::to_string(h));
  v.push_back("ensemble");
  return v;
}

std::vector<std::pair<std::string, Tensor>> ClIlrMethod::eval_logits(const Tensor& images) {
  auto z = net_->forward(images);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t h = 0; h < z.size(); ++h) v.emplace_back("head" + std::to_string(h + 1), z[h]);
  v.emplace_back("ensemble", mean_of(z));
  return v;
}

std::string ClIlrMethod::variant_summary() const {
  char buf[300];
  const std::string ramp =
      okddip_variant() ? ", KL ramp-up " + options_.get("rampup_epochs") + " epochs" : "";
  std::snprintf(buf, sizeof buf,
                "variant %s, %s heads, layout %s, T %g, beta %s, detach %s, rescale %s%s",
                options_.get("variant").c_str(), options_.get("heads").c_str(), layout().c_str(),
                temperature(), okddip_variant() ? "n/a" : options_.get("beta").c_str(),
                detach_targets() ? "yes" : "no", options_.get("rescale").c_str(), ramp.c_str());
  return buf;
}

}  // namespace okd::distill
