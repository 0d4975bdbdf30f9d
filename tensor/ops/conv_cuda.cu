// conv2d forward, input-gradient and weight-gradient, and conv_transpose2d, on CUDA through cuDNN
// (host code only; shapes and formulas in conv.h). For each (direction, shape, parameters, dtype,
// policy) the algorithm is chosen once from cuDNN's heuristics (cudnnGet*Algorithm_v7, no timing
// runs, so the choice itself is reproducible) and cached with its workspace size; the workspace
// comes from the caching allocator. Policy: float32 uses FMA kernels only (no TF32) unless
// set_allow_tf32(true); with set_deterministic(true) only algorithms cuDNN reports as deterministic
// are used (some backward algorithms accumulate with atomics otherwise). The bias is added with
// okd's own broadcasting add_. Without cuDNN in the build, these ops say they have no CUDA kernel.
// Mixed precision (Conv2dParams::precision BFloat16, float32 tensors): cuDNN reads and writes
// bfloat16 copies of the operands (bf16_staging.h; NHWC order under set_channels_last) with
// float32 accumulation on tensor cores, and the result is widened back to float32. An operand
// staged once is reused while unchanged (gpu::to_bf16_reused): the weight of the forward by the
// input gradient, the input by the weight gradient, the output gradient by both.
#include "okd/build_config.h"
#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/view.h"

#if OKD_HAVE_CUDNN
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/context.h"  // after cudnn.h: defines OKD_CUDNN_CHECK
#include "tensor/cuda/graph.h"

namespace okd::cuda {

namespace {

std::atomic<bool> g_deterministic{false};
std::atomic<bool> g_channels_last{false};
// OKD_CUDNN_BENCHMARK=1 turns timed algorithm choice on at start-up (set_conv_autotune).
bool autotune_from_environment() {
  const char* v = std::getenv("OKD_CUDNN_BENCHMARK");
  if (!v || !*v || std::strcmp(v, "0") == 0) return false;
  if (std::strcmp(v, "1") == 0) return true;
  std::fprintf(stderr, "okd: OKD_CUDNN_BENCHMARK=%s ignored: expected 0 or 1\n", v);
  return false;
}
std::atomic<bool> g_autotune{autotune_from_environment()};

void* ptr(const Tensor& t) { return t.defined() ? t.device_raw_data() : nullptr; }

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t handle = nullptr;
    OKD_CUDNN_CHECK("cudnn", cudnnCreate(&handle));
    OKD_CUDNN_CHECK("cudnn", cudnnSetStream(handle, stream()));
    return handle;
  }();
  return h;
}

