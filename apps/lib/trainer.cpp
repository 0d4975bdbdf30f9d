// The train_cifar engine (see trainer.h).
#include "apps/lib/trainer.h"

#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "apps/lib/device_flag.h"
#include "apps/lib/progress.h"
#include "apps/lib/svg_plot.h"
#include "apps/lib/train_config.h"
#include "apps/lib/train_data.h"
#include "autograd/functions.h"
#include "distill/captured_step.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "nn/models/backbone.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"
#include "tensor/ops/view.h"
#include "tensor/runtime.h"

namespace fs = std::filesystem;

namespace okd::apps {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C quits at once
}

struct MemberStats {
  double loss_sum = 0, correct1 = 0, correct5 = 0;
  int64_t count = 0;
};

struct EpochRecord {
  int64_t epoch;
  std::string member;
  double lr, train_loss, train_top1, test_loss, test_top1, test_top5, seconds;
};

// Top-1 and top-5 hits of logits [N, C] against labels [N] (either on any device).
std::pair<int64_t, int64_t> count_correct(const Tensor& logits, const Tensor& labels_) {
  Tensor l = ops::contiguous(ops::to(ops::to(logits, DType::Float32), kCPU));
  const Tensor labels = ops::contiguous(ops::to(labels_, kCPU));
  const float* p = l.data<float>();
  const int64_t* y = labels.data<int64_t>();
  const int64_t n = l.size(0), c = l.size(1);
  int64_t top1 = 0, top5 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    float target = row[y[i]];
    int64_t above = 0;
    for (int64_t j = 0; j < c; ++j)
      if (row[j] > target || (row[j] == target && j < y[i])) ++above;
    top1 += above == 0;
    top5 += above < 5;
  }
  return {top1, top5};
}

// The values of scalar tensors on any device, copied to the host together (one wait for the
// device per call rather than one per value).
std::vector<double> host_values(const std::vector<Tensor>& scalars) {
  std::vector<double> out(scalars.size());
  std::vector<size_t> on_device;
  std::vector<Tensor> flat;
  for (size_t i = 0; i < scalars.size(); ++i) {
    if (scalars[i].device().is_cpu()) {
      out[i] = scalars[i].item();  // e.g. a schedule weight logged as a term
    } else {
      on_device.push_back(i);
      flat.push_back(ops::reshape(ops::to(scalars[i], DType::Float64), {1}));
    }
  }
  if (!flat.empty()) {
    const std::vector<double> v = to_vector<double>(ops::cat(flat, 0));
    for (size_t k = 0; k < on_device.size(); ++k) out[on_device[k]] = v[k];
  }
  return out;
}

// The batch's tensors on the training device (labels stay on the CPU too, for counting hits).
distill::Batch to_device(const distill::Batch& b, Device device) {
  if (device.is_cpu()) return b;
  distill::Batch out;
  for (const Tensor& v : b.views) out.views.push_back(ops::to(v, device));
  out.labels = ops::to(b.labels, device);
  if (b.indices.defined()) out.indices = ops::to(b.indices, device);
  return out;
}

std::string fmt(double v, int prec = 4) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}

// Writes text to path atomically: a temporary file, then rename.
void write_file_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    OKD_CHECK(f.good(), "cannot write ", tmp.string());
    f << text;
    f.flush();
    OKD_CHECK(f.good(), "write to ", tmp.string(), " failed (disk full?)");
  }
  fs::rename(tmp, path);
}

class Trainer {
 public:
  explicit Trainer(TrainConfig cfg) : cfg_(std::move(cfg)) {}
  int run();

 private:
  void setup();
  void print_header();
  std::string precision_line() const;
  void train_epoch(int64_t epoch);
  std::map<std::string, MemberStats> evaluate(TrainData::Split& split);
  void set_learning_rate(const distill::TrainClock& clock);
  double current_lr() const { return current_lr_; }
  void end_epoch(int64_t epoch, double seconds);
  void save_checkpoint(const std::string& name, int64_t next_epoch, int64_t next_step);
  void load_checkpoint(const fs::path& dir, bool with_trainer_state);
  void write_metrics();
  void write_summary(double seconds);
  void write_plot();
  void print_member_table(const std::string& title);

