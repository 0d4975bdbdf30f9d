// The CUDA entry points of the multi-tensor Adam step (ops::adam_step_foreach_, update.h), kept
// here rather than in tensor/cuda/cuda_kernels.inc with the other kernels: cuda:: forwards to the
// emulator or the GPU (tensor/cuda/dispatch.cpp), cuda::gpu launches the kernel (update_cuda.cu;
// a throwing stub in update_cpu.cpp in a build without CUDA). The emulator loops emu::adam_step_.
// Operands are checked by ops::adam_step_foreach_ before either is called.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/ops/update.h"

namespace okd::cuda {
void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const ops::AdamStep& s);
}  // namespace okd::cuda

namespace okd::cuda::gpu {
void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const ops::AdamStep& s);
}  // namespace okd::cuda::gpu