// One cuDNN descriptor, destroyed with its owner (members of ConvDescs, so a failure half-way
// through the constructor still frees the ones already made).
template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
struct Desc {
  D d = nullptr;
  Desc() { OKD_CUDNN_CHECK("conv2d", Create(&d)); }
  ~Desc() {
    if (d) Destroy(d);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};
using TensorDesc =
    Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc =
    Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;

int to_int(int64_t v, const char* op) {
  OKD_CHECK(v >= 0 && v <= INT_MAX, op, ": size ", v, " exceeds cuDNN's 32-bit limit");
  return static_cast<int>(v);
}

// How the operands are handed to cuDNN: as stored (float32, float64), or as bfloat16 copies in
// NCHW or NHWC order (mixed precision). in() gives the buffer cuDNN reads for a contiguous
// operand, out() one it writes a result of shape s into, result() the float tensor of that result.
struct Staging {
  bool bf16 = false, nhwc = false;
  Staging(DType dt, const ops::Conv2dParams& p)
      : bf16(p.precision == Precision::BFloat16 && dt == DType::Float32),
        nhwc(bf16 && g_channels_last) {}
  Tensor in(const Tensor& t) const { return bf16 ? gpu::to_bf16_reused(t, nhwc) : t; }
  Tensor out(const Shape& s, DType dt, Device dev) const {
    return bf16 ? empty({2 * shape_numel(s)}, DType::UInt8, dev) : empty(s, dt, dev);
  }
  Tensor result(const Tensor& buffer, const Shape& s) const {
    return bf16 ? gpu::from_bf16(buffer, s, nhwc) : buffer;
  }
  int64_t key() const { return (bf16 ? 1 : 0) | (nhwc ? 2 : 0); }
};

cudnnDataType_t cudnn_type(DType dt, const Staging& m) {
  if (m.bf16) return CUDNN_DATA_BFLOAT16;
  return dt == DType::Float32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// The conv2d x [N,C,H,W] * w [O,C/G,kH,kW] -> y [N,O,OH,OW] as cuDNN sees it, for all directions.
// bfloat16 operands accumulate in float32 (cuDNN's "pseudo bfloat16" configuration).
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  ConvDescs(const Shape& xs, const Shape& ws, const Shape& ys, const ops::Conv2dParams& p, DType dt,
            const Staging& m, const char* op) {
    const cudnnDataType_t t = cudnn_type(dt, m);
    const cudnnDataType_t compute = m.bf16 ? CUDNN_DATA_FLOAT : t;
    const cudnnTensorFormat_t format = m.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    OKD_CUDNN_CHECK(op,
                    cudnnSetTensor4dDescriptor(x.d, format, t, to_int(xs[0], op), to_int(xs[1], op),
                                               to_int(xs[2], op), to_int(xs[3], op)));
    OKD_CUDNN_CHECK(op,
                    cudnnSetTensor4dDescriptor(y.d, format, t, to_int(ys[0], op), to_int(ys[1], op),
                                               to_int(ys[2], op), to_int(ys[3], op)));
    OKD_CUDNN_CHECK(op,
                    cudnnSetFilter4dDescriptor(w.d, t, format, to_int(ws[0], op), to_int(ws[1], op),
                                               to_int(ws[2], op), to_int(ws[3], op)));
    OKD_CUDNN_CHECK(op, cudnnSetConvolution2dDescriptor(
                            conv.d, to_int(p.pad_h, op), to_int(p.pad_w, op),
                            to_int(p.stride_h, op), to_int(p.stride_w, op), to_int(p.dil_h, op),
                            to_int(p.dil_w, op), CUDNN_CROSS_CORRELATION, compute));
    OKD_CUDNN_CHECK(op, cudnnSetConvolutionGroupCount(conv.d, to_int(p.groups, op)));
  }
};

enum class Dir : int64_t { Forward, BackwardData, BackwardFilter };

// The algorithm, math type and workspace chosen for one configuration, and how: from cuDNN's
// heuristics, or by timing the candidates (set_conv_autotune; time_ms is then the winner's time).
struct Plan {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  bool timed = false;
  float time_ms = -1.0f;
};

// The first of cuDNN's ranked candidates that ran (in the heuristics, or in the timing runs),
// obeys the determinism policy, and (float32 without TF32) uses FMA kernels; -1 if none.
template <class Perf>
int pick(const Perf* perf, int n, bool fma_only, bool deterministic, cudnnMathType_t& math,
         float* time_ms = nullptr) {
  for (int i = 0; i < n; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (fma_only && perf[i].mathType != CUDNN_FMA_MATH) continue;
    math = perf[i].mathType;
    if (time_ms) *time_ms = perf[i].time;
    return static_cast<int>(perf[i].algo);
  }
  return -1;
}

// What a timed choice hands cuDNN's Find: the two operands the direction reads, exactly as the
// call will read them (staged or not), and the result's size in bytes. Find runs every candidate
// and writes each one's result into a scratch buffer of that size, never into the caller's output
// (which may hold a gradient being accumulated into).
struct FindArgs {
  const void* in0 = nullptr;  // forward: x; backward data: w; backward filter: x
  const void* in1 = nullptr;  // forward: w; backward data: dy; backward filter: dy
  size_t out_bytes = 0;
  Device device;
};

// The three directions' cuDNN entry points under one shape (plan_for's body is written once).
template <class PerfT, int Count, int Fallback>
struct DirApi {
  using Perf = PerfT;
  static constexpr int kCount = Count;
  static constexpr int kFallback = Fallback;  // deterministic, FMA, no workspace
};
struct ForwardApi : DirApi<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                           CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM> {
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int* n, Perf* perf) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d, kCount, n,
                                                  perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const FindArgs& f, void* out,
                            void* ws, size_t ws_bytes, int* n, Perf* perf) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, f.in0, d.w.d, f.in1, d.conv.d, d.y.d,
                                                  out, kCount, n, perf, ws, ws_bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(
        h, d.x.d, d.w.d, d.conv.d, d.y.d, static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
  }
};
struct BackwardDataApi
    : DirApi<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
             CUDNN_CONVOLUTION_BWD_DATA_ALGO_1> {
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int* n, Perf* perf) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d, d.x.d, kCount, n,
                                                       perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const FindArgs& f, void* out,
                            void* ws, size_t ws_bytes, int* n, Perf* perf) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w.d, f.in0, d.y.d, f.in1, d.conv.d,
                                                       d.x.d, out, kCount, n, perf, ws, ws_bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(
        h, d.w.d, d.y.d, d.conv.d, d.x.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
  }
};
struct BackwardFilterApi
    : DirApi<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1> {
  static cudnnStatus_t heuristics(cudnnHandle_t h, const ConvDescs& d, int* n, Perf* perf) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d, d.w.d, kCount,
                                                         n, perf);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvDescs& d, const FindArgs& f, void* out,
                            void* ws, size_t ws_bytes, int* n, Perf* perf) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x.d, f.in0, d.y.d, f.in1, d.conv.d,
                                                         d.w.d, out, kCount, n, perf, ws, ws_bytes);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvDescs& d, int algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, d.x.d, d.y.d, d.conv.d, d.w.d, static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
        bytes);
  }
};