  TrainConfig cfg_;
  Device device_ = kCPU;
  fs::path run_dir_;
  std::unique_ptr<distill::Method> method_;
  std::unique_ptr<TrainData> data_;
  std::unique_ptr<optim::SGD> optimizer_;
  optim::LrSchedulePtr schedule_;
  double current_lr_ = 0;
  double lr_factor_ = 1;
  // Training throughput of this process (excludes evaluation), for summary.json.
  double train_images_ = 0, train_seconds_ = 0;
  Progress clock_{"", 1};  // used as a stopwatch for the whole run
  int64_t start_epoch_ = 0, start_step_ = 0;
  std::vector<EpochRecord> history_;
  std::vector<std::string> term_names_;
  std::map<std::string, std::vector<double>> term_history_;  // per epoch mean of each term
  std::map<std::string, double> term_sums_;
  std::map<std::string, MemberStats> train_stats_;
  int64_t term_count_ = 0;
  double best_top1_ = -1;
  int64_t best_epoch_ = -1;
  double elapsed_before_ = 0;  // seconds spent before a resume
  std::vector<double> base_lrs_;
  bool interrupted_ = false;
  int64_t steps_this_process_ = 0;

  // --cuda-graph: the step policy (distill/captured_step.h) and the fixed input batch.
  distill::StepResult graph_step(const distill::Batch& batch, const distill::TrainClock& clock);
  bool use_graph_ = false;
  distill::CapturedSteps graph_steps_;
  distill::Batch graph_input_;
};

void Trainer::setup() {
  if (cfg_.threads > 0) set_num_threads(cfg_.threads);
  device_ = device_from_flag(cfg_.device);
  cuda::set_deterministic(cfg_.deterministic);
  cuda::set_allow_tf32(cfg_.allow_tf32);
  cuda::set_conv_autotune(cfg_.cudnn_benchmark);
  OKD_CHECK(!cfg_.cuda_graph || device_.is_cuda(),
            "--cuda-graph needs --device cuda (got --device ", cfg_.device, ")");
  method_ = distill::make_method(cfg_.method);
  for (const auto& [k, v] : cfg_.method_options)
    if (k.rfind(cfg_.method + ".", 0) == 0)
      method_->options().set(k.substr(cfg_.method.size() + 1), v);
  use_graph_ = false;
  if (cfg_.cuda_graph) {
    const std::string blocker = method_->capture_blocker();
    use_graph_ = blocker.empty();
    if (!use_graph_)
      std::printf("--cuda-graph: %s trains eagerly: %s\n", cfg_.method.c_str(), blocker.c_str());
  }

  data_ = make_train_data(cfg_, method_->num_views());
  distill::BuildContext ctx;
  ctx.arch = cfg_.arch;
  ctx.dataset = cfg_.dataset;
  ctx.num_classes = data_->num_classes;
  ctx.in_channels = data_->channels;
  ctx.image_size = data_->image_size;
  ctx.shortcut = cfg_.shortcut;
  ctx.init = cfg_.init;
  ctx.seed = cfg_.seed;
  ctx.lr = cfg_.lr;
  ctx.epochs = cfg_.epochs;
  ctx.iters_per_epoch = data_->train->batches_per_epoch();
  ctx.train_labels = data_->train->labels();
  ctx.device = device_;
  method_->build(ctx);
  // Networks are built and initialised on the CPU (the same weights for a seed on every device),
  // then moved; a method's tensors outside its networks follow ctx.device.
  for (const auto& [name, net] : method_->networks()) net->to(device_);

  std::vector<optim::ParamGroup> groups =
      distill::optimizer_groups(*method_, cfg_.lr, cfg_.weight_decay);
  optim::SGDOptions so;
  so.lr = cfg_.lr;
  so.momentum = cfg_.momentum;
  so.nesterov = cfg_.nesterov;
  so.weight_decay = cfg_.weight_decay;
  optimizer_ = std::make_unique<optim::SGD>(groups, so);
  base_lrs_.clear();
  for (const auto& g : optimizer_->param_groups()) base_lrs_.push_back(g.lr);
  optim::ScheduleSpec spec;
  spec.kind = cfg_.schedule;
  spec.epochs = static_cast<double>(cfg_.epochs);
  spec.milestones = cfg_.milestones;
  spec.gamma = cfg_.gamma;
  spec.step_epochs = static_cast<double>(cfg_.step_size);
  spec.final_factor = cfg_.final_lr / cfg_.lr;
  spec.warmup_epochs = cfg_.warmup_epochs;
  schedule_ = optim::make_schedule(spec);
}

