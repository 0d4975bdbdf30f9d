// Parameter initialisers (PyTorch's torch.nn.init formulas), drawing from an okd::Generator so a
// seed reproduces a network exactly. fan_in/fan_out follow PyTorch: for a weight of shape
// [d0, d1, k...], fan_in = d1 * prod(k) and fan_out = d0 * prod(k).
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace okd::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, ReLU, LeakyReLU, Tanh, Sigmoid };

std::pair<int64_t, int64_t> fan_in_and_out(const Tensor& weight);
double calculate_gain(Nonlinearity nl, double param = 0.01);

// All write into t in place (t keeps its identity; call before training or under NoGradGuard).
void uniform_(Tensor& t, double lo, double hi, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// std = gain / sqrt(fan), gain = calculate_gain(nl, a).
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0, FanMode mode = FanMode::FanIn,
                     Nonlinearity nl = Nonlinearity::LeakyReLU);
// bound = gain * sqrt(3 / fan).
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0, FanMode mode = FanMode::FanIn,
                      Nonlinearity nl = Nonlinearity::LeakyReLU);
// bound = gain * sqrt(6 / (fan_in + fan_out)); std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Generator& gen, double gain = 1.0);
void xavier_normal_(Tensor& t, Generator& gen, double gain = 1.0);
// PyTorch's default for Linear and Conv: kaiming_uniform_(a = sqrt(5)) on the weight, i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_weight_(Tensor& weight, Generator& gen);
void default_bias_(Tensor& bias, const Tensor& weight, Generator& gen);

}  // namespace okd::nn::init
