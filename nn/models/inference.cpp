// Loading a zoo backbone with a checkpoint for inference, and running a batch (see inference.h).
#include "nn/models/inference.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "autograd/tape.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"
#include "tensor/ops/view.h"

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

Tensor predict_logits(Backbone& net, const Tensor& images, int64_t batch_size) {
  OKD_CHECK(images.dtype() == DType::Float32, net.type_name(), ": input must be float32, got ",
            dtype_name(images.dtype()), " ", shape_str(images.shape()));
  OKD_CHECK(images.dim() == 4, net.type_name(),
            ": input must be a batch of images [N, C, H, W], got ", shape_str(images.shape()));
  const int64_t channels = stem_in_channels(net);
  OKD_CHECK(images.size(1) == channels, net.type_name(), ": input has ", images.size(1),
            " channels but the network expects ", channels, " (input ", shape_str(images.shape()),
            ", NCHW)");
  OKD_CHECK(batch_size >= 0, "predict_logits: batch_size must be >= 0 (0: all at once), got ",
            batch_size);
  NoGradGuard no_grad;
  const std::vector<Tensor> params = net.parameters();
  const Device device = params.empty() ? images.device() : params[0].device();
  const int64_t n = images.size(0);
  const int64_t chunk = batch_size > 0 ? std::min(batch_size, std::max<int64_t>(n, 1)) : n;
  if (chunk >= n) return ops::to(net.forward(ops::to(images, device)), images.device());
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < n; start += chunk) {
    const Tensor x = ops::to(ops::narrow(images, 0, start, std::min(chunk, n - start)), device);
    parts.push_back(ops::to(net.forward(x), images.device()));
  }
  return ops::cat(parts, 0);
}

}  // namespace okd::nn