// The schedule gives a factor of the base lr for (epoch, step); every group keeps its own ratio.
void Trainer::set_learning_rate(const distill::TrainClock& clock) {
  const double factor = schedule_->factor(clock.epoch, clock.step_in_epoch, clock.iters_per_epoch);
  auto& groups = optimizer_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].lr = base_lrs_[i] * factor;
  current_lr_ = cfg_.lr * factor;
  lr_factor_ = factor;
}

// What --precision means on this run's device, for the header.
std::string Trainer::precision_line() const {
  if (parse_precision(cfg_.precision) == Precision::Float32) return "float32";
  return std::string("bf16 products in conv/linear, float32 weights (") +
         (device_.is_cpu() || cuda::emulating() ? "CPU emulation: rounding around float32 kernels"
                                                : "cuDNN/cuBLAS bf16 tensor cores") +
         ")";
}

void Trainer::print_header() {
  std::printf("%s\n", runtime_summary().c_str());
  std::printf("device: %s | dtype: float32 | precision: %s | seed: %llu | threads: %d\n",
              device_.is_cpu() ? "cpu" : cuda::device_summary().c_str(), precision_line().c_str(),
              static_cast<unsigned long long>(cfg_.seed), num_threads());
  std::printf("data: %s\n", data_->description.c_str());
  std::printf("method: %s — %s\n", method_->name().c_str(), method_->description().c_str());
  std::string variant = method_->variant_summary();
  if (!variant.empty()) std::printf("variant: %s\n", variant.c_str());
  for (const auto& [name, net] : method_->networks())
    std::printf("network %-12s %s: %lld parameters\n", name.c_str(), cfg_.arch.c_str(),
                static_cast<long long>(net->num_parameters()));
  std::printf("trained parameters: %lld | deployed (%s): %lld\n",
              static_cast<long long>(method_->num_parameters()), method_->deployed_member().c_str(),
              static_cast<long long>(method_->deployed_num_parameters()));
  std::printf("run directory: %s\n--- configuration ---\n%s---------------------\n",
              run_dir_.string().c_str(), to_toml(to_config_map(cfg_)).c_str());
  std::fflush(stdout);
}

