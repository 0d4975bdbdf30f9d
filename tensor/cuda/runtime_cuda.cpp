// CUDA runtime of okd: device queries, start-up registration of the caching allocator and the
// device-copy hook (only when a GPU is present), okd's stream and cuBLAS handle, backend controls.
// Compiled only when okd is built with CUDA; safe on a machine with no GPU (nothing registers,
// and asking for a CUDA tensor is then an okd::Error that says why).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <mutex>
#include <new>

#include "tensor/cuda/allocator.h"
#include "tensor/cuda/backends.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"

namespace okd {

namespace {
// cudaGetDeviceCount's answer, and its error message when it failed (no driver, no device).
struct Probe {
  int count = 0;
  std::string error;
};
const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    const cudaError_t e = cudaGetDeviceCount(&r.count);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      r.count = 0;
      r.error = str(cudaGetErrorName(e), ": ", cudaGetErrorString(e));
    }
    return r;
  }();
  return p;
}
}  // namespace

int cuda_device_count_impl() { return probe().count; }  // runtime.cpp's cuda_device_count()

namespace cuda {

namespace {
// Runs at start-up (static initialisation of this file, which runtime.cpp always links): with a
// GPU present, tensors on cuda:0 get the caching allocator and ops::to gets its device copy.
bool register_backend() noexcept {
  try {
    if (probe().count == 0) return false;
    set_allocator(DeviceType::CUDA, caching_allocator());
    ops::set_device_copy(&device_copy);
    return true;
  } catch (...) {
    return false;
  }
}
const bool g_registered = register_backend();

std::atomic<bool> g_allow_tf32{false};
}  // namespace

std::string unavailable_reason() {
  if (probe().count > 0) return "";
  return "no CUDA GPU was found (" +
         (probe().error.empty() ? std::string("cudaGetDeviceCount returned 0") : probe().error) +
         ")";
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st = nullptr;
    OKD_CUDA_CHECK("cuda stream", cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasHandle_t cublas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle = nullptr;
    OKD_CUBLAS_CHECK("cublas", cublasCreate(&handle));
    OKD_CUBLAS_CHECK("cublas", cublasSetStream(handle, stream()));
    // A fixed workspace, so cuBLAS never allocates inside a captured step (graph.h); 32 MiB is
    // what cuBLAS asks for on Hopper (CUBLAS_WORKSPACE_CONFIG=:4096:8). Never freed.
    constexpr size_t kWorkspaceBytes = size_t{32} << 20;
    void* workspace = nullptr;
    OKD_CUDA_CHECK("cublas workspace", cudaMalloc(&workspace, kWorkspaceBytes));
    OKD_CUBLAS_CHECK("cublas", cublasSetWorkspace(handle, workspace, kWorkspaceBytes));
    return handle;
  }();
  // CUBLAS_DEFAULT_MATH keeps float32 products in full float32; TF32 only when asked for.
  OKD_CUBLAS_CHECK("cublas", cublasSetMathMode(h, g_allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                               : CUBLAS_DEFAULT_MATH));
  return h;
}

void check_device(const Tensor& t, const char* op) {
  OKD_CHECK(t.device().is_cuda() && t.device().index == 0, op,
            ": the CUDA backend drives cuda:0 only for now, got ", t.desc());
}

void synchronize() {
  note_host_sync("synchronize()");
  if (probe().count > 0) OKD_CUDA_CHECK("synchronize", cudaStreamSynchronize(stream()));
  raise_device_error();  // a kernel's deferred error (or an emulated one's)
}

// Mapped pinned host memory: kernels write it through its device address, the host reads it
// after a synchronisation. Allocated on first use, never freed (like the allocator).
DeviceErrorRecord* gpu::device_error_record() {
  static DeviceErrorRecord* record = [] {
    void* p = nullptr;
    OKD_CUDA_CHECK("device error record",
                   cudaHostAlloc(&p, sizeof(DeviceErrorRecord), cudaHostAllocMapped));
    return new (p) DeviceErrorRecord();
  }();
  return record;
}

DeviceErrorRecord* device_error_record_for_kernels() {
  static DeviceErrorRecord* on_device = [] {
    void* d = nullptr;
    OKD_CUDA_CHECK("device error record",
                   cudaHostGetDevicePointer(&d, gpu::device_error_record(), 0));
    return static_cast<DeviceErrorRecord*>(d);
  }();
  return on_device;
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

std::string device_summary() {
  static const char* const kSplitNames[] = {"off", "on", "auto"};  // set_batch_norm_split's modes
  if (emulating()) return "cuda:0 emulated on the CPU (no GPU; OKD_CUDA_EMULATE)";
  if (probe().count == 0) return unavailable_reason();
  cudaDeviceProp prop{};
  OKD_CUDA_CHECK("device_summary", cudaGetDeviceProperties(&prop, 0));
  int major = 0, minor = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  return str(prop.name, " (sm_", prop.major, prop.minor, ", ",
             prop.totalGlobalMem / (1024 * 1024 * 1024), " GiB), cuBLAS ", major, ".", minor,
             ", cuDNN ", cudnn_version(), ", TF32 ", g_allow_tf32 ? "on" : "off",
             ", deterministic convolutions ", deterministic() ? "on" : "off", ", batch-norm split ",
             kSplitNames[batch_norm_split()], (g_registered ? "" : ", not registered"));
}

}  // namespace cuda
}  // namespace okd
