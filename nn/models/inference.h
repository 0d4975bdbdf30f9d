// Inference with a zoo backbone: build the named architecture, load a safetensors checkpoint into
// it strictly (every key present, none extra, every shape equal), switch to eval mode, and run a
// float32 NCHW batch to logits. apps/predict and its PyTorch reference test share this code path.
#pragma once
#include <string>

#include "nn/models/backbone.h"

namespace okd::nn {

// Throws okd::Error naming the file when it is missing or unreadable, listing the known
// architectures when the name is unknown, and listing missing/unexpected keys and shape
// mismatches when the weights do not fit the architecture.
BackbonePtr load_backbone_for_inference(const BackboneOptions& options,
                                        const std::string& weights_path);

// Logits [N, classes] of images [N, C, H, W] (float32) under no-grad; the network must already be
// in the mode wanted (load_backbone_for_inference leaves it in eval mode). With batch_size > 0 the
// images go through in chunks of at most that many (bounded memory for a large input; in eval
// mode every image's logits are its own, so chunks change nothing but rounding at most). The
// chunks are moved to the network's device, and the logits come back on the images' device.
Tensor predict_logits(Backbone& net, const Tensor& images, int64_t batch_size = 0);

}  // namespace okd::nn
