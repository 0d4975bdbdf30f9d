// The train_cifar engine (see trainer.h).
#include "apps/lib/trainer.h"

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

#include "apps/lib/progress.h"
#include "apps/lib/svg_plot.h"
#include "apps/lib/train_config.h"
#include "apps/lib/train_data.h"
#include "autograd/functions.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "nn/models/backbone.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
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

// Top-1 and top-5 hits of logits [N, C] against labels [N].
std::pair<int64_t, int64_t> count_correct(const Tensor& logits, const Tensor& labels) {
  Tensor l = ops::contiguous(ops::to(logits, DType::Float32));
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
  void train_epoch(int64_t epoch);
  std::map<std::string, MemberStats> evaluate(const TrainData::Split& split);
  void end_epoch(int64_t epoch, double seconds);
  void save_checkpoint(const std::string& name, int64_t next_epoch, int64_t next_step);
  void load_checkpoint(const fs::path& dir, bool with_trainer_state);
  void write_metrics();
  void write_summary(double seconds);
  void write_plot();
  void print_member_table(const std::map<std::string, MemberStats>& test, const std::string& title);

  TrainConfig cfg_;
  fs::path run_dir_;
  std::unique_ptr<distill::Method> method_;
  std::unique_ptr<TrainData> data_;
  std::unique_ptr<optim::SGD> optimizer_;
  std::unique_ptr<optim::Schedule> schedule_;
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
  bool interrupted_ = false;
};

void Trainer::setup() {
  if (cfg_.threads > 0) set_num_threads(cfg_.threads);
  OKD_CHECK(cfg_.device == "cpu", "--device ", cfg_.device, ": this build of okd trains on the CPU "
            "only for now (the CUDA backend is not implemented yet); use --device cpu");
  method_ = distill::make_method(cfg_.method);
  for (const auto& [k, v] : cfg_.method_options)
    if (k.rfind(cfg_.method + ".", 0) == 0) method_->options().set(k.substr(cfg_.method.size() + 1), v);

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
  ctx.epochs = cfg_.epochs;
  ctx.iters_per_epoch = data_->train.batches_per_epoch();
  method_->build(ctx);

  std::vector<optim::ParamGroup> groups;
  for (auto& g : method_->param_groups()) {
    optim::ParamGroup og;
    og.params = g.params;
    og.lr = cfg_.lr * g.lr_scale.value_or(1.0);
    og.weight_decay = g.weight_decay.value_or(cfg_.weight_decay);
    groups.push_back(og);
  }
  optim::SGDOptions so;
  so.lr = cfg_.lr;
  so.momentum = cfg_.momentum;
  so.nesterov = cfg_.nesterov;
  so.weight_decay = cfg_.weight_decay;
  optimizer_ = std::make_unique<optim::SGD>(groups, so);
  schedule_ = make_schedule(cfg_);
}

}  // namespace
}  // namespace okd::apps
