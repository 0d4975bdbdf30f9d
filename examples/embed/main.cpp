// An application that embeds okd: it hands the library its own data (a std::vector of pixels),
// trains a network it defines itself with okd's layers, autograd and SGD, then trains two
// ResNet-20 peers with the library's DML method, saves the deployed peer as safetensors and
// checks that a fresh network loaded from the file predicts exactly the same logits.
// Exits 1 when training does not learn the task or the reload differs; scripts/check_install.sh
// builds it against an installed okd and runs it.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/tape.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "optim/sgd.h"
#include "tensor/ops/reduce.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tensor/tensor.h"

namespace F = okd::nn::functional;

// The application's data: n grey 16x16 images, horizontal stripes (label 0) or vertical stripes
// (label 1) at a random phase, under Gaussian noise, as plain vectors the way an application
// would hold them before handing them to okd.
struct Images {
  std::vector<float> pixels;  // n x 1 x 16 x 16
  std::vector<int64_t> labels;
};

static Images make_images(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Images d;
  for (int i = 0; i < n; ++i) {
    const int64_t label = i % 2;
    const int phase = static_cast<int>(rng() % 4);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        const int line = (label == 0 ? y : x) + phase;
        d.pixels.push_back((line % 4 < 2 ? 1.0f : -1.0f) + noise(rng));
      }
    d.labels.push_back(label);
  }
  return d;
}

// Rows [begin, begin + n) of the data as okd tensors: images [n, 1, 16, 16], labels [n].
static std::pair<okd::Tensor, okd::Tensor> batch_of(const Images& d, int begin, int n) {
  const auto px = d.pixels.begin() + begin * 256;
  std::vector<float> pixels(px, px + n * 256);
  std::vector<int64_t> labels(d.labels.begin() + begin, d.labels.begin() + begin + n);
  return {okd::from_vector<float>(pixels, {n, 1, 16, 16}), okd::from_vector<int64_t>(labels, {n})};
}

static double accuracy(const okd::Tensor& logits, const okd::Tensor& labels) {
  const auto predicted = okd::to_vector<int64_t>(okd::ops::argmax(logits, 1));
  const auto truth = okd::to_vector<int64_t>(labels);
  int right = 0;
  for (size_t i = 0; i < truth.size(); ++i) right += predicted[i] == truth[i];
  return static_cast<double>(right) / static_cast<double>(truth.size());
}

// A network defined by the application: conv 3x3 -> batch norm -> ReLU -> global average pool ->
// linear, built from okd's layers and registered so that parameters() and state_dict() see them.
class StripeNet : public okd::nn::Module {
 public:
  explicit StripeNet(okd::Generator& gen) : Module("StripeNet") {
    conv_ = register_module("conv", std::make_shared<okd::nn::Conv2d>(
                                        okd::nn::Conv2dOptions{1, 8, 3, 1, 1, 1, 1, false}, gen));
    bn_ = register_module("bn", std::make_shared<okd::nn::BatchNorm>(8, 2));
    fc_ = register_module("fc", std::make_shared<okd::nn::Linear>(8, 2, gen));
  }
  okd::Tensor forward(const okd::Tensor& x) {
    okd::Tensor h = okd::relu(bn_->forward(conv_->forward(x)));
    return fc_->forward(okd::flatten(F::adaptive_avg_pool2d(h, 1, 1), 1));
  }

 private:
  std::shared_ptr<okd::nn::Conv2d> conv_;
  std::shared_ptr<okd::nn::BatchNorm> bn_;
  std::shared_ptr<okd::nn::Linear> fc_;
};

static bool train_own_network(const Images& train, const Images& test) {
  okd::Generator gen(1);
  StripeNet net(gen);
  okd::optim::SGD sgd(net.parameters(), {.lr = 0.1, .momentum = 0.9});
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 60; ++step) {
    auto [x, y] = batch_of(train, (step * 32) % 512, 32);
    okd::Tensor loss = F::cross_entropy(net.forward(x), y);
    net.zero_grad();
    okd::backward(loss);
    sgd.step();
    (step == 0 ? first_loss : last_loss) = loss.item();
  }
  net.eval();
  okd::NoGradGuard no_grad;
  auto [x, y] = batch_of(test, 0, 256);
  const double acc = accuracy(net.forward(x), y);
  std::printf("own network: loss %.3f -> %.3f, test accuracy %.3f\n", first_loss, last_loss, acc);
  return last_loss < first_loss && acc >= 0.9;
}