// The most workspace a timed choice offers the candidates: one that needs more is skipped.
constexpr size_t kFindWorkspaceCap = size_t{1} << 30;

// Chooses a plan for one direction: cuDNN's ranked heuristics, or (timed) the fastest candidate
// of a Find run that fits the policy, falling back to the heuristics when none does.
template <class Api>
Plan choose(const ConvDescs& d, bool fma_only, bool deterministic, cudnnMathType_t wanted,
            const FindArgs* timed, const char* op) {
  cudnnHandle_t h = cudnn_handle();
  Plan pl;
  pl.math = wanted;
  typename Api::Perf perf[Api::kCount];
  int n = 0;
  OKD_CUDNN_CHECK(op, Api::heuristics(h, d, &n, perf));
  pl.algo = pick(perf, n, fma_only, deterministic, pl.math);
  if (timed) {
    // Offer the largest workspace any ranked candidate asked for (capped), from the allocator.
    size_t ws_bytes = 0;
    for (int i = 0; i < n; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS)
        ws_bytes = std::max(ws_bytes, std::min(perf[i].memory, kFindWorkspaceCap));
    // A device short of memory times only the candidates that need no workspace.
    Tensor ws;
    try {
      if (ws_bytes) ws = empty({static_cast<int64_t>(ws_bytes)}, DType::UInt8, timed->device);
    } catch (const std::exception&) {
      ws_bytes = 0;
    }
    const Tensor scratch = empty({static_cast<int64_t>(std::max<size_t>(timed->out_bytes, 1))},
                                 DType::UInt8, timed->device);
    typename Api::Perf found[Api::kCount];
    int m = 0;
    const cudnnStatus_t st =
        Api::find(h, d, *timed, scratch.device_raw_data(), ptr(ws), ws_bytes, &m, found);
    if (st != CUDNN_STATUS_SUCCESS) {
      // Timing is an optimisation: a configuration cuDNN cannot time keeps the heuristics' plan.
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true))
        std::fprintf(stderr,
                     "okd: %s: cuDNN could not time the convolution algorithms (%s); "
                     "using its heuristics' choice for such configurations\n",
                     op, cudnnGetErrorString(st));
      m = 0;
    }
    cudnnMathType_t math = wanted;
    float time_ms = -1.0f;
    const int algo = pick(found, m, fma_only, deterministic, math, &time_ms);
    if (algo >= 0) {
      pl.algo = algo, pl.math = math, pl.timed = true, pl.time_ms = time_ms;
    }
  }
  if (pl.algo < 0) {  // no ranked candidate fits the policy: a deterministic FMA one
    pl.algo = Api::kFallback;
    pl.math = wanted;
  }
  OKD_CUDNN_CHECK(op, cudnnSetConvolutionMathType(d.conv.d, pl.math));
  OKD_CUDNN_CHECK(op, Api::workspace(h, d, pl.algo, &pl.workspace));
  return pl;
}

