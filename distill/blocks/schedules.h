// The epoch-indexed weight schedules of the KD methods (seeds.md §1.5, §6.4; classic.md §1.3).
// All are constant within an epoch.
#pragma once
#include <cstdint>
#include <string>

namespace okd::distill {

// w(e) = exp(-5 (1 - clip(e, 0, L)/L)^2), e from 0 (FFL, ONE, OKDDip, PCL, MATE). L <= 0 gives 1.
double sigmoid_rampup(double epoch, double length);

// FFSD's warm-up factor, epochs numbered from 1: exp(-5 (1 - e/5)^2) for e <= 5, else 1.
double ffsd_warmup(double epoch_from_one, double length = 5);

// DKEL's ramp-up as the reference computes it ([REF-QUIRK]: divides by lambda where the ramp
// length was meant): lambda if e > 80 else lambda * exp(-5 (1 - e/lambda)^2).
double dkel_rampup_reference(double epoch, double lambda, double length = 80);
// The intended DKEL ramp-up: lambda * sigmoid_rampup(e, length).
double dkel_rampup_intended(double epoch, double lambda, double length = 80);
// DKEL's decaying-ensemble weight: exp(-coef * e), 0 once it is below cutoff.
double dkel_decay_weight(double epoch, double coef, double cutoff);

}  // namespace okd::distill
