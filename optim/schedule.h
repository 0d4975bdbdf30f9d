// Learning-rate schedules as pure functions of the training clock, so a resumed run gets the same
// lr without any scheduler state: factor(epoch, iteration_in_epoch, iters_per_epoch) is the
// multiplier of each group's base lr (lr = base_lr * factor; every group keeps its own ratio).
//
// The clock. PyTorch schedulers count their step() calls; k calls give the lr of "time" k. We
// compute k from where training is:
//   per epoch (timing.per_iteration = false): k = epoch (+1 when stepped at the start of the
//       epoch, as EKD-FWSNet's reference does: the drop at milestone 150 then happens at the
//       beginning of epoch index 149); the lr is constant within an epoch.
//   per iteration: k = epoch * iters_per_epoch + iteration (+1 when stepped before the update).
// Schedules see t = k (per epoch) or t = k / iters_per_epoch (per iteration), in epochs, so
// every duration and milestone below is given in epochs whatever the stepping.
//
// Definitions (t in epochs, f the factor):
//   constant:    f = 1
//   step:        f = gamma ^ floor(t / step_epochs)                   (StepLR)
//   multistep:   f = gamma ^ #{milestones m : m <= t}                 (MultiStepLR)
//   cosine:      f = r + (1 - r) (1 + cos(pi min(t, T) / T)) / 2      (CosineAnnealingLR,
//                r = final lr / base lr, i.e. eta_min = r * base_lr; held at r after T)
//   polynomial:  f = r + (1 - r) (1 - min(t, T) / T) ^ power          (PolynomialLR when r = 0)
//   warmup W in front of a schedule S, w(t) = s0 + (1 - s0) min(t / D, 1) (LinearLR):
//     multiply:  f = w(t) * S(t)         (ChainedScheduler; S keeps absolute time, e.g. FFSD's
//                                         ImageNet recipe: warm up to 0.8 over 5 epochs, then
//                                         x0.1 at epochs 30 and 60)
//     shift:     f = w(t) for t < D, S(t - D) after  (SequentialLR: S starts after the warmup)
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace okd::optim {

class Optimizer;

struct ScheduleTiming {
  bool per_iteration = false;  // step the scheduler every iteration instead of every epoch
  bool step_at_start = false;  // step before the epoch's (iteration's) update instead of after
};

// Where the schedule is evaluated: t in epochs of the scheduler's clock, and the epoch length
// (to convert durations given in iterations).
struct ScheduleClock {
  double epochs = 0;
  int64_t iters_per_epoch = 1;
};

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // The factor at clock c (see the definitions above).
  virtual double factor_at(const ScheduleClock& c) const = 0;
  // "multistep(150, 225; gamma 0.1)" and the like, for logs.
  virtual std::string describe() const = 0;

  ScheduleClock clock(int64_t epoch, int64_t iteration, int64_t iters_per_epoch) const;
  double factor(int64_t epoch, int64_t iteration, int64_t iters_per_epoch) const {
    return factor_at(clock(epoch, iteration, iters_per_epoch));
  }
  double lr(double base_lr, int64_t epoch, int64_t iteration, int64_t iters_per_epoch) const {
    return base_lr * factor(epoch, iteration, iters_per_epoch);
  }
  // Sets group i's lr to base_lrs[i] * factor (one base lr per group).
  void apply(Optimizer& optimizer, const std::vector<double>& base_lrs, int64_t epoch,
             int64_t iteration, int64_t iters_per_epoch) const;

  // Only the outermost schedule's timing counts (a wrapped schedule is evaluated at its clock).
  ScheduleTiming timing;
};

using LrSchedulePtr = std::shared_ptr<LrSchedule>;

class ConstantSchedule : public LrSchedule {
 public:
  double factor_at(const ScheduleClock&) const override { return 1.0; }
  std::string describe() const override { return "constant"; }
};

class StepSchedule : public LrSchedule {
 public:
  StepSchedule(double step_epochs, double gamma);
  double factor_at(const ScheduleClock& c) const override;
  std::string describe() const override;

 private:
  double step_epochs_, gamma_;
};

class MultiStepSchedule : public LrSchedule {
 public:
  // Milestones in epochs, in any order; a repeated milestone applies gamma twice (as PyTorch).
  MultiStepSchedule(std::vector<double> milestones, double gamma);
  double factor_at(const ScheduleClock& c) const override;
  std::string describe() const override;

 private:
  std::vector<double> milestones_;
  double gamma_;
};

class CosineSchedule : public LrSchedule {
 public:
  // final_factor = eta_min / base_lr.
  CosineSchedule(double total_epochs, double final_factor = 0);
  double factor_at(const ScheduleClock& c) const override;
  std::string describe() const override;

 private:
  double total_, final_;
};

class PolynomialSchedule : public LrSchedule {
 public:
  PolynomialSchedule(double total_epochs, double power = 1.0, double final_factor = 0);
  double factor_at(const ScheduleClock& c) const override;
  std::string describe() const override;

 private:
  double total_, power_, final_;
};

enum class WarmupMode { Multiply, Shift };

struct WarmupOptions {
  double start_factor = 1.0 / 3;  // PyTorch LinearLR's default
  double length = 5;              // in epochs, or iterations when in_iterations
  bool in_iterations = false;
  WarmupMode mode = WarmupMode::Multiply;
};

class WarmupSchedule : public LrSchedule {
 public:
  // Timing is taken from main (set it on the warmup afterwards to change it).
  WarmupSchedule(LrSchedulePtr main, WarmupOptions options);
  double factor_at(const ScheduleClock& c) const override;
  std::string describe() const override;
  // The warmup's length in epochs for a given epoch length.
  double length_epochs(int64_t iters_per_epoch) const;

 private:
  LrSchedulePtr main_;
  WarmupOptions options_;
};

// A schedule from configuration values (what a --schedule flag and its companions give).
// kind: constant | step | multistep | cosine | polynomial. With a warmup in Shift mode, cosine and
// polynomial run over the epochs left after the warmup; in Multiply mode over all epochs.
struct ScheduleSpec {
  std::string kind = "multistep";
  double epochs = 300;             // length of the run (cosine, polynomial)
  std::vector<double> milestones;  // multistep
  double gamma = 0.1;              // step, multistep
  double step_epochs = 30;         // step
  double final_factor = 0;         // cosine, polynomial: final lr / base lr
  double power = 1;                // polynomial
  double warmup_epochs = 0;        // 0: no warmup
  double warmup_start_factor = 1.0 / 3;
  WarmupMode warmup_mode = WarmupMode::Multiply;
  ScheduleTiming timing;
};
// Throws naming the unknown kind and the valid ones.
LrSchedulePtr make_schedule(const ScheduleSpec& spec);

}  // namespace okd::optim
