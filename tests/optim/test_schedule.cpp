// Learning-rate schedules against torch.optim.lr_scheduler: the lr at every epoch (per-epoch
// stepping) and every iteration (per-iteration stepping, 3 iterations an epoch) of a 300-epoch
// run, from tests/reference/make_optim_refs.py. Also the pure-function property (a resumed run
// gets the same lr) and misuse errors.
#include <cmath>
#include <memory>

#include "optim/schedule.h"
#include "optim/sgd.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::optim;

namespace {

constexpr int64_t kEpochs = 300, kItersPerEpoch = 3;

// Compares base_lr * factor with the reference for every epoch (or iteration) of the run.
void expect_follows(const LrSchedulePtr& s, double base_lr, const std::string& ref_name) {
  Tensor ref = test::load_ref("optim/lr_" + ref_name);
  const std::vector<double> want = to_vector<double>(ref);
  const int64_t per_epoch = s->timing.per_iteration ? kItersPerEpoch : 1;
  ASSERT_EQ(static_cast<int64_t>(want.size()), kEpochs * per_epoch) << ref_name;
  int failures = 0;
  for (int64_t e = 0; e < kEpochs; ++e)
    for (int64_t i = 0; i < kItersPerEpoch; ++i) {
      const double got = s->lr(base_lr, e, i, kItersPerEpoch);
      const double expected =
          want[static_cast<size_t>(e * per_epoch + (s->timing.per_iteration ? i : 0))];
      // torch's chainable forms accumulate rounding; 1e-9 relative is far below any effect.
      if (std::fabs(got - expected) > 1e-9 * std::fabs(expected) + 1e-15 && ++failures <= 5)
        ADD_FAILURE() << ref_name << ": epoch " << e << " iteration " << i << ": lr " << got
                      << ", torch " << expected << " (" << s->describe() << ")";
    }
  EXPECT_EQ(failures, 0) << ref_name;
}

template <class S, class... A>
LrSchedulePtr make(bool per_iteration, A&&... args) {
  auto s = std::make_shared<S>(std::forward<A>(args)...);
  s->timing.per_iteration = per_iteration;
  return s;
}

LrSchedulePtr warmup(LrSchedulePtr main, double start, double length, WarmupMode mode,
                     bool in_iterations = false) {
  WarmupOptions w;
  w.start_factor = start;
  w.length = length;
  w.mode = mode;
  w.in_iterations = in_iterations;
  return std::make_shared<WarmupSchedule>(std::move(main), w);
}

}  // namespace

TEST(Schedule, FollowsPyTorchPerEpochAndPerIteration) {
  for (bool per_iteration : {false, true}) {
    const std::string suffix = per_iteration ? "_iter" : "_epoch";
    expect_follows(make<MultiStepSchedule>(per_iteration, std::vector<double>{150, 225}, 0.1), 0.1,
                   "multistep" + suffix);
    expect_follows(make<StepSchedule>(per_iteration, 30.0, 0.5), 0.1, "step" + suffix);
    expect_follows(make<CosineSchedule>(per_iteration, 300.0, 1e-4 / 0.1), 0.1, "cosine" + suffix);
    expect_follows(make<PolynomialSchedule>(per_iteration, 300.0, 0.9), 0.1, "polynomial" + suffix);
    expect_follows(warmup(make<CosineSchedule>(per_iteration, 295.0), 0.1, 5, WarmupMode::Shift),
                   0.1, "warmup_shift_cosine" + suffix);
    expect_follows(
        warmup(make<MultiStepSchedule>(per_iteration, std::vector<double>{150, 225}, 0.1), 0.25, 5,
               WarmupMode::Shift),
        0.1, "warmup_shift_multistep" + suffix);
    // FFSD's ImageNet-style recipe: up to 0.8 over 5 epochs, x0.1 at epochs 30 and 60.
    expect_follows(warmup(make<MultiStepSchedule>(per_iteration, std::vector<double>{60, 30}, 0.1),
                          0.125, 5, WarmupMode::Multiply),
                   0.8, "warmup_multiply_multistep" + suffix);
  }
}

