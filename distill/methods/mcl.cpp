// MCL-OKD (classic.md §13):
//   L = gamma sum_i CE(z_i) + alpha KD(z_m <- sg(mean_i z_i); T = 3) + beta L_MCL
//   L_MCL = sum over ordered branch pairs (i, j), i != j, of NCE(P^{i->j}),
//   s^{i->j}_{b,k} = exp(<M_i[idx_{b,k}], v_{j,b}> / tau),  P = s / sg(mean(s) N),
//   idx_b = [n_b, K negatives of other classes].
// The step reads nothing on the host (capturable): the negatives are drawn with tensor ops from
// the method's generator (sample_indices) and the banks are updated in place on the device.
#include "distill/methods/mcl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "autograd/functions.h"
#include "distill/blocks/losses.h"
#include "distill/methods/common.h"
#include "nn/functional.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/view.h"

namespace okd::distill {

Tensor mcl_nce_loss(const Tensor& P, int64_t N, double eps) {
  OKD_CHECK(P.dim() == 2 && P.shape()[1] >= 2, "mcl_nce_loss: scores must be [B, K+1], got ",
            shape_str(P.shape()));
  const int64_t B = P.shape()[0], K = P.shape()[1] - 1;
  const double noise = static_cast<double>(K) / static_cast<double>(N);
  Tensor pos = narrow(P, 1, 0, 1), neg = narrow(P, 1, 1, K);
  Tensor log_pos = log(pos / (pos + (noise + eps)));
  Tensor log_neg = log(rdiv(noise, neg + (noise + eps)));
  return (sum(log_pos) + sum(log_neg)) * (-1.0 / static_cast<double>(B));
}

void mcl_memory_update(const Tensor& bank, const Tensor& indices, const Tensor& v, double m) {
  NoGradGuard no_grad;
  Tensor rows = index_select(bank, 0, indices);
  Tensor mixed = rows * m + detach(v) * (1 - m);
  Tensor normed = mixed / norm(mixed, 2.0, {1}, true);
  if (bank.device().is_cuda()) {
    // new[n] = normed[b] where n = idx_b (0 + x is exact: the indices are distinct), hit[n] = 1
    // there; bank <- where(hit, new, bank), written into the bank itself (a captured step replays
    // on the same memory).
    const int64_t B = indices.numel(), N = bank.shape()[0], D = bank.shape()[1];
    Tensor idx = ops::reshape(indices, {B, 1});
    Tensor fresh = ops::scatter_add(zeros({N, D}, bank.dtype(), bank.device()), 0,
                                    ops::contiguous(ops::expand(idx, {B, D})), normed);
    Tensor hit = ops::scatter_add(zeros({N, 1}, bank.dtype(), bank.device()), 0, idx,
                                  ones({B, 1}, bank.dtype(), bank.device()));
    ops::copy_(bank, ops::where(ops::gt(hit, 0.0), fresh, bank));
    return;
  }
  auto idx = to_vector<int64_t>(indices);  // host memory: no synchronisation
  for (size_t b = 0; b < idx.size(); ++b)
    ops::copy_(select(bank, 0, idx[b]), select(normed, 0, static_cast<int64_t>(b)));
}

MclMethod::MclMethod() : neg_gen_(0) {
  options_.declare("branches", "4", "branches after the shared stem + stage 1");
  options_.declare("split_stage", "2", "first stage copied per branch (2: after stage 1)");
  options_.declare("embed_dim", "128", "embedding dimension");
  options_.declare("negatives", "256", "K negatives per sample, from other classes (README value)");
  options_.declare("tau", "0.1", "temperature of the contrastive scores");
  options_.declare("bank_momentum", "0.5", "memory-bank momentum");
  options_.declare("T", "3", "temperature of DOT");
  options_.declare("alpha", "1", "weight of DOT");
  options_.declare("beta", "0.025", "weight of the contrastive loss");
  options_.declare("gamma", "1", "weight of the cross-entropy terms");
  options_.declare("shortcut", "B", "ResNet shortcut option ('run' = --shortcut)");
  options_.declare("init", "he_fanout", "weight init ('run' = --init)");
}

std::string MclMethod::description() const {
  return "MCL-OKD: 4 branches after stem + stage 1, embedding heads and memory banks; branches "
         "contrast each other's bank embeddings of the same image against other classes' (NCE), "
         "and the mean logits teach the last branch (DOT), which is deployed.";
}

void MclMethod::build(const BuildContext& ctx) {
  const int m = static_cast<int>(options_.get_int("branches"));
  OKD_CHECK(m >= 2, "mcl.branches must be at least 2, got ", m);
  OKD_CHECK(ctx.train_labels.defined() && ctx.train_labels.numel() > 0,
            "mcl needs the training labels (its memory bank has a row per training image)");
  train_labels_ = ctx.train_labels;
  auto base = make_method_backbone(ctx, 0, options_.get("shortcut"), options_.get("init"));
  Generator gen(ctx.seed + 1000);
  net_ = std::make_shared<BranchedNet>(base, static_cast<int>(options_.get_int("split_stage")), m,
                                       gen);
  const int64_t d = base->feature_dim(), dim = options_.get_int("embed_dim");
  embed_ = std::make_shared<nn::ModuleList>();
  for (int i = 0; i < m; ++i) embed_->push_back(std::make_shared<nn::Linear>(d, dim, gen));
  // Banks U(-s, s) with s = 1/sqrt(dim/3), as CRD's memory.
  const int64_t N = train_labels_.numel();
  const double s = 1.0 / std::sqrt(static_cast<double>(dim) / 3.0);
  memory_ = std::make_shared<nn::Module>("MemoryBanks");
  banks_.clear();
  for (int i = 0; i < m; ++i)
    banks_.push_back(
        memory_->register_buffer("bank" + std::to_string(i), uniform({N, dim}, -s, s, gen)));
  // The sampler's tables: the dataset indices sorted by class (stable), each class's range.
  Tensor labels_cpu = ops::to(train_labels_, kCPU);
  auto labels = to_vector<int64_t>(labels_cpu);
  int64_t classes = ctx.num_classes;
  for (int64_t y : labels) {
    OKD_CHECK(y >= 0, "mcl: training label ", y, " is negative");
    classes = std::max(classes, y + 1);
  }
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return labels[static_cast<size_t>(a)] < labels[static_cast<size_t>(b)];
  });
  std::vector<double> count(static_cast<size_t>(classes), 0.0), start(count.size(), 0.0);
  for (int64_t y : labels) count[static_cast<size_t>(y)] += 1;
  for (size_t c = 1; c < count.size(); ++c) start[c] = start[c - 1] + count[c - 1];
  for (size_t c = 0; c < count.size(); ++c)
    OKD_CHECK(count[c] < static_cast<double>(N), "mcl: every training image has class ", c,
              ": negatives need images of another class");
  class_order_ = from_vector<int64_t>(order, {N});
  class_start_ = from_vector<double>(start, {classes});
  class_count_ = from_vector<double>(count, {classes});
  neg_gen_.manual_seed(ctx.seed + 3000);
}

