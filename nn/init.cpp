// Initialisers: each draws a fresh tensor from the generator and copies it into place.
#include "nn/init.h"

#include <cmath>

#include "tensor/ops/copy.h"

namespace okd::nn::init {

std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& w) {
  OKD_CHECK(w.dim() >= 2, "init: fan in and fan out need a tensor of rank >= 2, got ",
            shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t i = 2; i < w.dim(); ++i) receptive *= w.shape()[i];
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::Linear:
      return 1.0;
    case Nonlinearity::Sigmoid:
      return 1.0;
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::ReLU:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU:
      return std::sqrt(2.0 / (1 + param * param));
  }
  return 1.0;
}

namespace {
void assign(Tensor& t, const Tensor& values) { ops::copy_(t, values); }
}  // namespace

void uniform_(Tensor& t, double lo, double hi, Generator& gen) {
  assign(t, uniform(t.shape(), lo, hi, gen, t.dtype()));
}
void normal_(Tensor& t, double mean, double std, Generator& gen) {
  Tensor z = randn(t.shape(), gen, DType::Float64);
  double* p = z.data<double>();
  for (int64_t i = 0; i < z.numel(); ++i) p[i] = mean + std * p[i];
  assign(t, z);
}
void constant_(Tensor& t, double value) { ops::fill_(t, value); }
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void kaiming_normal_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  auto [fi, fo] = fan_in_and_out(t);
  double fan = mode == FanMode::FanIn ? fi : fo;
  normal_(t, 0.0, calculate_gain(nl, a) / std::sqrt(fan), gen);
}
void kaiming_uniform_(Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nl) {
  auto [fi, fo] = fan_in_and_out(t);
  double fan = mode == FanMode::FanIn ? fi : fo;
  double bound = calculate_gain(nl, a) * std::sqrt(3.0 / fan);
  uniform_(t, -bound, bound, gen);
}
void xavier_uniform_(Tensor& t, Generator& gen, double gain) {
  auto [fi, fo] = fan_in_and_out(t);
  double bound = gain * std::sqrt(6.0 / static_cast<double>(fi + fo));
  uniform_(t, -bound, bound, gen);
}
void xavier_normal_(Tensor& t, Generator& gen, double gain) {
  auto [fi, fo] = fan_in_and_out(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fi + fo)), gen);
}
void default_weight_(Tensor& w, Generator& gen) { kaiming_uniform_(w, gen, std::sqrt(5.0)); }
void default_bias_(Tensor& b, const Tensor& w, Generator& gen) {
  auto [fi, fo] = fan_in_and_out(w);
  (void)fo;
  double bound = fi > 0 ? 1.0 / std::sqrt(static_cast<double>(fi)) : 0.0;
  uniform_(b, -bound, bound, gen);
}

}  // namespace okd::nn::init