// The plan cache: one entry per (direction, shapes, parameters, dtype, policy), with what a
// report needs to describe it (conv_plans()).
using PlanKey = std::array<int64_t, 24>;
struct PlanCache {
  std::mutex mu;
  std::map<PlanKey, Plan> plans;
};
PlanCache& plan_cache() {
  static PlanCache* cache = new PlanCache;  // outlives static destructors that may still convolve
  return *cache;
}

// Chooses (once per key) and applies the plan: sets the math type on d.conv, returns the plan.
// With autotuning on, the first call of a key times the candidates on the operands in `find`
// (outside a CUDA-graph capture; a call during one takes the heuristics' plan without caching it,
// so the next eager call still times).
Plan plan_for(Dir dir, const Shape& xs, const Shape& ws, const Shape& ys,
              const ops::Conv2dParams& p, DType dt, const Staging& m, ConvDescs& d,
              const FindArgs& find, const char* op) {
  const bool fma_only = dt == DType::Float32 && !allow_tf32() && !m.bf16;
  const bool deterministic = g_deterministic;
  const bool autotune = g_autotune;
  const PlanKey key = {static_cast<int64_t>(dir),
                       static_cast<int64_t>(dt),
                       xs[0],
                       xs[1],
                       xs[2],
                       xs[3],
                       ws[0],
                       ws[1],
                       ws[2],
                       ws[3],
                       ys[2],
                       ys[3],
                       p.stride_h,
                       p.stride_w,
                       p.pad_h,
                       p.pad_w,
                       p.dil_h,
                       p.dil_w,
                       p.groups,
                       fma_only,
                       deterministic,
                       ys[1],
                       m.key(),
                       autotune};
  PlanCache& cache = plan_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.plans.find(key);
    if (it != cache.plans.end()) {
      OKD_CUDNN_CHECK(op, cudnnSetConvolutionMathType(d.conv.d, it->second.math));
      return it->second;
    }
  }
  const cudnnMathType_t wanted =
      fma_only ? CUDNN_FMA_MATH : (m.bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH);
  OKD_CUDNN_CHECK(op, cudnnSetConvolutionMathType(d.conv.d, wanted));
  const bool timed = autotune && !capturing();
  const FindArgs* f = timed ? &find : nullptr;
  Plan pl;
  switch (dir) {
    case Dir::Forward:
      pl = choose<ForwardApi>(d, fma_only, deterministic, wanted, f, op);
      break;
    case Dir::BackwardData:
      pl = choose<BackwardDataApi>(d, fma_only, deterministic, wanted, f, op);
      break;
    case Dir::BackwardFilter:
      pl = choose<BackwardFilterApi>(d, fma_only, deterministic, wanted, f, op);
      break;
  }
  if (autotune && !timed) return pl;  // chosen inside a capture: not the plan autotuning keeps
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.plans.emplace(key, pl);
  return pl;
}