void Trainer::train_epoch(int64_t epoch) {
  method_->set_training(true);
  auto& split = *data_->train;
  const int64_t steps = split.batches_per_epoch();
  distill::TrainClock clock{epoch, cfg_.epochs, start_step_, steps};
  if (start_step_ == 0) {
    train_stats_.clear();
    term_sums_.clear();
    term_count_ = 0;
    method_->on_epoch_start(clock);
  }
  split.start_epoch(epoch, start_step_);
  Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs),
                    steps);
  int64_t images = 0;
  for (int64_t step = start_step_; step < steps; ++step) {
    auto batch = split.next();
    OKD_CHECK(batch.has_value(), "train: the loader ended after ", step, " of ", steps, " batches");
    clock.step_in_epoch = step;
    set_learning_rate(clock);
    clock.lr_factor = lr_factor_;
    // With --cuda-graph a full batch runs forward, update and after_update as one captured step;
    // a non-finite loss is then seen after that step's update (the run still stops before any
    // checkpoint is written).
    const bool captured = use_graph_ && batch->size() == cfg_.batch_size;
    distill::StepResult r = captured ? graph_step(*batch, clock)
                                     : method_->forward_train(to_device(*batch, device_), clock);
    // Every term and the total in one copy to the host.
    std::vector<Tensor> scalars;
    for (const auto& [name, t] : r.terms) scalars.push_back(t);
    scalars.push_back(r.loss);
    const std::vector<double> values = host_values(scalars);
    // A non-finite loss stops the run naming the term; the last good checkpoint stays.
    for (size_t i = 0; i < r.terms.size(); ++i) {
      const double v = values[i];
      OKD_CHECK(std::isfinite(v), "loss term '", r.terms[i].first, "' is ", v, " at epoch ",
                epoch + 1, ", step ", step + 1, "; stopping (the last good checkpoint is kept in ",
                run_dir_.string(), ")");
    }
    const double total = values.back();
    OKD_CHECK(std::isfinite(total), "the total loss is ", total, " at epoch ", epoch + 1, ", step ",
              step + 1, "; stopping (the last good checkpoint is kept)");
    if (!captured) {
      method_->update(r, *optimizer_, clock);
      method_->after_update(clock);
    }

    const int64_t n = batch->size();
    images += n;
    // update() may log terms of its own (adversarial methods' discriminator losses).
    std::vector<double> term_values(values.begin(), values.end() - 1);
    std::vector<Tensor> late;
    for (size_t i = term_values.size(); i < r.terms.size(); ++i) late.push_back(r.terms[i].second);
    for (double v : host_values(late)) term_values.push_back(v);
    for (size_t i = 0; i < r.terms.size(); ++i) term_sums_[r.terms[i].first] += term_values[i] * n;
    if (term_names_.empty() || term_names_.size() < r.terms.size()) {
      term_names_.clear();
      for (const auto& [name, t] : r.terms) term_names_.push_back(name);
    }
    term_count_ += n;
    for (const auto& [member, logits] : r.logits) {
      auto [c1, c5] = count_correct(logits, batch->labels);
      auto& st = train_stats_[member];
      st.correct1 += c1;
      st.correct5 += c5;
      st.count += n;
      st.loss_sum += total * n;
    }
    std::string extra = "loss " + fmt(total, 3);
    const auto& dep = train_stats_[method_->deployed_member()];
    if (dep.count > 0) extra += " | acc " + fmt(100.0 * dep.correct1 / dep.count, 1) + "%";
    progress.update(step + 1, images, extra);
    ++steps_this_process_;
    if (cfg_.stop_after_steps > 0 && steps_this_process_ >= cfg_.stop_after_steps) g_stop = true;
    if (g_stop.load()) {
      progress.finish();
      std::printf("interrupted: finishing step %lld and writing a checkpoint\n",
                  static_cast<long long>(step + 1));
      save_checkpoint("last", epoch, step + 1);
      interrupted_ = true;
      return;
    }
    if (cfg_.checkpoint_every_steps > 0 && (step + 1) % cfg_.checkpoint_every_steps == 0 &&
        step + 1 < steps)
      save_checkpoint("last", epoch, step + 1);
  }
  progress.finish();
  train_images_ += images;
  train_seconds_ += progress.elapsed_seconds();
  start_step_ = 0;
}

// One full-batch step under --cuda-graph: the batch is copied into the fixed input tensors and
// the step runs eagerly, captured or replayed as distill::CapturedSteps decides.
distill::StepResult Trainer::graph_step(const distill::Batch& batch,
                                        const distill::TrainClock& clock) {
  if (graph_input_.views.empty()) {
    graph_input_ = to_device(batch, device_);
  } else {
    for (size_t v = 0; v < batch.views.size(); ++v)
      ops::copy_across_devices_(graph_input_.views[v], batch.views[v]);
    ops::copy_across_devices_(graph_input_.labels, batch.labels);
    if (batch.indices.defined()) ops::copy_across_devices_(graph_input_.indices, batch.indices);
  }
  return graph_steps_.run(
      [&] {
        distill::StepResult r = method_->forward_train(graph_input_, clock);
        method_->update(r, *optimizer_, clock);
        method_->after_update(clock);
        return r;
      },
      clock.epoch, lr_factor_);
}

std::map<std::string, MemberStats> Trainer::evaluate(TrainData::Split& split) {
  method_->set_training(false);
  NoGradGuard no_grad;
  std::map<std::string, MemberStats> stats;
  split.start_epoch(0);
  while (auto batch = split.next()) {
    const Tensor labels = ops::to(batch->labels, device_);
    for (const auto& [member, logits] : method_->eval_logits(ops::to(batch->images(), device_))) {
      auto& st = stats[member];
      Tensor ce = nn::functional::cross_entropy(logits, labels);
      auto [c1, c5] = count_correct(logits, batch->labels);
      st.loss_sum += ce.item() * batch->size();
      st.correct1 += c1;
      st.correct5 += c5;
      st.count += batch->size();
    }
  }
  method_->set_training(true);
  return stats;
}

