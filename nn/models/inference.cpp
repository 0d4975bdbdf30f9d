// Loading a zoo backbone with a checkpoint for inference, and running a batch (see inference.h).
#include "nn/models/inference.h"

#include <filesystem>

#include "autograd/tape.h"

namespace okd::nn {

namespace {
// Input channels the stem's first convolution expects (every zoo stem starts with a Conv2d).
int64_t stem_in_channels(const Backbone& net) {
  for (const auto& [name, layer] : net.stage(0).layers)
    if (auto conv = std::dynamic_pointer_cast<Conv2d>(layer)) return conv->options().in_channels;
  OKD_FAIL(net.type_name(), ": the stem has no convolution");
}
}  // namespace

BackbonePtr load_backbone_for_inference(const BackboneOptions& options,
                                        const std::string& weights_path) {
  OKD_CHECK(std::filesystem::is_regular_file(weights_path), "weights file '", weights_path,
            "' does not exist or is not a regular file");
  BackbonePtr net = make_backbone(options);  // throws listing the known architectures
  NamedTensors weights = load_safetensors(weights_path);
  try {
    net->load_state_dict(weights, /*strict=*/true);
  } catch (const Error& e) {
    OKD_FAIL("weights '", weights_path, "' do not fit --arch ", options.arch, " with ",
             options.num_classes, " classes: ", e.what());
  }
  net->eval();
  return net;
}

Tensor predict_logits(Backbone& net, const Tensor& images) {
  OKD_CHECK(images.dtype() == DType::Float32, net.type_name(), ": input must be float32, got ",
            dtype_name(images.dtype()), " ", shape_str(images.shape()));
  OKD_CHECK(images.dim() == 4, net.type_name(),
            ": input must be a batch of images [N, C, H, W], got ", shape_str(images.shape()));
  const int64_t channels = stem_in_channels(net);
  OKD_CHECK(images.size(1) == channels, net.type_name(), ": input has ", images.size(1),
            " channels but the network expects ", channels, " (input ", shape_str(images.shape()),
            ", NCHW)");
  NoGradGuard no_grad;
  return net.forward(images);
}

}  // namespace okd::nn
