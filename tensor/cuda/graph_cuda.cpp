// CapturedGraph on a GPU (graph.h): stream capture of okd's stream into a CUDA graph whose memory
// comes from a private pool of the caching allocator, instantiated once and launched per replay.
// Not yet run on a GPU (no GPU was lent to the session that wrote it; docs/cuda.md says what is
// untested); the emulated capture (graph.cpp) checks the same contract on the CPU.
#include <cuda_runtime.h>

#include "tensor/cuda/allocator.h"
#include "tensor/cuda/backends.h"
#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/context.h"

namespace okd::cuda::detail {

struct GpuGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;
  size_t nodes = 0;
};

GpuGraph* gpu_graph_capture(const std::function<void()>& fn, const char* what) {
  auto* g = new GpuGraph();
  cudaStream_t s = stream();
  // Relaxed: the allocator may cudaMalloc a new pool block while the stream is being captured.
  g->pool = begin_graph_pool();
  gpu::forget_bf16_copies();  // none made outside the graph may be read inside it
  cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    end_graph_pool();
    release_graph_pool(g->pool);
    delete g;
    OKD_CUDA_CHECK("CapturedGraph::capture", e);
  }
  try {
    SyncFreeScope scope(what);
    fn();
  } catch (...) {
    gpu::forget_bf16_copies();
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(s, &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    end_graph_pool();
    release_graph_pool(g->pool);
    delete g;
    throw;
  }
  end_graph_pool();
  gpu::forget_bf16_copies();  // nor one of the graph's pool outside it
  try {
    OKD_CUDA_CHECK("CapturedGraph::capture", cudaStreamEndCapture(s, &g->graph));
    OKD_CUDA_CHECK("CapturedGraph::capture", cudaGraphGetNodes(g->graph, nullptr, &g->nodes));
    OKD_CUDA_CHECK("CapturedGraph::capture", cudaGraphInstantiate(&g->exec, g->graph, 0));
    OKD_CUDA_CHECK("CapturedGraph::capture", cudaGraphLaunch(g->exec, s));
  } catch (...) {
    gpu_graph_destroy(g);
    throw;
  }
  return g;
}

void gpu_graph_launch(GpuGraph* g) {
  gpu::forget_bf16_copies();  // the replay writes tensors without advancing their versions
  OKD_CUDA_CHECK("CapturedGraph::replay", cudaGraphLaunch(g->exec, stream()));
}

int64_t gpu_graph_size(const GpuGraph* g) { return static_cast<int64_t>(g->nodes); }

void gpu_graph_destroy(GpuGraph* g) {
  if (g->exec) cudaGraphExecDestroy(g->exec);
  if (g->graph) cudaGraphDestroy(g->graph);
  // The graph's last launch may still be running: its pool's blocks go back to the shared lists,
  // where only work queued after it (stream order) can reuse them.
  release_graph_pool(g->pool);
  delete g;
}

}  // namespace okd::cuda::detail
