// FFSD's networks and its iteration (seeds.md §5.3), T = 2, KD batchmean with detached teachers,
// a = att_meansq, AL = mean((l2n(x) - l2n(y))^2), lambdas warmed up over epochs 1..5:
//   student i: CE(z_i) + 1/(M-1) sum_{j != i} KD(z_i <- z_j)
//              [i >= 2: + l_div DIV(a(F_i3), a(sg F_{i-1,3})) + w_sd SDL(D_i, F_i, DT(sg
//              F_{i-1,3}))]
//   fusion:    CE(z_F) + KD(z_F <- (z_1 + ... + z_M)/M)            (input: sg of the students'
//   maps) leader:    CE(z_L) + KD(z_L <- z_F) + l_fus [AL(a(L3), sg a(G)) + AL(a(Tr_L), a(X))
//              + SDL(D_L, L, sg G)]
//   decoders:  l_sd sum_k [AL(R_k, sg F_k) + AL(a(R_k), a(sg F_k))],  R = D(sg F_last) (train mode)
//   SDL(D, F, in) = sum_k AL(a(F_k), sg a(R_k)),  R = D(in) in eval mode.
#include "distill/methods/ffsd.h"

#include <cstdio>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/blocks/schedules.h"
#include "distill/methods/common.h"
#include "nn/functional.h"