// Bytes of a result of shape s as cuDNN writes it (bfloat16 when staged).
size_t result_bytes(const Shape& s, DType dt, const Staging& m) {
  return static_cast<size_t>(shape_numel(s)) * (m.bf16 ? 2 : dtype_size(dt));
}

// cuDNN's scaling factors are float for float (and bfloat16) data and double for double data.
// cuDNN writes out = alpha * result + beta * out: alpha is one(); beta is zero() (out is not
// read), or one() to add the result into what out holds (beta(true)).
struct Scale {
  float f[2] = {1.0f, 0.0f};
  double d[2] = {1.0, 0.0};
  const void* one(DType dt) const {
    return dt == DType::Float32 ? static_cast<const void*>(&f[0]) : &d[0];
  }
  const void* zero(DType dt) const {
    return dt == DType::Float32 ? static_cast<const void*>(&f[1]) : &d[1];
  }
  const void* beta(DType dt, bool accumulate) const { return accumulate ? one(dt) : zero(dt); }
};

Tensor workspace(const Plan& pl, Device dev) {
  return pl.workspace ? empty({static_cast<int64_t>(pl.workspace)}, DType::UInt8, dev) : Tensor();
}

// The checks of conv_cpu.cpp's check_conv, for CUDA operands.
void check_conv(const Tensor& input, const Tensor& weight, const ops::Conv2dParams& p,
                const char* op) {
  OKD_CHECK(input.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ",
            shape_str(input.shape()));
  OKD_CHECK(weight.dim() == 4, op, ": expected a 4-D weight, got ", shape_str(weight.shape()));
  OKD_CHECK(input.dtype() == weight.dtype(), op, ": input is ", dtype_name(input.dtype()),
            " but weight is ", dtype_name(weight.dtype()));
  OKD_CHECK(is_floating(input.dtype()), op, ": expected float32 or float64, got ",
            dtype_name(input.dtype()));
  OKD_CHECK(input.device() == weight.device(), op, ": input is on ", input.device().str(),
            " but weight on ", weight.device().str());
  check_device(input, op);
  OKD_CHECK(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 &&
                p.pad_h >= 0 && p.pad_w >= 0,
            op, ": invalid stride/padding/dilation/groups");
}

void add_bias(const Tensor& out, const Tensor& bias, int64_t channels, const char* op) {
  if (!bias.defined()) return;
  OKD_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, ": bias ", shape_str(bias.shape()),
            " does not match ", channels, " output channels");
  OKD_CHECK(bias.device() == out.device() && bias.dtype() == out.dtype(), op, ": bias ",
            bias.desc(), " does not match the output ", out.desc());
  ops::add_(out, ops::reshape(bias, {1, channels, 1, 1}));
}

// dx [xs] of conv2d from dy and w (also the forward of conv_transpose2d). With accumulate
// (contiguous, of shape xs, dy's dtype and device; checked by the caller) it returns accumulate,
// now holding accumulate + dx: cuDNN writes into it with beta = 1 when it reads and writes the
// float data as stored; with bfloat16 staging the widening of dx adds it (add_from_bf16_).
Tensor backward_data(const Tensor& dy_, const Tensor& w_, const Shape& xs,
                     const ops::Conv2dParams& p, const char* op,
                     const Tensor& accumulate = Tensor()) {
  const Tensor dy = ops::contiguous(dy_), w = ops::contiguous(w_);
  if (shape_numel(xs) == 0)
    return accumulate.defined() ? accumulate : empty(xs, dy.dtype(), dy.device());
  const Staging m(dy.dtype(), p);
  const bool into = accumulate.defined() && !m.bf16;
  const Tensor dyb = m.in(dy), wb = m.in(w);
  Tensor dx = into ? accumulate : m.out(xs, dy.dtype(), dy.device());
  ConvDescs d(xs, w.shape(), dy.shape(), p, dy.dtype(), m, op);
  const FindArgs find{wb.device_raw_data(), dyb.device_raw_data(), result_bytes(xs, dy.dtype(), m),
                      dy.device()};
  const Plan pl =
      plan_for(Dir::BackwardData, xs, w.shape(), dy.shape(), p, dy.dtype(), m, d, find, op);
  const Tensor ws = workspace(pl, dy.device());
  const Scale s;
  OKD_CUDNN_CHECK(
      op, cudnnConvolutionBackwardData(
              cudnn_handle(), s.one(dy.dtype()), d.w.d, wb.device_raw_data(), d.y.d,
              dyb.device_raw_data(), d.conv.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(pl.algo),
              ptr(ws), pl.workspace, s.beta(dy.dtype(), into), d.x.d, dx.device_raw_data()));
  if (into) {
    accumulate.impl()->storage->bump_version();
    return accumulate;
  }
  if (!accumulate.defined()) return m.result(dx, xs);
  gpu::add_from_bf16_(accumulate, dx, m.nhwc);  // widened and added in one pass
  return accumulate;
}

}  // namespace

