// The two implementations behind the CUDA entry points of cuda_ops.h: cuda::gpu (the kernels of
// tensor/ops/*_cuda.cu, or throwing stubs in a build without CUDA) and cuda::emu (the CPU
// emulator of emulator.cpp). tensor/cuda/dispatch.cpp picks one per call.
#pragma once
#include <functional>

#include "tensor/cuda/cuda_ops.h"

namespace okd::cuda::gpu {
#include "tensor/cuda/cuda_kernels.inc"
}  // namespace okd::cuda::gpu

namespace okd::cuda::emu {
#include "tensor/cuda/cuda_kernels.inc"
}  // namespace okd::cuda::emu

// Whole-step capture's internals (graph.h): the emulated recording that dispatch.cpp feeds, and
// the CUDA graph of graph_cuda.cpp (throwing stubs in a build without CUDA).
namespace okd::cuda::detail {
using Recorded = std::function<void()>;
bool emulated_recording();  // inside an emulated CapturedGraph::capture on this thread
void record_emulated(Recorded call);
struct GpuGraph;
// Stream-captures fn on okd's stream (its allocations from a private pool), instantiates the
// graph and launches it once.
GpuGraph* gpu_graph_capture(const std::function<void()>& fn, const char* what);
void gpu_graph_launch(GpuGraph* g);
int64_t gpu_graph_size(const GpuGraph* g);
void gpu_graph_destroy(GpuGraph* g);
}  // namespace okd::cuda::detail

namespace okd::cuda::emu {
// Writes src's elements into dst (both emulated-device tensors of one shape): how a replayed
// out-of-place kernel delivers its result into the tensor the capture handed downstream.
void overwrite(const Tensor& dst, const Tensor& src);
}  // namespace okd::cuda::emu