namespace okd::distill {

FfsdLeader::FfsdLeader(nn::BackbonePtr b, int64_t students, Generator& gen)
    : nn::Module("FfsdLeader"), base(std::move(b)) {
  register_module("base", base);
  const int64_t c = base->stage(base->num_stages() - 2).out_channels;
  transfusion =
      register_module("transfusion", std::make_shared<SeparableConvBlock>(c, students * c, gen));
}

FfsdMethod::FfsdMethod() {
  options_.declare("num_students", "2", "common students (plus one leader)");
  options_.declare("T", "2", "distillation temperature");
  options_.declare("lambda_div", "1e-5", "diversity weight (warmed up over epochs 1..5)");
  options_.declare("lambda_sd", "1000", "decoder (self-distillation) weight (warmed up)");
  options_.declare("lambda_fusion", "10", "leader feature-fusion weight (warmed up)");
  options_.declare("student_sd_weight", "lambda_div",
                   "weight of the students' self-distillation term; the reference uses "
                   "lambda_div [REF-QUIRK]; a number is warmed up like the lambdas");
  options_.declare("warmup_epochs", "5", "warm-up length of the lambdas (epochs from 1)");
  options_.declare("fusion_wd", "1e-5", "weight decay of the fusion module");
  options_.declare("decoder_lr", "1e-3", "Adam lr of the decoders (follows the lr schedule)");
  options_.declare("decoder_wd", "1e-4", "Adam weight decay (coupled L2) of the decoders");
  options_.declare("shortcut", "B", "ResNet shortcut option ('run' = --shortcut)");
  options_.declare("init", "he_fanout", "weight init ('run' = --init)");
}

std::string FfsdMethod::description() const {
  return "FFSD: two common students (DML, T = 2), a fusion module on their detached feature maps, "
         "a leader taught by the fused prediction and maps, a diversity loss and transposed-conv "
         "self-distillation decoders. Deploys the leader.";
}

void FfsdMethod::build(const BuildContext& ctx) {
  const int M = static_cast<int>(options_.get_int("num_students"));
  OKD_CHECK(M >= 2, "ffsd.num_students must be at least 2, got ", M);
  students_.clear();
  student_decoders_.clear();
  for (int i = 0; i < M; ++i)
    students_.push_back(
        make_method_backbone(ctx, 100 * i, options_.get("shortcut"), options_.get("init")));
  Generator gen(ctx.seed + 1000);
  leader_ = std::make_shared<FfsdLeader>(
      make_method_backbone(ctx, 100 * M, options_.get("shortcut"), options_.get("init")), M, gen);
  const auto& b = students_[0];
  const int S = b->num_stages() - 2;
  const int64_t c = b->stage(S).out_channels;
  fusion_ = std::make_shared<FusionModule>(M * c, c, ctx.num_classes, gen);
  decoders_ = std::make_shared<nn::Module>("FfsdDecoders");
  for (int i = 1; i < M; ++i)
    student_decoders_.push_back(decoders_->register_module(
        "student" + std::to_string(i + 1), std::make_shared<SelfDistillDecoder>(c, S - 1, gen)));
  leader_decoder_ =
      decoders_->register_module("leader", std::make_shared<SelfDistillDecoder>(c, S - 1, gen));
  optim::AdamOptions ao;
  ao.lr = options_.get_double("decoder_lr");
  ao.weight_decay = options_.get_double("decoder_wd");
  decoder_opt_ = std::make_unique<optim::Adam>(decoders_->parameters(), ao);
}

std::vector<std::pair<std::string, nn::ModulePtr>> FfsdMethod::networks() const {
  std::vector<std::pair<std::string, nn::ModulePtr>> v;
  for (size_t i = 0; i < students_.size(); ++i)
    v.emplace_back("student" + std::to_string(i + 1), students_[i]);
  v.emplace_back("leader", leader_);
  v.emplace_back("fusion", fusion_);
  v.emplace_back("decoders", decoders_);
  return v;
}

std::vector<ParamGroup> FfsdMethod::param_groups() const {
  std::vector<Tensor> nets;
  for (const auto& s : students_)
    for (auto& p : s->parameters()) nets.push_back(p);
  for (auto& p : leader_->parameters()) nets.push_back(p);
  return {
      ParamGroup{"networks", nets, std::nullopt, std::nullopt},
      ParamGroup{"fusion", fusion_->parameters(), std::nullopt, options_.get_double("fusion_wd")}};
}

namespace {
Tensor att(const Tensor& f) { return attention_mean_square(f); }

// SDL(D, taps, input): the decoder in eval mode makes targets (no gradient) for the taps.
Tensor self_distill_loss(SelfDistillDecoder& dec, const std::vector<Tensor>& taps,
                         const Tensor& input) {
  std::vector<Tensor> rec;
  {
    NoGradGuard no_grad;
    const bool was_training = dec.is_training();
    dec.train(false);
    rec = dec.forward(detach(input));
    dec.train(was_training);
  }
  Tensor total;
  for (size_t k = 0; k < rec.size(); ++k) {
    Tensor t = normalized_mse(att(taps[k]), att(rec[k]));
    total = total.defined() ? total + t : t;
  }
  return total;
}

// The decoder's own loss (train mode) against its network's detached taps.
Tensor decoder_loss(SelfDistillDecoder& dec, const std::vector<Tensor>& taps, const Tensor& last) {
  std::vector<Tensor> rec = dec.forward(detach(last));
  Tensor total;
  for (size_t k = 0; k < rec.size(); ++k) {
    Tensor target = detach(taps[k]);
    Tensor t = normalized_mse(rec[k], target) + normalized_mse(att(rec[k]), att(target));
    total = total.defined() ? total + t : t;
  }
  return total;
}

Tensor add_to(const Tensor& acc, const Tensor& t) { return acc.defined() ? acc + t : t; }

// [stem, stage 1, ..., stage S-1, last feature map, logits]: the last map is stage S's output
// through the head's layers before the pool (WRN's final BN-ReLU, as FFSD taps it).
std::vector<Tensor> feature_taps(nn::Backbone& b, const Tensor& x) {
  const int S = b.num_stages() - 2;
  std::vector<Tensor> t;
  Tensor y = x;
  for (int i = 0; i <= S; ++i) t.push_back(y = b.run_stage(i, y));
  t[S] = b.head_features(t[S]);
  t.push_back(b.head_classify(t[S]));
  return t;
}
}  // namespace

FfsdMethod::Losses FfsdMethod::compute(const Batch& batch, int64_t epoch, StepResult* r) {
  namespace F = nn::functional;
  const Tensor& x = batch.images();
  const Tensor& y = batch.labels;
  const int M = static_cast<int>(students_.size());
  const int S = students_[0]->num_stages() - 2;
  const double warm =
      ffsd_warmup(static_cast<double>(epoch + 1), options_.get_double("warmup_epochs"));
  const double l_div = options_.get_double("lambda_div") * warm;
  const double l_sd = options_.get_double("lambda_sd") * warm;
  const double l_fus = options_.get_double("lambda_fusion") * warm;
  const std::string& ssw = options_.get("student_sd_weight");
  const double w_ssd =
      ssw == "lambda_div" ? l_div : options_.get_double("student_sd_weight") * warm;
  KdOptions kd;
  kd.T = options_.get_double("T");
  kd.detach_teacher = true;

  // 1-2. Forward passes: taps[s] = output of stage s (0 = stem, S+1 = logits).
  std::vector<Tensor> lt = feature_taps(*leader_->base, x);
  Tensor z_leader = lt[S + 1];
  Tensor trans = leader_->transfusion->forward(lt[S]);
  std::vector<std::vector<Tensor>> st;
  std::vector<Tensor> z, fused_inputs;
  for (auto& s : students_) {
    st.push_back(feature_taps(*s, x));
    z.push_back(st.back()[S + 1]);
    fused_inputs.push_back(detach(st.back()[S]));
  }
  Tensor X = cat(fused_inputs, 1);
  FusionModule::Output fm = fusion_->forward(fused_inputs);
  Tensor z_avg = mean_of(z);

  Losses L;
  // 3. Students.
  for (int i = 0; i < M; ++i) {
    const std::string tag = "s" + std::to_string(i + 1);
    Tensor ce = F::cross_entropy(z[i], y), dml;
    for (int j = 0; j < M; ++j)
      if (j != i) dml = add_to(dml, kd_loss(z[i], z[j], kd));
    dml = dml * (1.0 / (M - 1));
    Tensor li = ce + dml;
    r->terms.emplace_back("ce_" + tag, ce);
    r->terms.emplace_back("dml_" + tag, dml);
    if (i >= 1) {
      Tensor prev = detach(st[i - 1][S]);
      Tensor div = diversity_loss(att(st[i][S]), att(prev));
      std::vector<Tensor> taps(st[i].begin() + 1, st[i].begin() + S);
      Tensor sd = self_distill_loss(*student_decoders_[i - 1], taps, diversity_shifted_input(prev));
      li = li + div * l_div + sd * w_ssd;
      r->terms.emplace_back("div_" + tag, div);
      r->terms.emplace_back("sd_" + tag, sd);
    }
    L.students = add_to(L.students, li);
  }
  // 4. Fusion module (its input is detached).
  Tensor ce_f = F::cross_entropy(fm.logits, y), kd_f = kd_loss(fm.logits, z_avg, kd);
  L.fusion = ce_f + kd_f;
  r->terms.emplace_back("ce_fusion", ce_f);
  r->terms.emplace_back("kd_fusion", kd_f);
  // 5. Leader.
  Tensor ce_l = F::cross_entropy(z_leader, y), kd_l = kd_loss(z_leader, fm.logits, kd);
  Tensor att_l = normalized_mse(att(lt[S]), detach(att(fm.fused_map)));
  Tensor trans_l = normalized_mse(att(trans), att(X));
  std::vector<Tensor> ltaps(lt.begin() + 1, lt.begin() + S);
  Tensor sd_l = self_distill_loss(*leader_decoder_, ltaps, fm.fused_map);
  L.leader = ce_l + kd_l + (att_l + trans_l + sd_l) * l_fus;
  r->terms.emplace_back("ce_leader", ce_l);
  r->terms.emplace_back("kd_leader", kd_l);
  r->terms.emplace_back("att_leader", att_l);
  r->terms.emplace_back("trans_leader", trans_l);
  r->terms.emplace_back("sd_leader", sd_l);
  // 6. Decoders, on the activations of the forward passes above.
  Tensor dec;
  for (int i = 1; i < M; ++i) {
    std::vector<Tensor> taps(st[i].begin() + 1, st[i].begin() + S);
    dec = add_to(dec, decoder_loss(*student_decoders_[i - 1], taps, st[i][S]));
  }
  dec = add_to(dec, decoder_loss(*leader_decoder_, ltaps, lt[S]));
  L.decoders = dec * l_sd;
  r->terms.emplace_back("decoders", dec);
  r->terms.emplace_back("w_warmup", scalar_term(warm));

  for (int i = 0; i < M; ++i) r->logits.emplace_back("student" + std::to_string(i + 1), z[i]);
  r->logits.emplace_back("ensemble", z_avg);
  r->logits.emplace_back("fusion", fm.logits);
  r->logits.emplace_back("leader", z_leader);
  r->loss = L.students + L.fusion + L.leader + L.decoders;
  return L;
}

StepResult FfsdMethod::forward_train(const Batch& batch, const TrainClock& clock) {
  StepResult r;
  compute(batch, clock.epoch, &r);
  return r;
}

void FfsdMethod::update(StepResult& result, optim::Optimizer& main, const TrainClock& clock) {
  main.zero_grad();
  decoder_opt_->zero_grad();
  backward(result.loss);
  main.step();
  for (auto& g : decoder_opt_->param_groups())
    g.lr = options_.get_double("decoder_lr") * clock.lr_factor;
  decoder_opt_->step();
}

std::vector<std::string> FfsdMethod::members() const {
  std::vector<std::string> v;
  const int64_t M = students_.empty() ? options_.get_int("num_students") : students_.size();
  for (int64_t i = 1; i <= M; ++i) v.push_back("student" + std::to_string(i));
  v.insert(v.end(), {"ensemble", "fusion", "leader"});
  return v;
}

std::vector<std::pair<std::string, Tensor>> FfsdMethod::eval_logits(const Tensor& images) {
  const int S = students_[0]->num_stages() - 2;
  std::vector<std::pair<std::string, Tensor>> v;
  std::vector<Tensor> z, maps;
  for (size_t i = 0; i < students_.size(); ++i) {
    auto taps = feature_taps(*students_[i], images);
    z.push_back(taps[S + 1]);
    maps.push_back(taps[S]);
    v.emplace_back("student" + std::to_string(i + 1), taps[S + 1]);
  }
  v.emplace_back("ensemble", mean_of(z));
  v.emplace_back("fusion", fusion_->forward(maps).logits);
  v.emplace_back("leader", leader_->base->forward(images));
  return v;
}

nn::NamedTensors FfsdMethod::extra_state() const {
  nn::NamedTensors s;
  for (auto& [k, v] : decoder_opt_->state_dict()) s.emplace_back("decoder_opt." + k, v);
  return s;
}

void FfsdMethod::load_extra_state(const nn::NamedTensors& state) {
  nn::NamedTensors opt;
  for (const auto& [k, v] : state)
    if (k.rfind("decoder_opt.", 0) == 0) opt.emplace_back(k.substr(12), v);
  decoder_opt_->load_state_dict(opt);
}

std::string FfsdMethod::variant_summary() const {
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "students %s, T %s, lambda_div %s, lambda_sd %s, lambda_fusion %s, "
                "student_sd_weight %s, fusion_wd %s, decoders Adam lr %s wd %s; one summed "
                "backward (equivalent to the reference order: every cross term is detached)",
                options_.get("num_students").c_str(), options_.get("T").c_str(),
                options_.get("lambda_div").c_str(), options_.get("lambda_sd").c_str(),
                options_.get("lambda_fusion").c_str(), options_.get("student_sd_weight").c_str(),
                options_.get("fusion_wd").c_str(), options_.get("decoder_lr").c_str(),
                options_.get("decoder_wd").c_str());
  return buf;
}

Recipe FfsdMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "seeds.md §5.4 (official code: epochs 1..299)";
  r.epochs = 299;
  r.nesterov = true;
  r.weight_decay = 1e-4;
  r.padding = "reflect";
  return r;
}

}  // namespace okd::distill
