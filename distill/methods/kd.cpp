// The offline KD and AT methods (classic.md §3, §4): frozen teacher, trained student.
#include "distill/methods/kd.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/classic_common.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

Tensor kd_objective(const Tensor& s, const Tensor& t, const Tensor& y, double ce_weight,
                    double kd_weight, double T) {
  KdOptions kd;
  kd.T = T;
  kd.detach_teacher = true;
  return nn::functional::cross_entropy(s, y) * ce_weight + kd_loss(s, t, kd) * kd_weight;
}

Tensor attention_transfer_loss(const std::vector<Tensor>& sm, const std::vector<Tensor>& tm,
                               double beta) {
  OKD_CHECK(sm.size() == tm.size() && !sm.empty(), "attention transfer: the student has ",
            sm.size(), " stage outputs and the teacher ", tm.size(), "; they must match");
  Tensor total;
  for (size_t j = 0; j < sm.size(); ++j) {
    Tensor s = sm[j], t = detach(tm[j]);
    const int64_t hs = s.shape()[2], ws = s.shape()[3], ht = t.shape()[2], wt = t.shape()[3];
    if (hs * ws > ht * wt) s = adaptive_avg_pool2d(s, ht, wt);
    if (ht * wt > hs * ws) t = adaptive_avg_pool2d(t, hs, ws);
    Tensor l = normalized_mse(attention_mean_square(s), attention_mean_square(t));
    total = total.defined() ? total + l : l;
  }
  return total * beta;
}

KdMethod::KdMethod() : KdMethod("0.1", "0.9") {}

KdMethod::KdMethod(const std::string& ce_weight, const std::string& kd_weight) {
  options_.declare("teacher", "",
                   "the teacher: a train_cifar run directory (checkpoints/best/), a checkpoint "
                   "directory or a .safetensors file");
  options_.declare("teacher_arch", "auto", "teacher architecture (auto: from the checkpoint)");
  options_.declare("teacher_network", "net", "which network of the teacher's run to load");
  options_.declare("teacher_shortcut", "auto",
                   "teacher ResNet shortcut A/B (auto: the teacher run's config.toml)");
  options_.declare("T", "4", "distillation temperature");
  options_.declare("ce_weight", ce_weight, "weight of the hard-label CE (1 - alpha)");
  options_.declare("kd_weight", kd_weight, "weight of the T^2 KL term (alpha)");
}

std::string KdMethod::description() const {
  return "KD (Hinton et al.): a frozen pre-trained teacher (--kd.teacher) softens its outputs at "
         "T = 4; the student fits 0.1 CE + 0.9 T^2 KL. Deploys the student.";
}

void KdMethod::build(const BuildContext& ctx) {
  TeacherSpec spec;
  spec.path = options_.get("teacher");
  spec.arch = options_.get("teacher_arch");
  spec.network = options_.get("teacher_network");
  spec.shortcut = options_.get("teacher_shortcut");
  teacher_ = load_teacher(ctx, spec, name());
  student_ = make_method_backbone(ctx, 0);
}

StepResult KdMethod::forward_train(const Batch& batch, const TrainClock&) {
  Tensor zt;
  {
    NoGradGuard no_grad;
    zt = teacher_for(teacher_, batch.images())->forward(batch.images());
  }
  Tensor zs = student_->forward(batch.images());
  const double T = options_.get_double("T");
  KdOptions kd;
  kd.T = T;
  Tensor ce = nn::functional::cross_entropy(zs, batch.labels);
  Tensor kl = kd_loss(zs, zt, kd);
  StepResult r;
  r.loss = ce * options_.get_double("ce_weight") + kl * options_.get_double("kd_weight");
  r.terms = {{"ce", ce}, {"kd", kl}};
  r.logits = {{"student", zs}, {"teacher", zt}};
  return r;
}

std::vector<std::string> KdMethod::members() const { return {"student", "teacher"}; }

std::vector<std::pair<std::string, Tensor>> KdMethod::eval_logits(const Tensor& images) {
  return {{"student", student_->forward(images)},
          {"teacher", teacher_for(teacher_, images)->forward(images)}};
}

std::string KdMethod::variant_summary() const {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "teacher %s (%s, shortcut %c, frozen, eval mode), T %s, ce_weight %s, "
                "kd_weight %s",
                teacher_.file.c_str(), teacher_.arch.c_str(), teacher_.shortcut,
                options_.get("T").c_str(), options_.get("ce_weight").c_str(),
                options_.get("kd_weight").c_str());
  return buf;
}

// ---- AT --------------------------------------------------------------------------------------

AtMethod::AtMethod() : KdMethod("1", "0") {
  options_.declare("beta", "1000", "weight of the attention-transfer term");
}

std::string AtMethod::description() const {
  return "AT (Zagoruyko & Komodakis): the student matches the frozen teacher's normalised "
         "activation attention maps (mean_c F^2) after every stage, beta = 1000, plus CE "
         "(and optionally KD with --at.kd_weight). Deploys the student.";
}

StepResult AtMethod::forward_train(const Batch& batch, const TrainClock&) {
  BackboneOutputs t;
  {
    NoGradGuard no_grad;
    t = run_backbone(*teacher_for(teacher_, batch.images()), batch.images());
  }
  BackboneOutputs s = run_backbone(*student_, batch.images());
  KdOptions kd;
  kd.T = options_.get_double("T");
  Tensor ce = nn::functional::cross_entropy(s.logits, batch.labels);
  Tensor at = attention_transfer_loss(s.stage_outputs, t.stage_outputs, 1.0);
  StepResult r;
  r.loss = ce * options_.get_double("ce_weight") + at * options_.get_double("beta");
  r.terms = {{"ce", ce}, {"at", at}};
  const double kd_weight = options_.get_double("kd_weight");
  if (kd_weight != 0) {
    Tensor kl = kd_loss(s.logits, t.logits, kd);
    r.loss = r.loss + kl * kd_weight;
    r.terms.emplace_back("kd", kl);
  }
  r.logits = {{"student", s.logits}, {"teacher", t.logits}};
  return r;
}

std::string AtMethod::variant_summary() const {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "teacher %s (%s, shortcut %c, frozen, eval mode), beta %s on every stage output "
                "(mean over batch and positions), ce_weight %s, kd_weight %s (T %s)",
                teacher_.file.c_str(), teacher_.arch.c_str(), teacher_.shortcut,
                options_.get("beta").c_str(), options_.get("ce_weight").c_str(),
                options_.get("kd_weight").c_str(), options_.get("T").c_str());
  return buf;
}

// kd and at: the CRD benchmark's recipe (classic.md §3, §4: CIFAR-100, teachers trained alike).
Recipe KdMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "classic.md §3 (CRD benchmark: 240 epochs, batch 64, lr 0.05, x0.1 at 150/180/210)";
  r.epochs = 240;
  r.batch_size = 64;
  r.lr = 0.05;
  r.nesterov = false;
  r.weight_decay = 5e-4;
  r.milestones = std::vector<double>{150, 180, 210};
  return r;
}

}  // namespace okd::distill