void Trainer::end_epoch(int64_t epoch, double seconds) {
  auto test = evaluate(*data_->test);
  const double lr = current_lr();
  for (const auto& member : method_->members()) {
    const auto& tr = train_stats_[member];
    const auto& te = test[member];
    EpochRecord r;
    r.epoch = epoch + 1;
    r.member = member;
    r.lr = lr;
    r.train_loss = tr.count ? tr.loss_sum / tr.count : NAN;
    r.train_top1 = tr.count ? 100.0 * tr.correct1 / tr.count : NAN;
    r.test_loss = te.count ? te.loss_sum / te.count : NAN;
    r.test_top1 = te.count ? 100.0 * te.correct1 / te.count : NAN;
    r.test_top5 = te.count ? 100.0 * te.correct5 / te.count : NAN;
    r.seconds = seconds;
    history_.push_back(r);
  }
  for (const auto& name : term_names_)
    term_history_[name].push_back(term_count_ ? term_sums_[name] / term_count_ : NAN);
  const auto& dep = test[method_->deployed_member()];
  const double top1 = dep.count ? 100.0 * dep.correct1 / dep.count : 0;
  std::printf("epoch %lld/%lld  lr %.4g  %s", static_cast<long long>(epoch + 1),
              static_cast<long long>(cfg_.epochs), lr, format_duration(seconds).c_str());
  for (const auto& member : method_->members()) {
    const auto& te = test[member];
    std::printf(" | %s %.2f%%", member.c_str(), te.count ? 100.0 * te.correct1 / te.count : 0.0);
  }
  std::printf("\n");
  std::fflush(stdout);
  write_metrics();
  save_checkpoint("last", epoch + 1, 0);
  if (top1 > best_top1_) {
    best_top1_ = top1;
    best_epoch_ = epoch + 1;
    save_checkpoint("best", epoch + 1, 0);
  }
}

void Trainer::write_metrics() {
  std::ostringstream os;
  os << "epoch,member,lr,train_loss,train_top1,test_loss,test_top1,test_top5,seconds";
  for (const auto& n : term_names_) os << ",loss_" << n;
  os << "\n";
  for (size_t i = 0; i < history_.size(); ++i) {
    const auto& r = history_[i];
    os << r.epoch << "," << r.member << "," << r.lr << "," << fmt(r.train_loss, 6) << ","
       << fmt(r.train_top1, 3) << "," << fmt(r.test_loss, 6) << "," << fmt(r.test_top1, 3) << ","
       << fmt(r.test_top5, 3) << "," << fmt(r.seconds, 2);
    for (const auto& n : term_names_) {
      const auto& h = term_history_[n];
      size_t e = static_cast<size_t>(r.epoch - 1);
      os << "," << (e < h.size() ? fmt(h[e], 6) : "");
    }
    os << "\n";
  }
  write_file_atomic(run_dir_ / "metrics.csv", os.str());
}

// Per member: last and best top-1/top-5 and the epoch of the best top-1.
struct MemberSummary {
  double last1 = NAN, best1 = -1, last5 = NAN, best5 = -1;
  int64_t best_epoch = 0;
};

// Peak resident memory of this process (getrusage: kilobytes on Linux).
double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::map<std::string, MemberSummary> summarize(const std::vector<EpochRecord>& history) {
  std::map<std::string, MemberSummary> out;
  for (const auto& r : history) {
    auto& m = out[r.member];
    m.last1 = r.test_top1;
    m.last5 = r.test_top5;
    if (r.test_top1 > m.best1) {
      m.best1 = r.test_top1;
      m.best_epoch = r.epoch;
    }
    m.best5 = std::max(m.best5, r.test_top5);
  }
  return out;
}

