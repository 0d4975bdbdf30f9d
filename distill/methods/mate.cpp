// MATE (reconstructed, seeds.md §4.3):
//   L = sum_i CE(z_i) + sum_k CE(t_k[sg(z)])
//     + lambda(e) sum_i [beta KD(z_i <- t_i) + (1 - beta)/(K - 1) sum_{k != i} KD(z_i <- t_k)]
//   KD: T = 3, batchmean; inside the teachers the exits are detached (teacher_grad_to_exits),
//   while Theta receives the KD gradient (theta_grad_from_kd). lambda = sigmoid_rampup(e, 80).
#include "distill/methods/mate.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

std::vector<Tensor> mate_teachers(const Tensor& theta, const std::vector<Tensor>& exits,
                                  bool detach_exits) {
  const int64_t K = static_cast<int64_t>(exits.size());
  OKD_CHECK(theta.dim() == 2 && theta.shape()[0] == K && theta.shape()[1] == K,
            "mate: theta must be [", K, ", ", K, "], got ", shape_str(theta.shape()));
  std::vector<Tensor> zs;
  for (const auto& z : exits) zs.push_back(detach_exits ? detach(z) : z);
  const Shape logit_shape = exits[0].shape();
  Tensor Z = reshape(stack(zs, 0), {K, -1});    // [K, N*C]
  Tensor mixed = matmul(softmax(theta, 1), Z);  // row k = sum_j softmax(theta_k)_j z_j
  std::vector<Tensor> teachers;
  for (int64_t k = 0; k < K; ++k) teachers.push_back(reshape(select(mixed, 0, k), logit_shape));
  return teachers;
}

MateNet::MateNet(nn::BackbonePtr base, Generator& gen)
    : nn::Module("MateNet"), base_(std::move(base)) {
  register_module("base", base_);
  const int S = base_->num_stages() - 2;  // feature stages
  const int64_t final_width = base_->stage(S).out_channels;
  for (int j = 1; j < S; ++j) {
    // Bring the exit to the final width and resolution: one stride-2 conv per doubling.
    std::vector<int64_t> widths;
    for (int64_t w = base_->stage(j).out_channels; w < final_width;) widths.push_back(w *= 2);
    if (widths.empty()) widths.push_back(final_width);
    exits_.push_back(register_module(
        "exit" + std::to_string(j), std::make_shared<ExitHead>(base_->stage(j).out_channels, widths,
                                                               base_->num_classes(), gen)));
  }
  const int64_t K = num_exits();
  theta = register_parameter("theta", zeros({K, K}));
}

std::vector<Tensor> MateNet::forward(const Tensor& x) {
  const int S = base_->num_stages() - 2;
  std::vector<Tensor> logits;
  Tensor h = base_->run_stage(0, x);
  for (int j = 1; j <= S; ++j) {
    h = base_->run_stage(j, h);
    if (j < S) logits.push_back(exits_[j - 1]->forward(h));
  }
  logits.push_back(base_->run_stage(S + 1, h));
  return logits;
}

MateMethod::MateMethod() {
  options_.declare("T", "3", "distillation temperature [ASSUMPTION]");
  options_.declare("beta", "0.7", "share of the primary teacher, > 1/K [ASSUMPTION]");
  options_.declare("rampup_epochs", "80", "sigmoid ramp-up of the KD terms [ASSUMPTION]");
  options_.declare("theta_grad_from_kd", "true",
                   "the KD terms train Theta (the teacher logits are not detached w.r.t. Theta) "
                   "[ASSUMPTION]");
  options_.declare("teacher_grad_to_exits", "false",
                   "let the teachers' CE and KD reach the exits' logits [ASSUMPTION]");
  options_.declare("theta_wd", "0", "weight decay of Theta");
  options_.declare("shortcut", "B", "ResNet shortcut option ('run' = --shortcut)");
  options_.declare("init", "he_fanout", "weight init ('run' = --init)");
}

std::string MateMethod::description() const {
  return "MATE (RECONSTRUCTED from the abstract: no official code; every choice is an option): "
         "a multi-exit network and K trainable ensemble teachers t_k = sum_j softmax(Theta_k)_j "
         "z_j; each exit learns mainly from its primary teacher. Deploys the final exit.";
}

void MateMethod::build(const BuildContext& ctx) {
  auto base = make_method_backbone(ctx, 0, options_.get("shortcut"), options_.get("init"));
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<MateNet>(base, gen);
  const double beta = options_.get_double("beta");
  OKD_CHECK(beta > 1.0 / net_->num_exits() && beta <= 1.0, "mate.beta must be in (1/K, 1], got ",
            beta);
}