std::vector<ParamGroup> MclMethod::param_groups() const {
  std::vector<Tensor> p = net_->parameters();
  for (auto& e : embed_->parameters()) p.push_back(e);
  return {ParamGroup{"networks", p, std::nullopt, std::nullopt}};
}

MclMethod::Output MclMethod::forward(const Tensor& x) {
  Output o;
  Tensor h = net_->trunk(x);
  for (int i = 0; i < net_->num_branches(); ++i) {
    Tensor pooled = net_->branch_pooled(i, net_->branch_features(i, h));
    o.logits.push_back(net_->branch_classify(i, pooled));
    Tensor e = embed_->at<nn::Linear>(i)->forward(pooled);
    o.embeddings.push_back(e / clamp(norm(e, 2.0, {1}, true), 1e-12, 1e30));
  }
  return o;
}

Tensor MclMethod::sample_indices(const Tensor& indices, const Tensor& labels) {
  OKD_CHECK(class_order_.defined(), "mcl: sample_indices before build()");
  OKD_CHECK(indices.dim() == 1 && labels.shape() == indices.shape(),
            "mcl: expected [B] indices and labels, got ", shape_str(indices.shape()), " and ",
            shape_str(labels.shape()));
  const int64_t B = indices.numel(), K = options_.get_int("negatives");
  const double N = static_cast<double>(class_order_.numel());
  const Device device = indices.device();
  if (class_order_.device() != device) {  // once, at the first (eager) step on a device
    class_order_ = ops::to(class_order_, device);
    class_start_ = ops::to(class_start_, device);
    class_count_ = ops::to(class_count_, device);
  }
  // Per sample (as [B, 1] columns): its class's start and count, M = N - count other images.
  Tensor start = ops::reshape(ops::index_select(class_start_, 0, labels), {B, 1});
  Tensor count = ops::reshape(ops::index_select(class_count_, 0, labels), {B, 1});
  Tensor others = ops::to(ops::reshape(ops::rsub(N, count), {B}), DType::Int64);
  // u in [0, 1) with 48 random bits (two 24-bit draws; the sum is exact in float64), so that
  // floor(u m) is uniform on [0, m) to within m / 2^48. K distinct positions among the M other
  // images (Floyd's algorithm; independent draws only when K > M, as the reference's
  // np.random.choice(replace=K > M)), exact integers from there on.
  Tensor u = ops::add(uniform({B, K}, 0.0, 1.0, neg_gen_, DType::Float64, device),
                      uniform({B, K}, 0.0, 0x1p-24, neg_gen_, DType::Float64, device));
  Tensor r = ops::to(ops::sample_distinct(u, others, static_cast<int64_t>(N)), DType::Float64);
  Tensor pos = ops::where(ops::lt(r, start), r, ops::add(r, count));
  Tensor negatives =
      ops::index_select(class_order_, 0, ops::to(ops::reshape(pos, {B * K}), DType::Int64));
  Tensor out = ops::cat({ops::reshape(indices, {B, 1}), ops::reshape(negatives, {B, K})}, 1);
  return ops::reshape(out, {B * (K + 1)});
}

