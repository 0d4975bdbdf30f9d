// The method-parity case runner shared by the CPU test (tests/distill/test_method_parity.cpp)
// and the device test (tests/device/test_method_parity_device.cpp): each case under
// tests/data/method_parity/ holds a few training steps of one method as an independent PyTorch
// implementation of its specification computed them in float64
// (tests/reference/make_method_parity.py). okd builds the same method with the case's options on
// `device`, on the same deterministic weights and images (method_parity.h), runs the same steps
// with the same clocks and SGD settings in float64, and must agree on every loss term of every
// step and, for every parameter and buffer of every network, on the change over the run (its
// projection on a fixed random vector and its L2 norm). A wrong detach, loss weight,
// temperature, ramp-up, update order, parameter group or BN update shows up as a named term or
// tensor.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "distill/captured_step.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "nn/models/backbone.h"
#include "nn/module.h"
#include "optim/sgd.h"
#include "tensor/ops/copy.h"
#include "tensor/runtime.h"
#include "tests/distill/method_parity.h"
#include "tests/support/test_support.h"

namespace okd::distill::parity {

// float64 on both sides: the only differences are summation orders (~1e-15 relative per op).
constexpr double kTermRtol = 1e-11;
constexpr double kDeltaRtol = 1e-9;  // of the tensor's change over the run (L2)

// The cases: the stems of tests/data/method_parity/*.safetensors, sorted.
inline std::vector<std::string> case_names() {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  const fs::path dir = test::data_path("method_parity");
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The cases of three steps or more (a captured step is replayed at least once).
inline std::vector<std::string> case_names_with_replays() {
  std::vector<std::string> names;
  for (const auto& n : case_names()) {
    std::map<std::string, std::string> meta;
    nn::load_safetensors(test::data_path("method_parity/" + n + ".safetensors"), &meta);
    if (std::count(meta["clocks"].begin(), meta["clocks"].end(), ';') >= 2) names.push_back(n);
  }
  return names;
}

// A case name as a gtest parameter name (letters, digits and _).
inline std::string case_test_name(std::string n) {
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

// The value of a one-element tensor on any device, as a double.
inline double scalar(const Tensor& t) {
  return to_vector<double>(ops::to(ops::to(t, kCPU), DType::Float64)).at(0);
}

// How the steps run: eagerly, or as train_cifar --cuda-graph runs them (distill::CapturedSteps,
// the trainer's own policy: the first step eagerly, the next one captured as one CUDA graph,
// later ones replaying it until the epoch or the lr factor changes). Captured needs a CUDA device
// (emulated without a GPU: the replay reruns the recorded kernel calls on the same memory).
enum class StepMode { Eager, CapturedLikeTheTrainer };

// What a run observed, for comparing two runs of a case with each other (not with the
// reference): every step's loss and terms, and every tensor's final values.
struct RunRecord {
  std::vector<std::vector<std::pair<std::string, double>>> steps;  // ("loss", ...) first
  std::vector<std::pair<std::string, std::vector<double>>> finals;
};

// Runs case `name` on `device` with gtest expectations; prints one summary line (the format
// tests/reference/method_parity_table.py reads). In float64 (the default) every term and every
// tensor's change must match the reference. In another dtype or under Autocast(bf16) the run is
// only recorded into *record (the reference's float64 figures do not apply), for comparing two
// runs of the same case.
inline void run_method_parity_case(const std::string& name, Device device,
                                   StepMode mode = StepMode::Eager, DType dtype = DType::Float64,
                                   Precision precision = Precision::Float32,
                                   RunRecord* record = nullptr) {
  namespace fs = std::filesystem;
  const bool compare = dtype == DType::Float64 && precision == Precision::Float32;
  nn::functional::Autocast autocast(precision);
  // One CPU thread: the ops of these tiny networks are too small to share, and ctest runs test
  // processes side by side, where every op's OpenMP barrier would wait on a busy core (the cases
  // ran 100 times slower under `ctest -j2` than alone). okd's results do not depend on it.
  struct OneThread {
    int saved = num_threads();
    OneThread() { set_num_threads(1); }
    ~OneThread() { set_num_threads(saved); }
  } one_thread;

  std::map<std::string, std::string> meta;
  const std::string path = test::data_path("method_parity/" + name + ".safetensors");
  std::map<std::string, Tensor> ref;
  for (auto& [k, v] : nn::load_safetensors(path, &meta)) ref[k] = v;
  for (const char* key : {"method", "arch", "classes", "image_size", "batch", "lr", "momentum",
                          "weight_decay", "nesterov", "clocks"})
    ASSERT_TRUE(meta.count(key)) << path << " has no metadata '" << key << "'";

  const int64_t batch = std::stoll(meta["batch"]), classes = std::stoll(meta["classes"]);
  const double lr = std::stod(meta["lr"]), weight_decay = std::stod(meta["weight_decay"]);

  // The method, with the case's options. An offline method's teacher (metadata teacher_arch) is
  // written to a file with det_teacher's values and named in place of @TEACHER@.
  std::string spec = meta["method"];
  if (meta.count("teacher_arch")) {
    nn::BackboneOptions o;
    o.arch = meta["teacher_arch"];
    o.num_classes = classes;
    auto teacher = nn::make_backbone(o);
    det_teacher(*teacher);
    // one file per device: the CPU and device suites may run at once (ctest -j)
    const fs::path dir = fs::path(OKD_BINARY_DIR) / "test_tmp" / "method_parity";
    fs::create_directories(dir);
    const std::string file = (dir / (name + "_teacher_" + device.str() + ".safetensors")).string();
    nn::save_safetensors(file, teacher->state_dict(), {{"arch", o.arch}});
    const size_t at = spec.find("@TEACHER@");
    ASSERT_NE(at, std::string::npos) << "a case with teacher_arch names its teacher @TEACHER@";
    spec.replace(at, 9, file);
  }
  auto m = make_method_from_spec(spec);
  std::vector<TrainClock> clocks;
  for (const auto& c : split(meta["clocks"], ';')) {
    auto f = split(c, ',');
    ASSERT_EQ(f.size(), 5u) << c;
    clocks.push_back(
        {std::stoll(f[0]), std::stoll(f[1]), std::stoll(f[2]), std::stoll(f[3]), std::stod(f[4])});
  }
  BuildContext ctx;
  ctx.device = device;
  ctx.arch = meta["arch"];
  ctx.num_classes = classes;
  ctx.image_size = std::stoll(meta["image_size"]);
  ctx.lr = lr;
  ctx.epochs = clocks[0].epochs;
  ctx.iters_per_epoch = clocks[0].iters_per_epoch;
  // The training set is the batch itself (image i has index i): memory banks size to it.
  std::vector<int64_t> train_labels(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) train_labels[static_cast<size_t>(i)] = i % classes;
  ctx.train_labels = from_vector<int64_t>(train_labels, {batch});  // on the CPU, as the trainer
  m->build(ctx);
  det_init(*m);
  // As the trainer: networks built and initialised on the CPU, then moved (here also to dtype).
  for (auto& [n, net] : m->networks()) {
    net->to(dtype);
    net->to(device);
  }

  // Every tensor of every network once (first name wins), and its value before the run.
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [net_name, net] : m->networks())
    for (const auto& [name, t] : net->state_dict())
      if (seen.insert(t.impl()).second) tensors.emplace_back(net_name + "/" + name, t);
  std::map<std::string, Tensor> before;
  for (const auto& [key, t] : tensors)
    before[key] = ops::clone(ops::to(ops::to(t, kCPU), DType::Float64));

  std::vector<optim::ParamGroup> groups = optimizer_groups(*m, lr, weight_decay);
  std::vector<double> base_lr;
  for (const auto& g : groups) base_lr.push_back(g.lr);
  optim::SGDOptions so;
  so.lr = lr;
  so.momentum = std::stod(meta["momentum"]);
  so.weight_decay = weight_decay;
  so.nesterov = meta["nesterov"] == "true";
  optim::SGD sgd(groups, so);
  Batch b = det_batch(batch, ctx.image_size, m->num_views(), classes, dtype);
  if (!device.is_cpu()) {  // as the trainer hands a batch to a method on a device
    for (auto& v : b.views) v = ops::to(v, device);
    b.labels = ops::to(b.labels, device);
    b.indices = ops::to(b.indices, device);
  }

  // The steps, as the trainer runs them; every term compared after update() (which may add some).
  int64_t prev_epoch = -1;
  double worst_term = 0, worst_delta = 0;  // largest relative differences seen, for the log
  CapturedSteps graph_steps;               // StepMode::CapturedLikeTheTrainer
  for (size_t k = 0; k < clocks.size(); ++k) {
    SCOPED_TRACE("step " + std::to_string(k));
    const TrainClock& clock = clocks[k];
    for (size_t g = 0; g < base_lr.size(); ++g)
      sgd.param_groups()[g].lr = base_lr[g] * clock.lr_factor;
    m->set_training(true);
    if (clock.epoch != prev_epoch) m->on_epoch_start(clock);
    prev_epoch = clock.epoch;
    auto run_step = [&] {
      StepResult r = m->forward_train(b, clock);
      m->update(r, sgd, clock);
      m->after_update(clock);
      return r;
    };
    StepResult r = mode == StepMode::Eager
                       ? run_step()
                       : graph_steps.run(run_step, clock.epoch, clock.lr_factor);
    if (record) {
      record->steps.emplace_back();
      record->steps.back().emplace_back("loss", scalar(r.loss));
      for (const auto& [tname, t] : r.terms) record->steps.back().emplace_back(tname, scalar(t));
    }
    if (!compare) continue;
    const std::string step = "step" + std::to_string(k) + "/";
    std::set<std::string> expected;
    for (const auto& [key, t] : ref)
      if (key.rfind(step + "term/", 0) == 0) expected.insert(key.substr(step.size() + 5));
    std::set<std::string> got;
    for (const auto& [name, t] : r.terms) {
      got.insert(name);
      auto it = ref.find(step + "term/" + name);
      if (it == ref.end()) continue;
      const double want = scalar(it->second), have = scalar(t);
      worst_term = std::max(worst_term, std::fabs(have - want) / std::max(1.0, std::fabs(want)));
      EXPECT_NEAR(have, want, kTermRtol * std::max(1.0, std::fabs(want))) << "term " << name;
    }
    EXPECT_EQ(got, expected) << "okd's term names against the reference's";
    const double want = scalar(ref.at(step + "loss"));
    EXPECT_NEAR(scalar(r.loss), want, kTermRtol * std::max(1.0, std::fabs(want))) << "total loss";
  }

  if (record)
    for (const auto& [key, t] : tensors)
      record->finals.emplace_back(key,
                                  to_vector<double>(ops::to(ops::to(t, kCPU), DType::Float64)));
  if (!compare) return;

  // The change of every tensor over the run.
  size_t compared = 0;
  std::set<std::string> okd_keys;
  for (const auto& [key, t] : tensors) {
    okd_keys.insert(key);
    auto proj_it = ref.find("final/" + key + "/proj");
    if (proj_it == ref.end()) {
      ADD_FAILURE() << key << ": okd has this tensor, the reference has not";
      continue;
    }
    std::vector<double> d = to_vector<double>(ops::to(ops::to(t, kCPU), DType::Float64));
    const std::vector<double> d0 = to_vector<double>(before.at(key));
    const std::vector<double> r = det_uniform("proj/" + key, static_cast<int64_t>(d.size()));
    double proj = 0, l2 = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double delta = d[i] - d0[i];
      proj += delta * r[i];
      l2 += delta * delta;
    }
    l2 = std::sqrt(l2);
    const double want_l2 = scalar(ref.at("final/" + key + "/delta_l2"));
    const double tol = kDeltaRtol * want_l2 + 1e-13;
    if (want_l2 > 0)
      worst_delta = std::max(
          worst_delta,
          std::max(std::fabs(proj - scalar(proj_it->second)), std::fabs(l2 - want_l2)) / want_l2);
    EXPECT_NEAR(proj, scalar(proj_it->second), tol) << key << ": projection of its change";
    EXPECT_NEAR(l2, want_l2, tol) << key << ": L2 norm of its change";
    ++compared;
  }
  for (const auto& [key, t] : ref)
    if (key.rfind("final/", 0) == 0 && key.size() > 11 &&
        key.compare(key.size() - 5, 5, "/proj") == 0) {
      const std::string name = key.substr(6, key.size() - 11);
      EXPECT_TRUE(okd_keys.count(name)) << name << ": the reference has this tensor, okd has not";
    }
  std::string where = device.is_cpu() ? "" : " on " + device.str();
  if (mode == StepMode::CapturedLikeTheTrainer)
    where += ", captured " + std::to_string(graph_steps.captures()) + "x, replayed " +
             std::to_string(graph_steps.replays()) + "x";
  std::printf(
      "%s (%s%s): %zu steps, %zu tensors compared; largest relative difference: terms %.1e, "
      "changes %.1e\n",
      name.c_str(), spec.c_str(), where.c_str(), clocks.size(), compared, worst_term, worst_delta);
}

}  // namespace okd::distill::parity
