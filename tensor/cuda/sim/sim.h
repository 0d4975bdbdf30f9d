// The SIMT simulator's internal interface (tensor/cuda/sim/README.md): how the kernel engine
// (simt.cpp) and the cuBLAS and cuDNN stand-ins queue work on a simulated stream, and report a
// failed launch.
#pragma once
#include <cuda_runtime.h>  // the simulator's own (tensor/cuda/sim/include)

#include <functional>

namespace okd::sim {

// Runs work at once (every simulated stream is synchronous), or, while stream is being captured
// (cudaStreamBeginCapture), records it as one node of the graph being captured, to run on each
// cudaGraphLaunch. what names the node in errors ("cublasSgemmStridedBatched").
void enqueue(cudaStream_t stream, std::function<void()> work, const char* what);

// What cudaGetLastError returns next (a failed launch sets it).
void set_last_error(cudaError_t e);

}  // namespace okd::sim