void set_deterministic(bool on) { g_deterministic = on; }
bool deterministic() { return g_deterministic; }
void set_channels_last(bool on) { g_channels_last = on; }
bool channels_last() { return g_channels_last; }
void set_conv_autotune(bool on) { g_autotune = on; }
bool conv_autotune() { return g_autotune; }
std::string cudnn_version() { return str(cudnnGetVersion()); }

std::vector<ConvPlanInfo> conv_plans() {
  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  std::vector<ConvPlanInfo> out;
  for (const auto& [k, pl] : cache.plans) {
    ConvPlanInfo info;
    static const char* const kDirs[] = {"forward", "backward_data", "backward_filter"};
    info.direction = kDirs[k[0]];
    info.dtype = static_cast<DType>(k[1]);
    info.input = {k[2], k[3], k[4], k[5]};
    info.weight = {k[6], k[7], k[8], k[9]};
    info.output = {k[2], k[21], k[10], k[11]};
    info.stride = {k[12], k[13]}, info.padding = {k[14], k[15]}, info.dilation = {k[16], k[17]};
    info.groups = k[18];
    info.bf16 = (k[22] & 1) != 0, info.channels_last = (k[22] & 2) != 0;
    info.deterministic = k[20] != 0, info.autotune = k[23] != 0;
    info.algo = pl.algo;
    info.math = pl.math == CUDNN_FMA_MATH         ? "fma"
                : pl.math == CUDNN_TENSOR_OP_MATH ? "tensor_op"
                : pl.math == CUDNN_DEFAULT_MATH   ? "default"
                                                  : "tensor_op_allow_conversion";
    info.workspace_bytes = static_cast<int64_t>(pl.workspace);
    info.timed = pl.timed;
    info.time_ms = pl.time_ms;
    out.push_back(info);
  }
  return out;
}

