// Optimizer update steps as raw in-place ops (the loops of torch.optim.SGD and Adam/AdamW, in
// PyTorch's order of operations), on the CPU here and on CUDA in update_cuda.cu. optim/ computes
// the scalars and owns the state; these only update the tensors they are given.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace okd::ops {

struct SgdStep {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
  bool first = false;  // the momentum buffer is initialised with this step's gradient
};
// param -= lr * g with g = grad + weight_decay * param, through the momentum buffer when momentum
// is nonzero (buf = first ? g : momentum * buf + (1 - dampening) * g; Nesterov: g + momentum *
// buf). Every tensor contiguous, of the parameter's shape, dtype and device.
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s);
// sgd_step_ for many parameters with one set of scalars (a parameter group's): on CUDA a few
// launches (one per chunk of up to 48 tensors, passed by value to the kernel) instead of one per
// parameter, the same arithmetic; on the CPU a loop of sgd_step_. Every parameter on one device,
// one dtype; momentum_buffers empty when s.momentum is 0.
void sgd_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& momentum_buffers, const SgdStep& s);

struct AdamStep {
  double lr = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t step = 1;        // t of the bias corrections (updates including this one)
  bool decoupled = false;  // AdamW: param *= 1 - lr * weight_decay instead of g += wd * param
  bool amsgrad = false;
  // Optional, on a device: an int64 scalar there holding t, which the kernel reads instead of
  // `step` (so a captured update, tensor/cuda/graph.h, is replayed with the bias corrections of
  // the advanced count). The CPU op uses `step`; the emulator reads the counter as the kernel does.
  Tensor step_counter;
};
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; (amsgrad: vmax = max(vmax, v), used for v);
// param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s);
// adam_step_ for many parameters with one set of scalars (a parameter group's) but each its own
// t: steps[i] (host), or the int64 scalar step_counters[i] on the device when step_counters is not
// empty (s.step is not read; s.step_counter must be undefined). On CUDA one launch per chunk of up
// to 48 tensors (passed by value to the kernel) instead of one per parameter, the same arithmetic;
// on the CPU a loop of adam_step_. Every parameter on one device, one dtype; max_exp_avg_sqs empty
// unless s.amsgrad.
void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const AdamStep& s);

// counter += amount for every element of an int64 tensor, on its device without a host read: step
// counters such as BatchNorm's num_batches_tracked, which a captured step must advance on the
// device (a count kept on the host would be frozen into the graph).
void counter_add_(const Tensor& counter, int64_t amount);

}  // namespace okd::ops