// DML (two ResNet-20 peers that teach each other) through the Method interface train_cifar uses.
static std::unique_ptr<okd::distill::Method> build_dml() {
  auto method = okd::distill::make_method("dml");
  okd::distill::BuildContext ctx;
  ctx.arch = "resnet20";
  ctx.num_classes = 2;
  ctx.in_channels = 1;
  ctx.image_size = 16;
  ctx.seed = 3;
  method->build(ctx);
  return method;
}

static okd::Tensor deployed_logits(okd::distill::Method& method, const okd::Tensor& images) {
  for (auto& [member, logits] : method.eval_logits(images))
    if (member == method.deployed_member()) return logits;
  throw std::runtime_error("no logits for the deployed member");
}

static bool train_dml_and_reload(const Images& train, const Images& test) {
  auto method = build_dml();
  // The method's parameter groups (their own weight decay and lr scale) for the main optimizer.
  const okd::optim::SGDOptions options{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  okd::optim::SGD sgd(okd::distill::optimizer_groups(*method, options.lr, options.weight_decay),
                      options);
  okd::distill::TrainClock clock;
  clock.iters_per_epoch = 20;
  method->set_training(true);
  for (int step = 0; step < 20; ++step) {
    auto [x, y] = batch_of(train, (step * 32) % 512, 32);
    okd::distill::Batch batch;
    batch.views = {x};
    batch.labels = y;
    clock.step_in_epoch = step;
    okd::distill::StepResult result = method->forward_train(batch, clock);
    if (step % 5 == 0 || step == 19) {
      std::printf("dml step %2d: loss %.3f", step, result.loss.item());
      for (const auto& [term, value] : result.terms)
        std::printf("  %s %.3f", term.c_str(), value.item());
      std::printf("\n");
    }
    method->update(result, sgd, clock);
    method->after_update(clock);
  }
  method->set_training(false);  // batch norm from its running statistics
  auto [x, y] = batch_of(test, 0, 256);
  const okd::Tensor logits = deployed_logits(*method, x);
  const double acc = accuracy(logits, y);
  std::printf("dml: deployed member %s, test accuracy %.3f\n", method->deployed_member().c_str(),
              acc);

  // Save every network, load them into a freshly built method, compare the deployed logits.
  const auto path = std::filesystem::temp_directory_path() / "okd_embed_dml.safetensors";
  okd::nn::NamedTensors all;
  for (const auto& [name, net] : method->networks())
    for (auto& [key, value] : net->state_dict()) all.emplace_back(name + "/" + key, value);
  okd::nn::save_safetensors(path.string(), all, {{"method", "dml"}});
  auto fresh = build_dml();
  fresh->set_training(false);
  const okd::nn::NamedTensors loaded = okd::nn::load_safetensors(path.string());
  for (const auto& [name, net] : fresh->networks()) {
    okd::nn::NamedTensors mine;
    for (const auto& [key, value] : loaded)
      if (key.rfind(name + "/", 0) == 0) mine.emplace_back(key.substr(name.size() + 1), value);
    net->load_state_dict(mine);  // strict: a missing or extra key is an error
  }
  std::filesystem::remove(path);
  const auto a = okd::to_vector<float>(logits);
  const auto b = okd::to_vector<float>(deployed_logits(*fresh, x));
  const bool same = a == b;
  std::printf("reloaded from safetensors: logits %s\n", same ? "identical" : "DIFFER");
  return acc >= 0.9 && same;
}

int main(int, char** argv) {
  // OpenBLAS falls back to generic kernels on some new CPUs; this restarts the program once with
  // the right OPENBLAS_CORETYPE (docs/design-notes.md), as okd's own programs do.
  okd::select_fast_blas_kernel(argv);
  std::printf("%s\n", okd::runtime_summary().c_str());
  const Images train = make_images(512, 11), test = make_images(256, 12);
  try {
    const bool own = train_own_network(train, test);
    const bool dml = train_dml_and_reload(train, test);
    std::printf("%s\n", own && dml ? "embed example: OK" : "embed example: FAILED");
    return own && dml ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed example: error: %s\n", e.what());
    return 1;
  }
}