void Trainer::write_summary(double seconds) {
  auto sums = summarize(history_);
  std::ostringstream os;
  os << "{\n  \"method\": \"" << cfg_.method << "\",\n  \"arch\": \"" << cfg_.arch
     << "\",\n  \"dataset\": \"" << cfg_.dataset << "\",\n  \"epochs\": " << cfg_.epochs
     << ",\n  \"seed\": " << cfg_.seed << ",\n  \"precision\": \"" << cfg_.precision
     << "\",\n  \"seconds\": " << fmt(seconds, 1) << ",\n  \"train_images_per_second\": "
     << fmt(train_seconds_ > 0 ? train_images_ / train_seconds_ : 0.0, 1)
     << ",\n  \"peak_rss_mib\": " << fmt(peak_rss_mib(), 1) << ",\n  \"deployed\": \""
     << method_->deployed_member() << "\",\n  \"members\": {";
  bool first = true;
  for (const auto& member : method_->members()) {
    const auto& m = sums[member];
    os << (first ? "" : ",") << "\n    \"" << member << "\": {\"last_top1\": " << fmt(m.last1, 2)
       << ", \"best_top1\": " << fmt(m.best1, 2) << ", \"last_top5\": " << fmt(m.last5, 2)
       << ", \"best_top5\": " << fmt(m.best5, 2) << ", \"best_epoch\": " << m.best_epoch << "}";
    first = false;
  }
  os << "\n  }\n}\n";
  write_file_atomic(run_dir_ / "summary.json", os.str());
}

void Trainer::write_plot() {
  Panel acc{"test top-1", "epoch", "%", {}}, loss{"train loss", "epoch", "loss", {}};
  for (const auto& member : method_->members()) {
    Series a{member, {}, {}}, l{member, {}, {}};
    for (const auto& r : history_)
      if (r.member == member) {
        a.x.push_back(static_cast<double>(r.epoch));
        a.y.push_back(r.test_top1);
        l.x.push_back(static_cast<double>(r.epoch));
        l.y.push_back(r.train_loss);
      }
    acc.series.push_back(a);
    loss.series.push_back(l);
  }
  write_file_atomic(run_dir_ / "curves.svg", svg_line_plot({acc, loss}));
}

void Trainer::print_member_table(const std::string& title) {
  auto sums = summarize(history_);
  std::printf("\n%s\n%-14s %10s %10s %10s %10s\n", title.c_str(), "member", "last top1",
              "best top1", "best epoch", "last top5");
  for (const auto& member : method_->members()) {
    const auto& m = sums[member];
    std::printf("%-14s %9.2f%% %9.2f%% %10lld %9.2f%%%s\n", member.c_str(), m.last1, m.best1,
                static_cast<long long>(m.best_epoch), m.last5,
                member == method_->deployed_member() ? "  (deployed)" : "");
  }
  std::fflush(stdout);
}

// Checkpoint layout: <run>/checkpoints/<name>/ holds <network>.safetensors (each network's
// state_dict, PyTorch names: torch can load them), trainer.safetensors (optimizer and method
// state, running train statistics) and trainer.toml (epoch, step, best so far). The directory is
// written under a temporary name and renamed, so a crash never leaves a half-written checkpoint.
void Trainer::save_checkpoint(const std::string& name, int64_t next_epoch, int64_t next_step) {
  fs::path root = run_dir_ / "checkpoints";
  fs::create_directories(root);
  fs::path tmp = root / (name + ".tmp"), final_dir = root / name, old = root / (name + ".old");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& [net_name, net] : method_->networks())
    nn::save_safetensors((tmp / (net_name + ".safetensors")).string(), net->state_dict(),
                         {{"arch", cfg_.arch}, {"method", cfg_.method}, {"network", net_name}});
  nn::NamedTensors state;
  for (auto& [k, v] : optimizer_->state_dict()) state.emplace_back("optim." + k, v);
  for (auto& [k, v] : method_->extra_state()) state.emplace_back("method." + k, v);
  for (const auto& [member, st] : train_stats_)
    state.emplace_back("train_stats." + member,
                       from_vector<double>(
                           {st.loss_sum, st.correct1, st.correct5, static_cast<double>(st.count)}));
  for (const auto& [term, v] : term_sums_)
    state.emplace_back("term_sums." + term, from_vector<double>({v}));
  nn::save_safetensors((tmp / "trainer.safetensors").string(), state);
  ConfigMap meta{{"next_epoch", std::to_string(next_epoch)},
                 {"next_step", std::to_string(next_step)},
                 {"best_top1", fmt(best_top1_, 6)},
                 {"best_epoch", std::to_string(best_epoch_)},
                 {"term_count", std::to_string(term_count_)},
                 {"seconds", fmt(elapsed_before_ + clock_.elapsed_seconds(), 3)}};
  std::string terms;
  for (const auto& n : term_names_) terms += (terms.empty() ? "" : ",") + n;
  meta["terms"] = terms;
  write_file_atomic(tmp / "trainer.toml", to_toml(meta));
  fs::remove_all(old);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fs::remove_all(old);
}

