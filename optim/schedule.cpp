// Learning-rate schedules: the clock and the closed forms of schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "optim/optimizer.h"
#include "tensor/error.h"

namespace okd::optim {

ScheduleClock LrSchedule::clock(int64_t epoch, int64_t iteration, int64_t iters_per_epoch) const {
  OKD_CHECK(iters_per_epoch > 0 && epoch >= 0 && iteration >= 0 && iteration < iters_per_epoch,
            "LrSchedule: expected epoch >= 0 and 0 <= iteration < iters_per_epoch, got epoch ",
            epoch, ", iteration ", iteration, ", iters_per_epoch ", iters_per_epoch);
  const int64_t ahead = timing.step_at_start ? 1 : 0;
  ScheduleClock c;
  c.iters_per_epoch = iters_per_epoch;
  if (timing.per_iteration) {
    // k / n is exact whenever k is a multiple of n, so milestones land on the right iteration.
    const int64_t k = epoch * iters_per_epoch + iteration + ahead;
    c.epochs = static_cast<double>(k) / static_cast<double>(iters_per_epoch);
  } else {
    c.epochs = static_cast<double>(epoch + ahead);
  }
  return c;
}

void LrSchedule::apply(Optimizer& optimizer, const std::vector<double>& base_lrs, int64_t epoch,
                       int64_t iteration, int64_t iters_per_epoch) const {
  auto& groups = optimizer.param_groups();
  OKD_CHECK(base_lrs.size() == groups.size(), "LrSchedule::apply: ", base_lrs.size(),
            " base lrs for an optimizer with ", groups.size(), " parameter groups");
  const double f = factor(epoch, iteration, iters_per_epoch);
  for (size_t i = 0; i < groups.size(); ++i) groups[i].lr = base_lrs[i] * f;
}

StepSchedule::StepSchedule(double step_epochs, double gamma)
    : step_epochs_(step_epochs), gamma_(gamma) {
  OKD_CHECK(step_epochs > 0, "StepSchedule: expected step_epochs > 0, got ", step_epochs);
  OKD_CHECK(gamma > 0, "StepSchedule: expected gamma > 0, got ", gamma);
}
double StepSchedule::factor_at(const ScheduleClock& c) const {
  return std::pow(gamma_, std::floor(c.epochs / step_epochs_));
}
std::string StepSchedule::describe() const {
  return str("step(every ", step_epochs_, " epochs; gamma ", gamma_, ")");
}

MultiStepSchedule::MultiStepSchedule(std::vector<double> milestones, double gamma)
    : milestones_(std::move(milestones)), gamma_(gamma) {
  OKD_CHECK(gamma > 0, "MultiStepSchedule: expected gamma > 0, got ", gamma);
  for (double m : milestones_)
    OKD_CHECK(m >= 0, "MultiStepSchedule: milestones must be >= 0, got ", m);
  std::sort(milestones_.begin(), milestones_.end());
}
double MultiStepSchedule::factor_at(const ScheduleClock& c) const {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), c.epochs) - milestones_.begin();
  return std::pow(gamma_, static_cast<double>(passed));
}
std::string MultiStepSchedule::describe() const {
  std::string s = "multistep(";
  for (size_t i = 0; i < milestones_.size(); ++i) s += str(i ? ", " : "", milestones_[i]);
  return s + str("; gamma ", gamma_, ")");
}

CosineSchedule::CosineSchedule(double total_epochs, double final_factor)
    : total_(total_epochs), final_(final_factor) {
  OKD_CHECK(total_epochs > 0, "CosineSchedule: expected total_epochs > 0, got ", total_epochs);
  OKD_CHECK(final_factor >= 0, "CosineSchedule: expected final_factor >= 0, got ", final_factor);
}
double CosineSchedule::factor_at(const ScheduleClock& c) const {
  const double t = std::clamp(c.epochs, 0.0, total_);
  return final_ + (1 - final_) * (1 + std::cos(std::numbers::pi * t / total_)) / 2;
}
std::string CosineSchedule::describe() const {
  return str("cosine(", total_, " epochs; final factor ", final_, ")");
}

