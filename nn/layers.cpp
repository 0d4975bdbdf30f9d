// Forward passes and default initialisation of the standard layers.
#include "nn/layers.h"

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "tensor/ops/copy.h"

namespace okd::nn {

namespace F = functional;

Conv2d::Conv2d(const Conv2dOptions& o, Generator& gen) : Layer("Conv2d"), o_(o) {
  OKD_CHECK(o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0, "Conv2d: channels (",
            o.in_channels, " in, ", o.out_channels, " out) must be divisible by groups ", o.groups);
  Tensor w = empty({o.out_channels, o.in_channels / o.groups, o.kernel_size, o.kernel_size});
  init::default_weight_(w, gen);
  weight = register_parameter("weight", w);
  if (o.bias) {
    Tensor b = empty({o.out_channels});
    init::default_bias_(b, w, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  return F::conv2d(x, weight, bias, o_.stride, o_.padding, o_.dilation, o_.groups);
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& o, Generator& gen)
    : Layer("ConvTranspose2d"), o_(o) {
  OKD_CHECK(o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0,
            "ConvTranspose2d: channels must be divisible by groups ", o.groups);
  Tensor w = empty({o.in_channels, o.out_channels / o.groups, o.kernel_size, o.kernel_size});
  init::default_weight_(w, gen);
  weight = register_parameter("weight", w);
  if (o.bias) {
    Tensor b = empty({o.out_channels});
    init::default_bias_(b, w, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return F::conv_transpose2d(x, weight, bias, o_.stride, o_.padding, o_.output_padding, o_.dilation,
                             o_.groups);
}

BatchNorm::BatchNorm(int64_t c, int spatial_dims, double eps, double momentum, bool affine,
                     bool track)
    : Layer(spatial_dims == 2 ? "BatchNorm2d" : "BatchNorm1d"),
      num_features_(c),
      spatial_dims_(spatial_dims),
      eps_(eps),
      momentum_(momentum) {
  if (affine) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", zeros({c}));
    running_var = register_buffer("running_var", ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::Int64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) { return run(x, false); }
Tensor BatchNorm::forward_relu(const Tensor& x) { return run(x, true); }
Tensor BatchNorm::forward_add_relu(const Tensor& x, const Tensor& residual) {
  return run(x, true, residual);
}

Tensor BatchNorm::run(const Tensor& x, bool relu, const Tensor& residual) {
  const int64_t want_rank = spatial_dims_ == 2 ? 4 : 2;
  OKD_CHECK(x.dim() == want_rank || (spatial_dims_ == 0 && x.dim() == 3), type_name(),
            ": expected a ", want_rank, "-D input, got ", shape_str(x.shape()));
  OKD_CHECK(x.size(1) == num_features_, type_name(), ": input has ", x.size(1),
            " channels but the layer was built for ", num_features_, " (input ",
            shape_str(x.shape()), ")");
  const bool use_batch_stats = is_training() || !running_mean.defined();
  // num_batches_tracked advances with the running statistics, in their launch (on a device it
  // advances there: no host read, and nothing a captured step would freeze).
  if (residual.defined())
    return F::batch_norm_add_relu(x, residual, running_mean, running_var, weight, bias,
                                  use_batch_stats, momentum_, eps_, num_batches_tracked);
  if (relu)
    return F::batch_norm_relu(x, running_mean, running_var, weight, bias, use_batch_stats,
                              momentum_, eps_, num_batches_tracked);
  return F::batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum_, eps_,
                       num_batches_tracked);
}

Linear::Linear(int64_t in, int64_t out, Generator& gen, bool has_bias) : Layer("Linear") {
  Tensor w = empty({out, in});
  init::default_weight_(w, gen);
  weight = register_parameter("weight", w);
  if (has_bias) {
    Tensor b = empty({out});
    init::default_bias_(b, w, gen);
    bias = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) { return F::linear(x, weight, bias); }

Tensor ReLU::forward(const Tensor& x) { return okd::relu(x); }

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p)
    : Layer("MaxPool2d"), k_(k), s_(s < 0 ? k : s), p_(p) {}
Tensor MaxPool2d::forward(const Tensor& x) { return F::max_pool2d(x, k_, s_, p_); }

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p)
    : Layer("AvgPool2d"), k_(k), s_(s < 0 ? k : s), p_(p) {}
Tensor AvgPool2d::forward(const Tensor& x) { return F::avg_pool2d(x, k_, s_, p_); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return F::adaptive_avg_pool2d(x, h_, w_); }

Tensor Dropout::forward(const Tensor& x) { return F::dropout(x, p_, is_training(), gen_); }

Tensor Flatten::forward(const Tensor& x) { return okd::flatten(x, start_, end_); }

Sequential::Sequential(std::vector<LayerPtr> layers) : Layer("Sequential") {
  for (auto& l : layers) push_back(std::move(l));
}

void Sequential::push_back(LayerPtr layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& l : layers_) y = l->forward(y);
  return y;
}

void ModuleList::push_back(ModulePtr m) {
  register_module(std::to_string(items_.size()), m);
  items_.push_back(std::move(m));
}

}  // namespace okd::nn