void Trainer::load_checkpoint(const fs::path& dir, bool with_trainer_state) {
  OKD_CHECK(fs::is_directory(dir), "no checkpoint at ", dir.string(),
            " (expected a directory with <network>.safetensors files)");
  for (const auto& [net_name, net] : method_->networks()) {
    fs::path f = dir / (net_name + ".safetensors");
    OKD_CHECK(fs::exists(f), "checkpoint ", dir.string(), " has no ", f.filename().string(),
              " for network '", net_name, "' of method ", cfg_.method);
    net->load_state_dict(nn::load_safetensors(f.string()));
  }
  if (!with_trainer_state) return;
  nn::NamedTensors optim_state, method_state;
  for (auto& [k, v] : nn::load_safetensors((dir / "trainer.safetensors").string())) {
    if (k.rfind("optim.", 0) == 0)
      optim_state.emplace_back(k.substr(6), v);
    else if (k.rfind("method.", 0) == 0)
      method_state.emplace_back(k.substr(7), v);
    else if (k.rfind("train_stats.", 0) == 0) {
      auto d = to_vector<double>(v);
      train_stats_[k.substr(12)] = {d[0], d[1], d[2], static_cast<int64_t>(d[3])};
    } else if (k.rfind("term_sums.", 0) == 0) {
      term_sums_[k.substr(10)] = v.item();
    }
  }
  optimizer_->load_state_dict(optim_state);
  method_->load_extra_state(method_state);
  ConfigMap meta = read_toml_file((dir / "trainer.toml").string());
  start_epoch_ = std::stoll(meta.at("next_epoch"));
  start_step_ = std::stoll(meta.at("next_step"));
  best_top1_ = std::stod(meta.at("best_top1"));
  best_epoch_ = std::stoll(meta.at("best_epoch"));
  term_count_ = std::stoll(meta.at("term_count"));
  elapsed_before_ = std::stod(meta.at("seconds"));
  term_names_.clear();
  std::stringstream ss(meta.count("terms") ? meta.at("terms") : "");
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) term_names_.push_back(t);
  // The metrics of the epochs already done come back from metrics.csv.
  std::ifstream csv(run_dir_ / "metrics.csv");
  std::string line;
  std::getline(csv, line);  // header
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ',');) f.push_back(x);
    if (f.size() < 9) continue;
    EpochRecord r{std::stoll(f[0]), f[1],
                  std::stod(f[2]),  std::stod(f[3]),
                  std::stod(f[4]),  std::stod(f[5]),
                  std::stod(f[6]),  std::stod(f[7]),
                  std::stod(f[8])};
    if (r.epoch > start_epoch_) continue;
    history_.push_back(r);
    for (size_t i = 0; i < term_names_.size() && 9 + i < f.size(); ++i) {
      auto& h = term_history_[term_names_[i]];
      if (static_cast<int64_t>(h.size()) < r.epoch)
        h.push_back(f[9 + i].empty() ? NAN : std::stod(f[9 + i]));
    }
  }
}

