// Ramp-up and warm-up weights of the KD methods.
#include "distill/blocks/schedules.h"

#include <algorithm>
#include <cmath>

namespace okd::distill {

double sigmoid_rampup(double epoch, double length) {
  if (length <= 0) return 1.0;
  const double phase = 1.0 - std::clamp(epoch, 0.0, length) / length;
  return std::exp(-5.0 * phase * phase);
}

double ffsd_warmup(double e, double length) {
  if (e > length) return 1.0;
  const double phase = 1.0 - e / length;
  return std::exp(-5.0 * phase * phase);
}

double dkel_rampup_reference(double e, double lambda, double length) {
  if (e > length) return lambda;
  const double phase = 1.0 - e / lambda;
  return lambda * std::exp(-5.0 * phase * phase);
}

double dkel_rampup_intended(double e, double lambda, double length) {
  return lambda * sigmoid_rampup(e, length);
}

double dkel_decay_weight(double e, double coef, double cutoff) {
  const double w = std::exp(-coef * e);
  return w < cutoff ? 0.0 : w;
}

}  // namespace okd::distill
