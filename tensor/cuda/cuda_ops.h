// The CUDA backend's entry points as plain C++ (no CUDA headers): what the CPU op files call when
// they see a CUDA tensor, and the backend's controls. Defined in tensor/cuda/*.cpp and
// tensor/ops/*_cuda.cu when okd is built with CUDA, by tensor/cuda/cuda_ops_stub.cpp otherwise
// (where every call throws, though no CUDA tensor can exist in such a build). See docs/cuda.md.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensor/ops/augment.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/update.h"
#include "tensor/tensor.h"

namespace okd::cuda {

// ---- dispatch helpers used by the CPU op files ------------------------------------------------
inline bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }
// Any operand on CUDA sends the op to the CUDA side, which then rejects mixed devices by name.
template <class... Rest>
bool on_cuda(const Tensor& a, const Tensor& b, const Rest&... rest) {
  return on_cuda(a) || on_cuda(b) || (on_cuda(rest) || ...);
}
// For ops that have no CUDA kernel yet: "op X has no CUDA kernel yet", never a host read of
// device memory. Undefined tensors (an absent bias) are skipped.
inline void check_no_cuda(const char* op, std::initializer_list<Tensor> tensors) {
  for (const Tensor& t : tensors)
    if (on_cuda(t))
      OKD_FAIL("op ", op, " has no CUDA kernel yet (got ", t.desc(),
               "); move its inputs to the cpu with to(kCPU)");
}
// Why asking for a CUDA device fails: no backend in this build, or no GPU found.
std::string unavailable_reason();

// ---- backend controls --------------------------------------------------------------------------
struct AllocatorStats {
  int64_t allocated_bytes = 0;  // held by live tensors (rounded block sizes)
  int64_t cached_bytes = 0;     // free blocks kept for reuse
  int64_t device_mallocs = 0;   // cudaMalloc calls since start (flat once a training step is warm)
  int64_t device_frees = 0;     // cudaFree calls (only empty_cache and out-of-memory retries)
};
AllocatorStats allocator_stats();
// Returns every cached block to the driver (cudaFree); live tensors are not touched.
void empty_cache();
// Waits until all work queued on okd's stream has finished.
void synchronize();
// cuBLAS float32 products may use TF32 tensor cores (10-bit mantissa inputs). Off by default.
void set_allow_tf32(bool allow);
bool allow_tf32();
// cuDNN convolutions restricted to algorithms cuDNN reports as deterministic (some backward
// algorithms accumulate with atomics otherwise). Off by default; okd's own kernels always are.
void set_deterministic(bool on);
bool deterministic();
// Training batch norm on the GPU (norm_cuda.cu): 0 = one block per channel; 1 = split each
// channel over batch_norm_parts() blocks whenever that is more than one; 2 (the default) = split
// only when there are also fewer than 256 channels. Every mode is deterministic (results
// bit-identical run to run, on any GPU); modes agree within rounding. The environment variable
// OKD_BN_SPLIT=0|1|2 sets it at start-up; a captured graph keeps the choice made at capture.
void set_batch_norm_split(int mode);
int batch_norm_split();
// Blocks per channel that the current mode gives a training batch norm of x viewed as [N, C, S]
// (1: one block per channel). A function of the mode and (N, C, S) only, never of the GPU.
int64_t batch_norm_parts(int64_t N, int64_t C, int64_t S);
// bf16 convolutions (Conv2dParams::precision) hand cuDNN their bfloat16 operands in NHWC order
// (channels-last; the float32 -> bf16 staging copy does the transposition) instead of NCHW.
// Tensors stay NCHW everywhere else. Off by default; results agree within bf16 rounding.
void set_channels_last(bool on);
bool channels_last();
// cuDNN convolution algorithms chosen by timing (PyTorch's torch.backends.cudnn.benchmark): the
// first call of each configuration runs every candidate algorithm once on its operands
// (cudnnFind*AlgorithmEx, into scratch memory) and keeps the fastest that obeys the policy
// (deterministic(), FMA-only float32 unless TF32 is allowed), instead of the first of cuDNN's
// heuristic ranking. Off by default: which algorithm wins can vary from run to run, and so can
// the last bits of the results (each algorithm sums in its own order). During a CUDA-graph
// capture no timing runs: an untimed configuration uses the heuristics' choice there.
// The environment variable OKD_CUDNN_BENCHMARK=1 turns it on at start-up.
void set_conv_autotune(bool on);
bool conv_autotune();
// The cuDNN plans chosen so far, one per configuration (direction, shapes, parameters, dtype,
// policy): for reports (bench_train --conv-plans) and tests. Empty without cuDNN.
struct ConvPlanInfo {
  std::string direction;  // "forward", "backward_data" or "backward_filter"
  DType dtype = DType::Float32;
  Shape input, weight, output;  // of the conv2d (a transposed conv is a conv2d's backward_data)
  Shape stride, padding, dilation;
  int64_t groups = 1;
  bool bf16 = false, channels_last = false, deterministic = false, autotune = false;
  int algo = 0;      // cuDNN's algorithm number for the direction
  std::string math;  // "fma", "tensor_op", "default", "tensor_op_allow_conversion"
  int64_t workspace_bytes = 0;
  bool timed = false;     // chosen by timing (else by the heuristics)
  float time_ms = -1.0f;  // the winner's time in the timing run
};
std::vector<ConvPlanInfo> conv_plans();
// Training batch norm on the GPU also writes a bfloat16 copy of its float32 output (forward) and
// of its input gradient (backward), in the same kernel, and hands them to the bf16 staging of the
// convolution that reads that tensor next (bf16_staging.h, to_bf16_reused): one staging launch
// fewer per batch norm each way. Thread-local; nn::functional::Autocast turns it on with
// Precision::BFloat16. Not with set_channels_last (the convolutions then stage NHWC copies).
void set_bf16_prestaging(bool on);
bool bf16_prestaging();
// "NVIDIA H200 (sm_90, 139 GiB), cuBLAS 13.0, cuDNN 91900" or the unavailable reason.
std::string device_summary();