std::vector<ParamGroup> MateMethod::param_groups() const {
  std::vector<Tensor> rest;
  for (const auto& [n, p] : net_->named_parameters())
    if (n != "theta") rest.push_back(p);
  return {ParamGroup{"networks", rest, std::nullopt, std::nullopt},
          ParamGroup{"theta", {net_->theta}, std::nullopt, options_.get_double("theta_wd")}};
}

std::vector<std::string> MateMethod::members() const {
  const int K = net_ ? net_->num_exits() : 3;
  std::vector<std::string> v;
  for (int i = 1; i <= K; ++i) v.push_back("exit" + std::to_string(i));
  for (int i = 1; i <= K; ++i) v.push_back("teacher" + std::to_string(i));
  return v;
}

std::string MateMethod::deployed_member() const {
  return "exit" + std::to_string(net_ ? net_->num_exits() : 3);
}

StepResult MateMethod::loss(const std::vector<Tensor>& z, const Tensor& y, double lambda) const {
  namespace F = nn::functional;
  const int K = static_cast<int>(z.size());
  const bool to_exits = options_.get_bool("teacher_grad_to_exits");
  const double beta = options_.get_double("beta");
  std::vector<Tensor> teachers = mate_teachers(net_->theta, z, !to_exits);
  // The KD terms' teachers. Whether their gradient reaches Theta (theta_grad_from_kd) and whether
  // it reaches the exits (teacher_grad_to_exits) are independent choices, so Theta is detached
  // here rather than the whole teacher (which also cut the exits' path when both were asked).
  const std::vector<Tensor> kd_teachers = options_.get_bool("theta_grad_from_kd")
                                              ? teachers
                                              : mate_teachers(detach(net_->theta), z, !to_exits);
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.detach_teacher = false;
  StepResult r;
  Tensor ce_exits, ce_teachers, kd_total;
  for (int i = 0; i < K; ++i) {
    Tensor ce = F::cross_entropy(z[i], y);
    ce_exits = ce_exits.defined() ? ce_exits + ce : ce;
    r.terms.emplace_back("ce_exit" + std::to_string(i + 1), ce);
    Tensor cet = F::cross_entropy(teachers[i], y);
    ce_teachers = ce_teachers.defined() ? ce_teachers + cet : cet;
    Tensor kd_i;
    for (int k = 0; k < K; ++k) {
      const double w = k == i ? beta : (1 - beta) / (K - 1);
      Tensor t = kd_loss(z[i], kd_teachers[k], kd) * w;
      kd_i = kd_i.defined() ? kd_i + t : t;
    }
    r.terms.emplace_back("kd_exit" + std::to_string(i + 1), kd_i);
    kd_total = kd_total.defined() ? kd_total + kd_i : kd_i;
  }
  r.terms.emplace_back("ce_teachers", ce_teachers);
  r.terms.emplace_back("w_rampup", scalar_term(lambda));
  r.loss = ce_exits + ce_teachers + kd_total * lambda;
  for (int i = 0; i < K; ++i) r.logits.emplace_back("exit" + std::to_string(i + 1), z[i]);
  for (int i = 0; i < K; ++i) r.logits.emplace_back("teacher" + std::to_string(i + 1), teachers[i]);
  return r;
}

StepResult MateMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  const double lambda =
      sigmoid_rampup(static_cast<double>(clock.epoch), options_.get_double("rampup_epochs"));
  return loss(net_->forward(batch.images()), batch.labels, lambda);
}

std::vector<std::pair<std::string, Tensor>> MateMethod::eval_logits(const Tensor& images) {
  auto z = net_->forward(images);
  auto t = mate_teachers(net_->theta, z, true);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t i = 0; i < z.size(); ++i) v.emplace_back("exit" + std::to_string(i + 1), z[i]);
  for (size_t i = 0; i < t.size(); ++i) v.emplace_back("teacher" + std::to_string(i + 1), t[i]);
  return v;
}

std::string MateMethod::variant_summary() const {
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "RECONSTRUCTED design: T %s, beta %s, ramp-up %s epochs, theta_grad_from_kd %s, "
                "teacher_grad_to_exits %s, theta_wd %s",
                options_.get("T").c_str(), options_.get("beta").c_str(),
                options_.get("rampup_epochs").c_str(), options_.get("theta_grad_from_kd").c_str(),
                options_.get("teacher_grad_to_exits").c_str(), options_.get("theta_wd").c_str());
  return buf;
}

Recipe MateMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "seeds.md §4.3 [ASSUMPTION]: the authors' OKDDip defaults";
  r.nesterov = false;
  r.weight_decay = 5e-4;
  return r;
}

}  // namespace okd::distill