int Trainer::run() {
  // --precision: every convolution and linear layer of this thread (training steps, the
  // --cuda-graph capture, evaluation) forms its products in this precision; the parameters,
  // gradients and optimizer state stay float32.
  nn::functional::Autocast autocast(parse_precision(cfg_.precision));
  if (!cfg_.eval_only.empty()) {
    setup();
    run_dir_ = fs::path(cfg_.eval_only).parent_path().parent_path();
    load_checkpoint(cfg_.eval_only, false);
    std::printf("%s\nevaluating %s on %s (precision %s)\n", runtime_summary().c_str(),
                cfg_.eval_only.c_str(), data_->description.c_str(), cfg_.precision.c_str());
    auto test = evaluate(*data_->test);
    std::printf("%-14s %10s %10s %10s\n", "member", "top1", "top5", "loss");
    for (const auto& member : method_->members()) {
      const auto& st = test[member];
      std::printf("%-14s %9.2f%% %9.2f%% %10.4f%s\n", member.c_str(),
                  100.0 * st.correct1 / st.count, 100.0 * st.correct5 / st.count,
                  st.loss_sum / st.count,
                  member == method_->deployed_member() ? "  (deployed)" : "");
    }
    return 0;
  }
  setup();
  run_dir_ = cfg_.out;
  fs::create_directories(run_dir_);
  if (!cfg_.resume.empty()) {
    load_checkpoint(run_dir_ / "checkpoints" / "last", true);
    std::printf("resuming %s at epoch %lld, step %lld\n", run_dir_.string().c_str(),
                static_cast<long long>(start_epoch_ + 1), static_cast<long long>(start_step_));
  } else {
    OKD_CHECK(!fs::exists(run_dir_ / "checkpoints"), "run directory ", run_dir_.string(),
              " already holds a run; pass --resume ", run_dir_.string(),
              " to continue it, or choose another --out");
    write_file_atomic(run_dir_ / "config.toml", to_toml(to_config_map(cfg_)));
  }
  print_header();
  g_stop = false;
  std::signal(SIGINT, on_sigint);
  for (int64_t epoch = start_epoch_; epoch < cfg_.epochs; ++epoch) {
    Progress epoch_clock("", 1);
    train_epoch(epoch);
    if (interrupted_) {
      std::signal(SIGINT, SIG_DFL);
      std::printf("checkpoint written to %s; continue with --resume %s\n",
                  (run_dir_ / "checkpoints" / "last").string().c_str(), run_dir_.string().c_str());
      return 130;
    }
    end_epoch(epoch, epoch_clock.elapsed_seconds());
  }
  std::signal(SIGINT, SIG_DFL);
  const double seconds = elapsed_before_ + clock_.elapsed_seconds();
  write_summary(seconds);
  write_plot();
  print_member_table("results (" + cfg_.method + ", " + cfg_.arch + ", " + cfg_.dataset + ", " +
                     std::to_string(cfg_.epochs) + " epochs, " + format_duration(seconds) + ")");
  if (use_graph_)
    std::printf("cuda graph: %lld captures, %lld replays, %lld eager warm-up step(s)\n",
                static_cast<long long>(graph_steps_.captures()),
                static_cast<long long>(graph_steps_.replays()),
                static_cast<long long>(graph_steps_.eager_steps()));
  std::printf("run directory: %s (metrics.csv, summary.json, curves.svg, checkpoints/)\n",
              run_dir_.string().c_str());
  return 0;
}

}  // namespace

int run_train_cifar(int argc, const char* const* argv) {
  try {
    TrainConfig cfg;
    std::string help;
    if (!parse_train_args(argc, argv, cfg, help)) {
      std::printf("%s", help.c_str());
      return 0;
    }
    if (cfg.list_methods) {
      for (const auto& name : distill::method_names())
        std::printf("%-12s %s\n", name.c_str(), distill::make_method(name)->description().c_str());
      return 0;
    }
    if (cfg.list_archs) {
      for (const auto& name : nn::backbone_names()) std::printf("%s\n", name.c_str());
      return 0;
    }
    if (!cfg.resume.empty()) {
      // A resumed run takes its configuration from the run directory; only the schedule of
      // interruption (nothing else) may differ.
      TrainConfig saved;
      std::string unused;
      std::string conf = (fs::path(cfg.resume) / "config.toml").string();
      OKD_CHECK(fs::exists(conf), "--resume ", cfg.resume,
                ": no config.toml there (not a run directory)");
      std::vector<std::string> args{"train_cifar", "--config", conf};
      std::vector<const char*> argv2;
      for (auto& a : args) argv2.push_back(a.c_str());
      parse_train_args(static_cast<int>(argv2.size()), argv2.data(), saved, unused);
      saved.resume = cfg.resume;
      saved.out = cfg.resume;
      saved.stop_after_steps = cfg.stop_after_steps;
      if (cfg.threads > 0) saved.threads = cfg.threads;
      cfg = saved;
    }
    const std::string recipe = apply_recipe(cfg);
    validate(cfg);
    if (!recipe.empty()) std::printf("%s\n", recipe.c_str());
    Trainer trainer(cfg);
    return trainer.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace okd::apps