// ---- emulation (tensor/cuda/emulator.cpp) ------------------------------------------------------
// On a machine without a GPU, cuda:0 can be emulated: its memory is host memory and every kernel
// entry point below runs the CPU op on CPU-labelled aliases of its operands, with the CUDA
// backend's device and dtype checks. Everything above the kernels (autograd, nn, optim, distill,
// the trainer) then runs its device code paths on the CPU, bit-identical to a CPU run, so device
// placement bugs (a CPU tensor mixed into a device op, a host loop over device memory, a device
// sync per step) show up in the CPU test suite. It checks the wiring, not the kernels.
// Turns emulation on for the rest of the process (idempotent); an error when a GPU is present.
// The environment variable OKD_CUDA_EMULATE=1 does it at start-up.
void enable_emulation();
bool emulating();

// ---- host synchronisation points (whole-step CUDA-graph capture, graph.h) ---------------------
// A captured step must not make the host wait for the device or read host memory: no copy between
// host and device (item(), to(kCPU), an upload) and no synchronize(). (Index-valued inputs are
// checked by the kernels, below, not on the host.) Inside a SyncFreeScope each of these throws,
// naming itself and the scope, on a GPU and under emulation alike.
void note_host_sync(const char* what);
class SyncFreeScope {
 public:
  explicit SyncFreeScope(const char* scope);
  ~SyncFreeScope();
  SyncFreeScope(const SyncFreeScope&) = delete;
  SyncFreeScope& operator=(const SyncFreeScope&) = delete;

 private:
  const char* previous_;
};

// ---- errors found on the device (deferred) -----------------------------------------------------
// A kernel cannot throw. Index-valued inputs (cross-entropy targets, one_hot labels, the indices of
// index_select, gather and scatter_add) are checked by the kernels themselves: an out-of-range
// value is skipped (no stray read or write; the output holds NaN or 0 there) and the first such
// error is written to a record the host can read. The host raises it as an okd::Error with the CPU
// op's message at its next synchronisation with the device: a device-to-host copy (item(),
// to(kCPU)) or synchronize(). Checking on the host instead would cost a device-to-host copy and a
// sync per call, which a captured step cannot make (docs/cuda.md, "Errors found on the device").
enum class DeviceErrorKind : int32_t {
  None = 0,
  CrossEntropyTarget,
  OneHotLabel,
  IndexSelectIndex,
  GatherIndex,
  ScatterAddIndex,
  CropFlipNormalizeIndex,
  SampleDistinctCount,
};
struct DeviceErrorRecord {
  int32_t kind = 0;  // a DeviceErrorKind; written first, by atomicCAS from 0, so the first wins
  int32_t dim = 0;   // the indexed dim (index ops)
  int64_t position = 0, value = 0, bound = 0;  // where, the bad value, the exclusive upper bound
};
// The message of a recorded error, as the CPU op words it.
std::string describe(const DeviceErrorRecord& r);
// Throws the recorded error (clearing the record) if a kernel recorded one since the last call.
// The callers are the host synchronisation points, after the device's work has finished.
void raise_device_error();

// ---- kernels (validation included: the same errors as the CPU ops) -----------------------------
// Declared in cuda_kernels.inc, three times: here (the entry points the CPU op files call, which
// forward to the emulator or to the GPU: tensor/cuda/dispatch.cpp), in cuda::gpu (the .cu kernels,
// or throwing stubs in a build without CUDA) and in cuda::emu (emulator.cpp).
enum class Unary : uint8_t {
  Neg,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Abs,
  Sign,
  Relu,
  Sigmoid,
  Tanh,
  Pow,    // x^s0
  Clamp,  // min(max(x, s0), s1)
  AddScalar,
  MulScalar,
  RsubScalar,  // s0 - x
  RdivScalar,  // s0 / x
  RoundBf16,   // float32 only: the nearest bfloat16 (tensor/bf16.h)
};
enum class Binary : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class Compare : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
enum class Reduce : uint8_t { Sum, Mean, Var, Std, Amax, Amin };
using SgdStep = ops::SgdStep;
using AdamStep = ops::AdamStep;

#include "tensor/cuda/cuda_kernels.inc"

}  // namespace okd::cuda
