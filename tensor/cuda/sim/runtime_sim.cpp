// The SIMT simulator's CUDA runtime (include/cuda_runtime.h): one device whose memory is host
// memory, synchronous streams, stream capture into graphs that replay their recorded work, and
// the runtime's rules that okd must keep: a launch's errors reach cudaGetLastError, freed or
// unknown pointers and out-of-range copies are errors, and a capture is invalidated by a
// synchronising call (cudaStreamSynchronize, cudaMemcpy, cudaEventSynchronize) on the capturing
// thread, as on a GPU. New device memory is filled with 0xff bytes (NaN in float32 and float64),
// so a kernel that reads what nobody wrote shows it.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/cuda/sim/sim.h"

struct CUstream_st {
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  CUgraph_st* graph = nullptr;
};
struct CUevent_st {};
struct CUgraph_st {
  struct Node {
    std::function<void()> work;
    std::string what;
  };
  std::vector<Node> nodes;
};
struct CUgraphExec_st {
  std::vector<CUgraph_st::Node> nodes;
};

namespace okd::sim {

namespace {

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local CUstream_st* t_capturing = nullptr;  // the stream this thread is capturing

CUstream_st g_legacy_stream;  // the default stream (nullptr), never captured

constexpr size_t kTotalBytes = size_t{16} << 30;  // what the simulated device says it has

struct Memory {
  std::mutex mu;
  std::map<const char*, size_t> device;  // live cudaMalloc blocks: start -> bytes
  std::map<const char*, size_t> host;    // live cudaHostAlloc blocks
  size_t allocated = 0;
};
Memory& memory() {
  static Memory* m = new Memory();
  return *m;
}

// Whether [p, p + n) lies inside one live block of `blocks`.
bool inside(const std::map<const char*, size_t>& blocks, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  auto it = blocks.upper_bound(c);
  if (it == blocks.begin()) return false;
  --it;
  return c >= it->first && c + n <= it->first + it->second;
}

CUstream_st* resolve(cudaStream_t s) { return s == nullptr ? &g_legacy_stream : s; }

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

// A synchronising call on a thread that is capturing: the capture is invalidated.
bool breaks_capture() {
  if (t_capturing == nullptr) return false;
  t_capturing->invalidated = true;
  return true;
}

bool device_range_ok(const void* p, size_t n) {
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  return n == 0 || inside(m.device, p, n) || inside(m.host, p, n);
}

}  // namespace

void set_last_error(cudaError_t e) { t_last_error = e; }

void enqueue(cudaStream_t stream, std::function<void()> work, const char* what) {
  CUstream_st* s = resolve(stream);
  if (s->capturing) {
    s->graph->nodes.push_back({std::move(work), what});
    return;
  }
  work();
}

}  // namespace okd::sim

using namespace okd::sim;

cudaError_t cudaGetDeviceCount(int* count) {
  // OKD_SIM_DEVICES=0 simulates a machine without a GPU.
  const char* env = std::getenv("OKD_SIM_DEVICES");
  *count = env != nullptr && std::string(env) == "0" ? 0 : 1;
  return *count == 0 ? fail(cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "okd SIMT simulator (CPU)");
  prop->totalGlobalMem = kTotalBytes;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer:
      return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched:
      return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureWrongThread:
      return "cudaErrorStreamCaptureWrongThread";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched:
      return "capture was not initiated in this stream";
    default:
      return cudaGetErrorName(e);
  }
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (t_capturing != nullptr && t_capturing->mode != cudaStreamCaptureModeRelaxed) {
    breaks_capture();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  if (bytes > kTotalBytes - m.allocated) return fail(cudaErrorMemoryAllocation);
  constexpr size_t kAlign = 256;  // what cudaMalloc guarantees
  const size_t rounded = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  void* q = std::aligned_alloc(kAlign, rounded);
  if (q == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(q, 0xff, rounded);
  m.device[static_cast<const char*>(q)] = bytes;
  m.allocated += rounded;
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  if (t_capturing != nullptr && t_capturing->mode != cudaStreamCaptureModeRelaxed) {
    breaks_capture();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.device.find(static_cast<const char*>(p));
  if (it == m.device.end()) return fail(cudaErrorInvalidValue);  // not a live cudaMalloc block
  m.allocated -= (it->second == 0 ? 256 : (it->second + 255) / 256 * 256);
  m.device.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  void* q = std::aligned_alloc(256, bytes == 0 ? 256 : (bytes + 255) / 256 * 256);
  if (q == nullptr) return fail(cudaErrorMemoryAllocation);
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.host[static_cast<const char*>(q)] = bytes;
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned flags) {
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  if (flags != 0 || !inside(m.host, host, 1)) return fail(cudaErrorInvalidValue);
  *device = host;  // mapped pinned memory: one address space here
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  *total = kTotalBytes;
  *free = kTotalBytes - m.allocated;
  return cudaSuccess;
}

namespace {
// The device side(s) of a copy must lie inside live device (or pinned host) blocks.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return cudaErrorInvalidMemcpyDirection;
  if ((dst_dev && !device_range_ok(dst, bytes)) || (src_dev && !device_range_ok(src, bytes)))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (breaks_capture()) return fail(cudaErrorStreamCaptureUnsupported);
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return fail(e);
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return fail(e);
  if (bytes > 0)
    enqueue(
        stream, [dst, src, bytes] { std::memmove(dst, src, bytes); }, "cudaMemcpyAsync");
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = new CUstream_st();
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  return cudaStreamCreate(stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return breaks_capture() ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr || t_capturing != nullptr) return fail(cudaErrorStreamCaptureUnsupported);
  CUstream_st* s = resolve(stream);
  if (s->capturing) return fail(cudaErrorStreamCaptureUnsupported);
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->graph = new CUgraph_st();
  t_capturing = s;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  CUstream_st* s = resolve(stream);
  if (!s->capturing) return fail(cudaErrorStreamCaptureUnmatched);
  if (t_capturing != s) return fail(cudaErrorStreamCaptureWrongThread);
  s->capturing = false;
  t_capturing = nullptr;
  if (s->invalidated) {
    delete s->graph;
    s->graph = nullptr;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = s->graph;
  s->graph = nullptr;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  *event = new CUevent_st();  // never destroyed: okd keeps its events for the process
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  return event == nullptr ? fail(cudaErrorInvalidResourceHandle) : cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return breaks_capture() ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  if (nodes != nullptr) return fail(cudaErrorInvalidValue);  // okd only asks for the count
  *count = graph->nodes.size();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  // OKD_SIM_GRAPH_TALLY=1: print the graph's nodes counted by origin (launch site or call), the
  // list a whole-step capture's launch count is made of.
  if (const char* v = std::getenv("OKD_SIM_GRAPH_TALLY"); v != nullptr && std::string(v) == "1") {
    std::map<std::string, int> tally;
    for (const auto& node : graph->nodes) ++tally[node.what];
    std::vector<std::pair<int, std::string>> rows;
    for (const auto& [what, n] : tally) rows.emplace_back(n, what);
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "okd SIMT simulator: graph of %zu nodes\n", graph->nodes.size());
    for (const auto& [n, what] : rows) std::fprintf(stderr, "%6d  %s\n", n, what.c_str());
  }
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return fail(cudaErrorInvalidValue);
  for (const auto& node : exec->nodes) enqueue(stream, node.work, node.what.c_str());
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
