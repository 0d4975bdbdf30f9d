// The SIMT simulator's stand-in for the CUDA runtime header (tensor/cuda/sim/README.md): the
// runtime API subset okd calls, the kernel qualifiers and built-in variables, and the device
// intrinsics okd's kernels use, so that the .cu files compile as plain C++ and their kernels run
// on the CPU. Written for okd from the API's documented names and signatures; only what okd uses.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- types -------------------------------------------------------------------------------------
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureWrongThread = 908,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode : int {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};

constexpr unsigned cudaStreamDefault = 0x0;
constexpr unsigned cudaStreamNonBlocking = 0x1;
constexpr unsigned cudaEventDefault = 0x0;
constexpr unsigned cudaEventDisableTiming = 0x2;
constexpr unsigned cudaHostAllocDefault = 0x0;
constexpr unsigned cudaHostAllocPortable = 0x1;
constexpr unsigned cudaHostAllocMapped = 0x2;

struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;
struct CUgraphNode_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
using cudaGraphNode_t = CUgraphNode_st*;

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
};

// ---- runtime API (tensor/cuda/sim/runtime_sim.cpp) ---------------------------------------------
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned flags);
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

// ---- kernels: qualifiers, built-in variables, launches
// ------------------------------------------- A kernel is an ordinary function run once per
// simulated thread; __shared__ variables are function statics, shared by the threads of a block
// because the simulator runs one block at a time (tensor/cuda/sim/simt.h). The .cu files' launches
// `k<<<grid, block, smem, stream>>>(args)` are rewritten at build time to `k |
// okd::sim::LaunchConfig(...) | okd::sim::launch_args(args)`
// (tensor/cuda/sim/rewrite_launches.cmake).
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static
#define __constant__ static

#include "tensor/cuda/sim/simt.h"

#define threadIdx (::okd::sim::current_thread().thread_idx)
#define blockIdx (::okd::sim::current_thread().block->block_idx)
#define blockDim (::okd::sim::current_thread().block->block_dim)
#define gridDim (::okd::sim::current_thread().block->grid_dim)
inline constexpr int warpSize = 32;

inline void __syncthreads() { ::okd::sim::syncthreads(); }
inline void __threadfence_system() {}

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::okd::sim::shuffle(mask, v, ::okd::sim::ShuffleKind::Down, static_cast<int>(delta),
                             width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::okd::sim::shuffle(mask, v, ::okd::sim::ShuffleKind::Up, static_cast<int>(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::okd::sim::shuffle(mask, v, ::okd::sim::ShuffleKind::Xor, lane_mask, width);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return ::okd::sim::shuffle(mask, v, ::okd::sim::ShuffleKind::Index, src_lane, width);
}

// Atomics: one block runs at a time on one host thread, so a plain read-modify-write is atomic.
inline int atomicCAS(int* address, int compare, int value) {
  const int old = *address;
  if (old == compare) *address = value;
  return old;
}

// Correctly rounded arithmetic without contraction into a fused multiply-add. Each rounds on its
// own and is never merged into a fused multiply-add, as on a GPU: the volatile operands and result
// keep a compiler that contracts (OKD_SIM_FMA) from fusing across the call.
template <class T>
inline T okd_sim_rounded(T v) {
  volatile T r = v;
  return r;
}
inline double __dadd_rn(double a, double b) {
  return okd_sim_rounded(okd_sim_rounded(a) + okd_sim_rounded(b));
}
inline double __dmul_rn(double a, double b) { return okd_sim_rounded(a * b); }
inline float __fadd_rn(float a, float b) {
  return okd_sim_rounded(okd_sim_rounded(a) + okd_sim_rounded(b));
}
inline float __fmul_rn(float a, float b) { return okd_sim_rounded(a * b); }

// CUDA's device min/max (global functions) for the same-typed calls okd's kernels make.
template <class T>
requires std::is_arithmetic_v<T>
inline T min(T a, T b) { return b < a ? b : a; }
template <class T>
requires std::is_arithmetic_v<T>
inline T max(T a, T b) { return a < b ? b : a; }