namespace gpu {

Tensor conv2d_forward(const Tensor& input_, const Tensor& weight_, const Tensor& bias,
                      const ops::Conv2dParams& p) {
  check_conv(input_, weight_, p, "conv2d");
  const Shape& s = input_.shape();
  const Shape& ws = weight_.shape();
  const int64_t N = s[0], C = s[1], O = ws[0], G = p.groups;
  OKD_CHECK(O % G == 0 && C % G == 0, "conv2d: channels (", C, " in, ", O,
            " out) are not divisible by groups ", G);
  OKD_CHECK(ws[1] * G == C, "conv2d: input has ", C, " channels but weight expects ", ws[1] * G,
            " (input ", shape_str(s), ", weight ", shape_str(ws), ", groups ", G, ")");
  const auto [OH, OW] = ops::conv2d_output_size(s, ws, p);
  const Tensor x = ops::contiguous(input_), w = ops::contiguous(weight_);
  const Shape ys = {N, O, OH, OW};
  if (shape_numel(ys) == 0) return empty(ys, x.dtype(), x.device());
  const Staging m(x.dtype(), p);
  const Tensor xb = m.in(x), wb = m.in(w);
  Tensor y = m.out(ys, x.dtype(), x.device());
  ConvDescs d(s, ws, ys, p, x.dtype(), m, "conv2d");
  const FindArgs find{xb.device_raw_data(), wb.device_raw_data(), result_bytes(ys, x.dtype(), m),
                      x.device()};
  const Plan pl = plan_for(Dir::Forward, s, ws, ys, p, x.dtype(), m, d, find, "conv2d");
  const Tensor wsp = workspace(pl, x.device());
  const Scale sc;
  OKD_CUDNN_CHECK(
      "conv2d", cudnnConvolutionForward(
                    cudnn_handle(), sc.one(x.dtype()), d.x.d, xb.device_raw_data(), d.w.d,
                    wb.device_raw_data(), d.conv.d, static_cast<cudnnConvolutionFwdAlgo_t>(pl.algo),
                    ptr(wsp), pl.workspace, sc.zero(x.dtype()), d.y.d, y.device_raw_data()));
  Tensor out = m.result(y, ys);
  add_bias(out, bias, O, "conv2d");
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& s,
                             const ops::Conv2dParams& p, const Tensor& accumulate) {
  const char* op = "conv2d_backward_input";
  OKD_CHECK(s.size() == 4 && grad_out.dim() == 4 && weight.dim() == 4, op,
            ": expected 4-D shapes, got grad_output ", shape_str(grad_out.shape()), ", weight ",
            shape_str(weight.shape()), ", input ", shape_str(s));
  OKD_CHECK(grad_out.size(1) == weight.size(0) && grad_out.size(0) == s[0],
            "conv2d backward: grad_output ", shape_str(grad_out.shape()), " does not match weight ",
            shape_str(weight.shape()), " and input ", shape_str(s));
  check_conv(grad_out, weight, p, op);
  ops::check_conv_accumulate(accumulate, grad_out, s, op);
  return backward_data(grad_out, weight, s, p, op, accumulate);
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input, const Shape& ws,
                              const ops::Conv2dParams& p) {
  const char* op = "conv2d_backward_weight";
  OKD_CHECK(ws.size() == 4 && grad_out.dim() == 4 && input.dim() == 4, op,
            ": expected 4-D shapes, got grad_output ", shape_str(grad_out.shape()), ", input ",
            shape_str(input.shape()), ", weight ", shape_str(ws));
  OKD_CHECK(grad_out.size(1) == ws[0] && grad_out.size(0) == input.size(0),
            "conv2d backward: grad_output ", shape_str(grad_out.shape()), " does not match weight ",
            shape_str(ws), " and input ", shape_str(input.shape()));
  OKD_CHECK(grad_out.dtype() == input.dtype() && grad_out.device() == input.device(), op,
            ": grad_output ", grad_out.desc(), " does not match input ", input.desc());
  check_device(input, op);
  const Tensor x = ops::contiguous(input), dy = ops::contiguous(grad_out);
  if (shape_numel(ws) == 0) return empty(ws, x.dtype(), x.device());
  if (x.numel() == 0 || dy.numel() == 0) {
    Tensor dw = empty(ws, x.dtype(), x.device());
    ops::fill_(dw, 0.0);
    return dw;
  }
  const Staging m(x.dtype(), p);
  const Tensor xb = m.in(x), dyb = m.in(dy);
  Tensor dw = m.out(ws, x.dtype(), x.device());
  ConvDescs d(x.shape(), ws, dy.shape(), p, x.dtype(), m, op);
  const FindArgs find{xb.device_raw_data(), dyb.device_raw_data(), result_bytes(ws, x.dtype(), m),
                      x.device()};
  const Plan pl =
      plan_for(Dir::BackwardFilter, x.shape(), ws, dy.shape(), p, x.dtype(), m, d, find, op);
  const Tensor wsp = workspace(pl, x.device());
  const Scale sc;
  OKD_CUDNN_CHECK(op, cudnnConvolutionBackwardFilter(
                          cudnn_handle(), sc.one(x.dtype()), d.x.d, xb.device_raw_data(), d.y.d,
                          dyb.device_raw_data(), d.conv.d,
                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(pl.algo), ptr(wsp),
                          pl.workspace, sc.zero(x.dtype()), d.w.d, dw.device_raw_data()));
  return m.result(dw, ws);
}

Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const ops::Conv2dParams& p, int64_t oph, int64_t opw) {
  check_conv(input, weight, p, "conv_transpose2d");
  const Shape& s = input.shape();
  const Shape& ws = weight.shape();
  OKD_CHECK(ws[0] == s[1], "conv_transpose2d: input has ", s[1], " channels but weight expects ",
            ws[0], " (input ", shape_str(s), ", weight ", shape_str(ws), ")");
  OKD_CHECK(oph >= 0 && opw >= 0 && oph < std::max(p.stride_h, p.dil_h) &&
                opw < std::max(p.stride_w, p.dil_w),
            "conv_transpose2d: output_padding must be smaller than stride or dilation");
  // cuDNN takes only output sizes whose conv2d comes back to the input's: output_padding >= stride
  // is cropped from the unpadded output by ops::conv_transpose2d_forward before it gets here.
  OKD_CHECK(oph < p.stride_h && opw < p.stride_w, "conv_transpose2d: output_padding (", oph, ", ",
            opw, ") >= stride (", p.stride_h, ", ", p.stride_w,
            ") must go through ops::conv_transpose2d_forward");
  const int64_t Cout = ws[1] * p.groups;
  const int64_t OH = (s[2] - 1) * p.stride_h - 2 * p.pad_h + p.dil_h * (ws[2] - 1) + oph + 1;
  const int64_t OW = (s[3] - 1) * p.stride_w - 2 * p.pad_w + p.dil_w * (ws[3] - 1) + opw + 1;
  OKD_CHECK(OH > 0 && OW > 0, "conv_transpose2d: output would be empty for input ", shape_str(s));
  // The transposed convolution is the input-gradient of a conv2d whose input is the output here.
  Tensor out = backward_data(input, weight, {s[0], Cout, OH, OW}, p, "conv_transpose2d");
  add_bias(out, bias, Cout, "conv_transpose2d");
  return out;
}

}  // namespace gpu

}  // namespace okd::cuda