StepResult MclMethod::loss(const Output& o, const Batch& batch, bool update_memory) {
  namespace F = nn::functional;
  OKD_CHECK(batch.indices.defined(), "mcl: the batch carries no dataset indices");
  const int m = static_cast<int>(o.logits.size());
  const int64_t B = batch.size(), K = options_.get_int("negatives");
  const int64_t N = train_labels_.numel(), dim = options_.get_int("embed_dim");
  const double tau = options_.get_double("tau");
  Tensor idx = sample_indices(batch.indices, batch.labels);
  StepResult r;
  Tensor ce;
  for (int i = 0; i < m; ++i) {
    Tensor c = F::cross_entropy(o.logits[i], batch.labels);
    ce = ce.defined() ? ce + c : c;
    r.terms.emplace_back("ce_branch" + std::to_string(i + 1), c);
  }
  // Contrastive terms: bank rows of branch i against branch j's embeddings.
  std::vector<Tensor> rows;
  for (int i = 0; i < m; ++i)
    rows.push_back(reshape(index_select(banks_[i], 0, idx), {B, K + 1, dim}));
  Tensor mcl;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      if (i == j) continue;
      Tensor s = exp(sum(rows[i] * unsqueeze(o.embeddings[j], 1), {2}) / tau);  // [B, K+1]
      Tensor Z = detach(mean(s)) * static_cast<double>(N);
      Tensor l = mcl_nce_loss(s / Z, N);
      mcl = mcl.defined() ? mcl + l : l;
    }
  KdOptions kd;
  kd.T = options_.get_double("T");
  Tensor dot = kd_loss(o.logits[m - 1], mean_of(o.logits), kd);
  r.terms.emplace_back("mcl", mcl);
  r.terms.emplace_back("dot", dot);
  r.loss = ce * options_.get_double("gamma") + dot * options_.get_double("alpha") +
           mcl * options_.get_double("beta");
  if (update_memory)
    for (int i = 0; i < m; ++i)
      mcl_memory_update(banks_[i], batch.indices, o.embeddings[i],
                        options_.get_double("bank_momentum"));
  for (int i = 0; i < m; ++i) r.logits.emplace_back("branch" + std::to_string(i + 1), o.logits[i]);
  r.logits.emplace_back("ensemble", mean_of(o.logits));
  return r;
}

StepResult MclMethod::forward_train(const Batch& batch, const TrainClock&) {
  return loss(forward(batch.images()), batch, true);
}

std::vector<std::string> MclMethod::members() const {
  const int m = net_ ? net_->num_branches() : static_cast<int>(options_.get_int("branches"));
  std::vector<std::string> v;
  for (int i = 1; i <= m; ++i) v.push_back("branch" + std::to_string(i));
  v.push_back("ensemble");
  return v;
}

std::string MclMethod::deployed_member() const {
  return "branch" + std::to_string(net_ ? net_->num_branches() : options_.get_int("branches"));
}

std::vector<std::pair<std::string, Tensor>> MclMethod::eval_logits(const Tensor& images) {
  Output o = forward(images);
  std::vector<std::pair<std::string, Tensor>> v;
  for (size_t i = 0; i < o.logits.size(); ++i)
    v.emplace_back("branch" + std::to_string(i + 1), o.logits[i]);
  v.emplace_back("ensemble", mean_of(o.logits));
  return v;
}

nn::NamedTensors MclMethod::extra_state() const {
  return {{"negative_generator", generator_state(neg_gen_)}};
}

void MclMethod::load_extra_state(const nn::NamedTensors& state) {
  for (const auto& [k, v] : state)
    if (k == "negative_generator") set_generator_state(neg_gen_, v);
}

std::string MclMethod::variant_summary() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "branches %s split at stage %s, K %s class-aware negatives (exact positive), "
                "tau %s, bank momentum %s, DOT T %s on the last branch, alpha %s beta %s gamma %s",
                options_.get("branches").c_str(), options_.get("split_stage").c_str(),
                options_.get("negatives").c_str(), options_.get("tau").c_str(),
                options_.get("bank_momentum").c_str(), options_.get("T").c_str(),
                options_.get("alpha").c_str(), options_.get("beta").c_str(),
                options_.get("gamma").c_str());
  return buf;
}

Recipe MclMethod::reference_recipe(const std::string& dataset, const std::string& arch) const {
  Recipe r = Method::reference_recipe(dataset, arch);
  r.source = "classic.md §13 (official code: cosine 0.05 -> 0 over 300 epochs, batch 64)";
  r.epochs = 300;
  r.batch_size = 64;
  r.lr = 0.05;
  r.nesterov = true;
  r.weight_decay = 5e-4;
  r.milestones.reset();
  r.schedule = "cosine";
  r.final_lr = 0.0;
  return r;
}

}  // namespace okd::distill
