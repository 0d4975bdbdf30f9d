// predict: runs a zoo backbone with weights from a safetensors checkpoint (e.g. a PyTorch
// state_dict saved with safetensors, or an okd checkpoint) on a batch of images from a .npy file
// and writes the logits as .npy. The weights load strictly into --arch, in eval mode; the images
// go through in batches of --batch-size on --device (cpu, or cuda).
//
//   predict --arch resnet20 --num-classes 10 --weights w.safetensors --input x.npy --output y.npy
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "apps/lib/device_flag.h"
#include "nn/models/inference.h"
#include "tensor/npy.h"
#include "tensor/runtime.h"

namespace {

struct PredictArgs {
  okd::nn::BackboneOptions net;
  std::string weights, input, output, shortcut = "B", device = "cpu";
  int64_t batch_size = 256;
};

std::string known_archs() {
  std::string s;
  for (const auto& n : okd::nn::backbone_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

int run(PredictArgs a) {
  a.net.shortcut = a.shortcut[0];
  OKD_CHECK(std::filesystem::is_regular_file(a.input), "input file '", a.input,
            "' does not exist or is not a regular file");
  OKD_CHECK(a.batch_size >= 0, "--batch-size must be 0 (all at once) or more, got ", a.batch_size);
  const okd::Device device = okd::apps::device_from_flag(a.device);
  okd::Tensor images = okd::load_npy(a.input);
  okd::nn::BackbonePtr net = okd::nn::load_backbone_for_inference(a.net, a.weights);
  net->to(device);
  okd::Tensor logits = okd::nn::predict_logits(*net, images, a.batch_size);
  okd::save_npy(a.output, logits);
  std::printf("predict: %s (%lld classes, %lld parameters, %s) on %s %s -> logits %s in %s\n",
              a.net.arch.c_str(), static_cast<long long>(a.net.num_classes),
              static_cast<long long>(net->num_parameters()), device.str().c_str(), a.input.c_str(),
              okd::shape_str(images.shape()).c_str(), okd::shape_str(logits.shape()).c_str(),
              a.output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  okd::select_fast_blas_kernel(argv);  // may restart with OPENBLAS_CORETYPE set
  CLI::App app{
      "predict: load a safetensors checkpoint strictly into a zoo architecture (eval mode: BN\n"
      "uses its running statistics), run a float32 NCHW batch read from a .npy file, and write\n"
      "the logits [N, classes] as float32 .npy. Parameter names are PyTorch's (see\n"
      "docs/backbones.md), so a PyTorch state_dict saved with safetensors loads as it is."};
  app.footer(
      "Example (ResNet-20, option B, CIFAR-10):\n"
      "  predict --arch resnet20 --num-classes 10 --weights resnet20.safetensors \\\n"
      "          --input images.npy --output logits.npy\n"
      "Any wrn{d}_{k} (AT/CRD WRN) or wrn{d}_{k}_ffsd (FFSD's WRN) with d = 6n + 4 is accepted.\n"
      "Errors name the file, list the known architectures, or list the checkpoint's missing\n"
      "and unexpected keys and shape mismatches.");
  PredictArgs a;
  app.add_option("--arch", a.net.arch, "Architecture, one of: " + known_archs())->required();
  app.add_option("--num-classes", a.net.num_classes, "Classes of the classifier")
      ->required()
      ->check(CLI::PositiveNumber);
  app.add_option("--weights", a.weights, "Checkpoint in the safetensors format")->required();
  app.add_option("--input", a.input, "Images as a float32 .npy array [N, C, H, W], normalised")
      ->required();
  app.add_option("--output", a.output, "Where to write the logits (.npy, float32 [N, classes])")
      ->required();
  app.add_option("--shortcut", a.shortcut,
                 "CIFAR ResNet shortcut: B (1x1 conv + BN) or A (parameter-free)")
      ->capture_default_str()
      ->check(CLI::IsMember({"A", "B"}));
  app.add_option("--in-channels", a.net.in_channels, "Channels of the input images")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--device", a.device,
                 "cpu | cuda (OKD_CUDA_EMULATE=1 emulates cuda:0 on a machine without a GPU)")
      ->capture_default_str();
  app.add_option("--batch-size", a.batch_size,
                 "Images per forward pass (bounds memory; 0: the whole input at once)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(a);
  } catch (const okd::Error& e) {
    std::fprintf(stderr, "predict: error: %s\n", e.what());
    return 1;
  }
}