#else  // OKD_HAVE_CUDNN

namespace okd::cuda {

namespace {
[[noreturn]] void no_cudnn(const char* op) {
  OKD_FAIL("op ", op, " has no CUDA kernel yet: okd was built without cuDNN");
}
}  // namespace

void set_deterministic(bool) {}
bool deterministic() { return false; }
void set_channels_last(bool) {}
bool channels_last() { return false; }
void set_conv_autotune(bool) {}
bool conv_autotune() { return false; }
std::vector<ConvPlanInfo> conv_plans() { return {}; }
std::string cudnn_version() { return "not built"; }
namespace gpu {

Tensor conv2d_forward(const Tensor&, const Tensor&, const Tensor&, const ops::Conv2dParams&) {
  no_cudnn("conv2d");
}
Tensor conv2d_backward_input(const Tensor&, const Tensor&, const Shape&, const ops::Conv2dParams&,
                             const Tensor&) {
  no_cudnn("conv2d_backward_input");
}
Tensor conv2d_backward_weight(const Tensor&, const Tensor&, const Shape&,
                              const ops::Conv2dParams&) {
  no_cudnn("conv2d_backward_weight");
}
Tensor conv_transpose2d_forward(const Tensor&, const Tensor&, const Tensor&,
                                const ops::Conv2dParams&, int64_t, int64_t) {
  no_cudnn("conv_transpose2d");
}

}  // namespace gpu

}  // namespace okd::cuda

#endif  // OKD_HAVE_CUDNN