PolynomialSchedule::PolynomialSchedule(double total_epochs, double power, double final_factor)
    : total_(total_epochs), power_(power), final_(final_factor) {
  OKD_CHECK(total_epochs > 0, "PolynomialSchedule: expected total_epochs > 0, got ", total_epochs);
  OKD_CHECK(power > 0, "PolynomialSchedule: expected power > 0, got ", power);
  OKD_CHECK(final_factor >= 0, "PolynomialSchedule: expected final_factor >= 0, got ",
            final_factor);
}
double PolynomialSchedule::factor_at(const ScheduleClock& c) const {
  const double t = std::clamp(c.epochs, 0.0, total_);
  return final_ + (1 - final_) * std::pow(1.0 - t / total_, power_);
}
std::string PolynomialSchedule::describe() const {
  return str("polynomial(", total_, " epochs; power ", power_, "; final factor ", final_, ")");
}

WarmupSchedule::WarmupSchedule(LrSchedulePtr main, WarmupOptions options)
    : main_(std::move(main)), options_(options) {
  OKD_CHECK(main_ != nullptr, "WarmupSchedule: no schedule to put the warmup in front of");
  OKD_CHECK(options_.length > 0, "WarmupSchedule: expected a length > 0, got ", options_.length);
  OKD_CHECK(options_.start_factor >= 0 && options_.start_factor <= 1,
            "WarmupSchedule: expected start_factor in [0, 1], got ", options_.start_factor);
  timing = main_->timing;
}
double WarmupSchedule::length_epochs(int64_t iters_per_epoch) const {
  return options_.in_iterations ? options_.length / static_cast<double>(iters_per_epoch)
                                : options_.length;
}
double WarmupSchedule::factor_at(const ScheduleClock& c) const {
  const double d = length_epochs(c.iters_per_epoch);
  const double s0 = options_.start_factor;
  const double w = c.epochs >= d ? 1.0 : s0 + (1 - s0) * (c.epochs / d);
  if (options_.mode == WarmupMode::Multiply) return w * main_->factor_at(c);
  if (c.epochs < d) return w;
  ScheduleClock shifted = c;
  shifted.epochs = c.epochs - d;
  return main_->factor_at(shifted);
}
std::string WarmupSchedule::describe() const {
  return str("linear warmup from ", options_.start_factor, " over ", options_.length,
             options_.in_iterations ? " iterations" : " epochs",
             options_.mode == WarmupMode::Multiply ? ", times " : ", then ", main_->describe());
}

LrSchedulePtr make_schedule(const ScheduleSpec& spec) {
  OKD_CHECK(spec.warmup_epochs >= 0 && spec.warmup_epochs < spec.epochs,
            "make_schedule: expected warmup_epochs in [0, epochs = ", spec.epochs, "), got ",
            spec.warmup_epochs);
  const bool warm = spec.warmup_epochs > 0;
  const double span = warm && spec.warmup_mode == WarmupMode::Shift
                          ? spec.epochs - spec.warmup_epochs
                          : spec.epochs;
  LrSchedulePtr s;
  if (spec.kind == "constant")
    s = std::make_shared<ConstantSchedule>();
  else if (spec.kind == "step")
    s = std::make_shared<StepSchedule>(spec.step_epochs, spec.gamma);
  else if (spec.kind == "multistep")
    s = std::make_shared<MultiStepSchedule>(spec.milestones, spec.gamma);
  else if (spec.kind == "cosine")
    s = std::make_shared<CosineSchedule>(span, spec.final_factor);
  else if (spec.kind == "polynomial")
    s = std::make_shared<PolynomialSchedule>(span, spec.power, spec.final_factor);
  else
    OKD_FAIL("make_schedule: unknown schedule '", spec.kind,
             "' (expected constant, step, multistep, cosine or polynomial)");
  if (warm) {
    WarmupOptions w;
    w.start_factor = spec.warmup_start_factor;
    w.length = spec.warmup_epochs;
    w.mode = spec.warmup_mode;
    s = std::make_shared<WarmupSchedule>(s, w);
  }
  s->timing = spec.timing;
  return s;
}

}  // namespace okd::optim