TEST(Schedule, SteppingAtTheStartOfTheEpochIsOneStepAhead) {
  // EKD-FWSNet: MultiStepLR(150, 250) stepped at the start of each epoch drops at epoch index 149.
  for (bool per_iteration : {false, true}) {
    auto s = make<MultiStepSchedule>(per_iteration, std::vector<double>{150, 250}, 0.1);
    s->timing.step_at_start = true;
    expect_follows(s, 0.1, per_iteration ? "multistep_start_iter" : "multistep_start_epoch");
  }
  auto s = std::make_shared<MultiStepSchedule>(std::vector<double>{150, 250}, 0.1);
  s->timing.step_at_start = true;
  EXPECT_EQ(s->factor(148, 0, 10), 1.0);
  EXPECT_NEAR(s->factor(149, 0, 10), 0.1, 1e-15);
}

TEST(Schedule, WarmupInIterations) {
  auto s = warmup(make<MultiStepSchedule>(true, std::vector<double>{150, 225}, 0.1), 0.1, 7,
                  WarmupMode::Multiply, /*in_iterations=*/true);
  expect_follows(s, 0.1, "warmup_iters_multistep_iter");
  EXPECT_TRUE(s->timing.per_iteration);  // taken from the wrapped schedule
}

TEST(Schedule, IsAPureFunctionOfTheClock) {
  // The same (epoch, iteration) gives the same lr whatever was evaluated before (resume).
  auto s = warmup(make<CosineSchedule>(true, 100.0, 0.01), 0.1, 2, WarmupMode::Shift);
  const double late = s->factor(57, 2, 11);
  for (int64_t e = 0; e < 57; ++e) (void)s->factor(e, 0, 11);
  EXPECT_EQ(s->factor(57, 2, 11), late);
  // Per-epoch stepping: constant within an epoch.
  auto m = make<CosineSchedule>(false, 10.0);
  EXPECT_EQ(m->factor(3, 0, 50), m->factor(3, 49, 50));
  EXPECT_LT(m->factor(4, 0, 50), m->factor(3, 49, 50));
  EXPECT_EQ(std::make_shared<ConstantSchedule>()->factor(123, 4, 5), 1.0);
  // Cosine and polynomial hold their final value after the end.
  EXPECT_NEAR(m->factor(12, 0, 50), 0.0, 1e-15);
  EXPECT_NEAR(make<PolynomialSchedule>(false, 10.0, 2.0, 0.05)->factor(20, 0, 1), 0.05, 1e-15);
}

TEST(Schedule, ApplySetsEveryGroupFromItsBaseLr) {
  Tensor a = tensor({1.0}).requires_grad_(), b = tensor({2.0}).requires_grad_();
  ParamGroup g0, g1;
  g0.params = {a};
  g1.params = {b};
  g1.lr = 0.01;
  SGDOptions o;
  o.lr = 0.1;
  SGD sgd(std::vector<ParamGroup>{g0, g1}, o);
  MultiStepSchedule s({2}, 0.1);
  s.apply(sgd, {0.1, 0.01}, 2, 0, 5);
  EXPECT_NEAR(sgd.param_groups()[0].lr, 0.01, 1e-15);
  EXPECT_NEAR(sgd.param_groups()[1].lr, 0.001, 1e-15);
  EXPECT_THROW(s.apply(sgd, {0.1}, 0, 0, 5), Error);
}

TEST(Schedule, MakeScheduleFromConfigValues) {
  ScheduleSpec spec;
  spec.kind = "cosine";
  spec.epochs = 300;
  spec.warmup_epochs = 5;
  spec.warmup_start_factor = 0.1;
  spec.warmup_mode = WarmupMode::Shift;
  spec.timing.per_iteration = true;
  expect_follows(make_schedule(spec), 0.1, "warmup_shift_cosine_iter");
  spec.kind = "multistep";
  spec.milestones = {150, 225};
  spec.warmup_epochs = 0;
  spec.timing.per_iteration = false;
  expect_follows(make_schedule(spec), 0.1, "multistep_epoch");
  spec.kind = "exponential";
  try {
    (void)make_schedule(spec);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'exponential'"), std::string::npos) << e.what();
  }
}

TEST(Schedule, MisuseIsAClearError) {
  EXPECT_THROW(StepSchedule(0, 0.1), Error);
  EXPECT_THROW(CosineSchedule(-1), Error);
  EXPECT_THROW(WarmupSchedule(nullptr, WarmupOptions{}), Error);
  MultiStepSchedule s({1}, 0.1);
  try {
    (void)s.factor(0, 5, 5);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("iteration 5"), std::string::npos) << e.what();
  }
  EXPECT_NE(s.describe().find("multistep(1; gamma 0.1)"), std::string::npos) << s.describe();
}
