// Batch normalisation on CUDA (formulas in norm.h). Training forward and backward come in two
// deterministic forms, chosen per call by cuda::batch_norm_parts() (set_batch_norm_split,
// OKD_BN_SPLIT):
//  - one block per channel, one launch each way: the block reduces the channel's N x S values in
//    double (each thread a fixed strided share, then block_reduce's fixed tree), forms scale and
//    shift in double as norm_cpu.cpp does, and writes the output in the input's dtype, with the
//    fused ReLU and residual of the forward and the ReLU mask of the backward in the same pass.
//    (These replaced a composition of ~12 generic ops forward and ~20 backward, in float64.)
//  - split: B = clamp(N S / 2048, 1, 32) blocks per channel (a function of N and S only, never of
//    the GPU), two launches each way. Block (c, p), blockIdx.x = c B + p, owns the contiguous
//    share [M p / B, M (p + 1) / B) of the channel's M = N S values in flat order m = n S + s
//    (ShareWalk: consecutive threads read consecutive addresses; (n, s) and the offset advance
//    without division). The stats kernel writes each block's partials to a [C, B, 2] double
//    workspace; the apply kernel's blocks (same grid, same shares) each load their channel's B
//    partials, combine them serially in part order on thread 0 (so every block of a channel gets
//    the same bits), and write y (or dx); part 0 also writes the channel's statistics (or dw, db).
//    Why this form: no floating-point atomics and no "last block" counter (nothing to reset
//    inside a captured CUDA graph); the order of every addition depends on (N, S) and the block
//    size only. The combine is redundant per block, but it is at most 32 loads from L2 each.
//    Variance: each block is two-pass over its own share (its sum, then the squared deviations
//    from its own mean, in double; the second pass rereads the share, mostly from L2), and the
//    channel combines them as M2 = sum_p [M2_p + n_p (mean_p - mean)^2] (Chan et al.): every term
//    is non-negative, so there is no cancellation and the result carries a relative error of a
//    few double ulps, against float32 data's 2^-24: as accurate as the one-block two-pass form,
//    without its third pass. (A single round of sum and sum of squares in double would lose
//    digits as (mean / std)^2 grows; this form does not.) The backward's sums, sum(d) and
//    sum(d (x - mean)), are plain partial sums added in part order.
//  The two forms add in different orders, so they agree within rounding, not bit for bit; each is
//  bit-identical from run to run. Both forms also advance the running statistics in the forward
//  (the thread that writes a channel's statistics updates its running mean and variance, block 0
//  the batch counter; batch_norm_update_running_'s arithmetic) and write the fused add+ReLU's
//  masked gradient in the backward's dx pass: each saves a launch per layer (issue 9). Eval mode is
//  one elementwise kernel with the per-channel scale and shift formed in each block.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tensor/bf16.h"
#include "tensor/cuda/backends.h"
#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"

namespace okd::cuda {

namespace {

struct Geometry {
  int64_t N, C, S, M;  // x viewed as [N, C, S]; M = N * S values per channel
};

Geometry geometry(const Tensor& x, const char* op) {
  OKD_CHECK(x.dim() >= 2, op, ": expected an input [N, C, ...], got ", shape_str(x.shape()));
  OKD_CHECK(is_floating(x.dtype()), op, ": expected a float tensor, got ", x.desc());
  check_device(x, op);
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.shape()[d];
  return {x.size(0), x.size(1), S, x.size(0) * S};
}

// Threads of a block laid over [rows, S]: `cols` threads per row (a power of two, at most the
// block), blockDim.x / cols rows at a time, so an 8x8 plane (S = 64) keeps every thread busy.
struct Lanes {
  int cols, rows;
};
Lanes lanes_for(int64_t S, int threads) {
  int cols = 32;
  while (cols < threads && cols < S) cols *= 2;
  return {cols, threads / cols};
}

constexpr int kChannelThreads = 512;
constexpr int kEvalThreads = 256;

// The running statistics a kernel advances (mean null: none; count null: no counter).
template <class T>
struct RunningStats {
  T* mean = nullptr;
  T* var = nullptr;
  int64_t* count = nullptr;
  double momentum = 0;
};

// running = (1 - m) running + m batch for channel c's mean and variance: the CPU's two roundings
// (norm_cpu.cpp), with the double products and sum rounded on their own (__dmul_rn, __dadd_rn: no
// fused multiply-add), so the result is the CPU's bit for bit. One thread per channel calls it.
template <class T>
__device__ void update_running(const RunningStats<T>& r, int64_t c, T batch_mean, T batch_var) {
  const double keep = 1.0 - r.momentum;
  const T m = static_cast<T>(__dmul_rn(static_cast<double>(r.mean[c]), keep));
  r.mean[c] = static_cast<T>(
      __dadd_rn(static_cast<double>(m), __dmul_rn(r.momentum, static_cast<double>(batch_mean))));
  const T v = static_cast<T>(__dmul_rn(static_cast<double>(r.var[c]), keep));
  r.var[c] = static_cast<T>(
      __dadd_rn(static_cast<double>(v), __dmul_rn(r.momentum, static_cast<double>(batch_var))));
}

// Channel c = blockIdx.x of x [N, C, S] (contiguous): mean, biased variance, y = x * scale + shift
// (+ residual, then max(., 0) when relu), the statistics, and the running statistics advanced
// with them (block 0 also advances the counter). w, b, res, run.mean may be null; y_bf16, when not
// null, receives y rounded to bfloat16 (set_bf16_prestaging).
template <class T>
__global__ void bn_train_kernel(const T* x, const T* w, const T* b, const T* res, T* y,
                                uint16_t* y_bf16, T* mean_out, T* invstd_out, T* var_unbiased_out,
                                RunningStats<T> run, int64_t N, int64_t C, int64_t S, double eps,
                                bool relu, Lanes lanes) {
  __shared__ double smem[32];
  const int64_t c = blockIdx.x;
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  const double M = static_cast<double>(N * S);
  double s = 0;
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const T* r = x + (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) s += static_cast<double>(r[i]);
  }
  const double mean = block_reduce(s, SumOp{}, smem) / M;
  const T mean_t = static_cast<T>(mean);
  double ss = 0;  // two passes, as on the CPU: sum (x - mean)^2
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const T* r = x + (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const double d = static_cast<double>(r[i] - mean_t);
      ss += d * d;
    }
  }
  ss = block_reduce(ss, SumOp{}, smem);
  const double invstd = 1.0 / ::sqrt(ss / M + eps);
  const double wc = w ? static_cast<double>(w[c]) : 1.0, bc = b ? static_cast<double>(b[c]) : 0.0;
  const T scale = static_cast<T>(invstd * wc), shift = static_cast<T>(bc - mean * invstd * wc);
  if (threadIdx.x == 0) {
    const T var_t = static_cast<T>(ss / (M - 1));
    mean_out[c] = mean_t;
    invstd_out[c] = static_cast<T>(invstd);
    var_unbiased_out[c] = var_t;
    if (run.mean) update_running(run, c, mean_t, var_t);
    if (run.count && c == 0) *run.count += 1;
  }
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      T v = x[at + i] * scale + shift;
      if (res) v = v + res[at + i];
      v = relu && !(v > T(0)) ? T(0) : v;
      y[at + i] = v;
      if (y_bf16) y_bf16[at + i] = bf16::from_float(static_cast<float>(v));
    }
  }
}

// Channel c = blockIdx.x: with d = dy (or dy where z > 0, z the fused forward's output),
// dx = w invstd / M (M d - sum(d) - xhat sum(d xhat)), dw = sum(d xhat), db = sum(d); d itself
// goes to dm when dm is not null (the residual's gradient of the fused add); dx rounded to
// bfloat16 to dx_bf16 when that is not null (set_bf16_prestaging).
template <class T>
__global__ void bn_backward_kernel(const T* dy, const T* x, const T* w, const T* mean,
                                   const T* invstd, const T* z, T* dx, uint16_t* dx_bf16, T* dw,
                                   T* db, T* dm, int64_t N, int64_t C, int64_t S, Lanes lanes) {
  __shared__ double smem[32];
  const int64_t c = blockIdx.x;
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  const T mc = mean[c];
  const double is = static_cast<double>(invstd[c]), wc = w ? static_cast<double>(w[c]) : 1.0;
  double sdy = 0, sdyx = 0;
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const T d = z && !(z[at + i] > T(0)) ? T(0) : dy[at + i];
      sdy += static_cast<double>(d);
      sdyx += static_cast<double>(d * (x[at + i] - mc));
    }
  }
  sdy = block_reduce(sdy, SumOp{}, smem);
  sdyx = block_reduce(sdyx, SumOp{}, smem) * is;  // sum(d xhat)
  if (threadIdx.x == 0) {
    dw[c] = static_cast<T>(sdyx);
    db[c] = static_cast<T>(sdy);
  }
  const double M = static_cast<double>(N * S), k = wc * is / M;
  const T a = static_cast<T>(k * M), bb = static_cast<T>(-k * sdyx * is),
          off = static_cast<T>(-k * sdy);
  for (int64_t n = row0; n < N; n += lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) {
      const T d = z && !(z[at + i] > T(0)) ? T(0) : dy[at + i];
      const T g = a * d + bb * (x[at + i] - mc) + off;
      dx[at + i] = g;
      if (dx_bf16) dx_bf16[at + i] = bf16::from_float(static_cast<float>(g));
      if (dm) dm[at + i] = d;
    }
  }
}

// ---- split: several blocks per channel ---------------------------------------------------------
constexpr int kSplitThreads = 256;
constexpr int64_t kSplitShare = 2048;  // values per block, at least (8 a thread and pass)
constexpr int kMaxParts = 32;          // blocks per channel, at most
// Mode 2 splits only below this many channels: 256 one-block channels are already about two
// blocks per SM of an H100/H200 (132 SMs). A fixed number, so the choice never depends on the GPU.
constexpr int64_t kAutoSplitChannels = 256;

// Thread threadIdx.x's values of its block's share [lo, hi) of channel c: flat indices m = lo +
// threadIdx.x, + blockDim.x, ... below hi, where m = n S + s sits at (n C + c) S + s in x. The
// column s and the offset advance by fixed steps, with one wrap to the next row at most (ds < S).
struct ShareWalk {
  int64_t m, hi, s, off, S, ds, doff, wrap;
  __device__ ShareWalk(int64_t lo, int64_t hi_, int64_t C, int64_t c, int64_t S_)
      : m(lo + threadIdx.x), hi(hi_), S(S_) {
    const int64_t n = m / S, dn = blockDim.x / S;
    s = m - n * S;
    off = (n * C + c) * S + s;
    ds = blockDim.x - dn * S;
    doff = dn * C * S + ds;
    wrap = C * S - S;
  }
  __device__ bool more() const { return m < hi; }
  __device__ void next() {
    m += blockDim.x;
    s += ds;
    off += doff;
    if (s >= S) {
      s -= S;
      off += wrap;
    }
  }
};

// Block (c, p) = blockIdx.x / B, blockIdx.x % B owns values [M p / B, M (p + 1) / B) of channel c.
struct Share {
  int64_t c, p, lo, hi;
};
__device__ Share share_of_block(int64_t M, int B) {
  const int64_t c = blockIdx.x / B, p = blockIdx.x % B;
  return {c, p, M * p / B, M * (p + 1) / B};
}

// Loads channel c's B partial pairs [C, B, 2] into sp (2 B doubles); ends with a barrier.
__device__ void load_parts(const double* part, int64_t c, int B, double* sp) {
  if (static_cast<int>(threadIdx.x) < 2 * B) sp[threadIdx.x] = part[2 * c * B + threadIdx.x];
  __syncthreads();
}

// Forward, first launch: block (c, p) writes part[c, p] = (sum of its values, sum of their
// squared deviations from its own mean), both in double.
template <class T>
__global__ void bn_split_stats_kernel(const T* x, double* part, int64_t C, int64_t S, int64_t M,
                                      int B) {
  __shared__ double smem[32];
  const Share sh = share_of_block(M, B);
  double s = 0;
  for (ShareWalk w(sh.lo, sh.hi, C, sh.c, S); w.more(); w.next())
    s += static_cast<double>(x[w.off]);
  s = block_reduce(s, SumOp{}, smem);
  const double mean = s / static_cast<double>(sh.hi - sh.lo);
  double q = 0;
  for (ShareWalk w(sh.lo, sh.hi, C, sh.c, S); w.more(); w.next()) {
    const double d = static_cast<double>(x[w.off]) - mean;
    q += d * d;
  }
  q = block_reduce(q, SumOp{}, smem);
  if (threadIdx.x == 0) {
    part[2 * blockIdx.x] = s;
    part[2 * blockIdx.x + 1] = q;
  }
}

// Forward, second launch: every block combines its channel's parts in part order (mean = sum /
// M, M2 = sum_p [M2_p + n_p (mean_p - mean)^2]), forms scale and shift as bn_train_kernel does,
// and writes y over its share; part 0 writes the statistics and advances the running ones (block
// 0 the counter).
template <class T>
__global__ void bn_split_apply_kernel(const T* x, const T* w, const T* b, const T* res, T* y,
                                      uint16_t* y_bf16, T* mean_out, T* invstd_out,
                                      T* var_unbiased_out, RunningStats<T> run, const double* part,
                                      int64_t C, int64_t S, int64_t M, int B, double eps,
                                      bool relu) {
  __shared__ double sp[2 * kMaxParts];
  __shared__ double coef[2];  // scale and shift, exactly as T
  const Share sh = share_of_block(M, B);
  double wc = 1.0, bc = 0.0;  // read before the barrier: their latency overlaps the parts' loads
  if (threadIdx.x == 0) {
    if (w) wc = static_cast<double>(w[sh.c]);
    if (b) bc = static_cast<double>(b[sh.c]);
  }
  load_parts(part, sh.c, B, sp);
  if (threadIdx.x == 0) {
    const double Md = static_cast<double>(M);
    double sum = 0;
    for (int q = 0; q < B; ++q) sum += sp[2 * q];
    const double mean = sum / Md;
    double m2 = 0;
    for (int q = 0; q < B; ++q) {
      const double nq = static_cast<double>(M * (q + 1) / B - M * q / B);
      const double dm = sp[2 * q] / nq - mean;
      m2 += sp[2 * q + 1] + nq * dm * dm;
    }
    const double invstd = 1.0 / ::sqrt(m2 / Md + eps);
    coef[0] = static_cast<double>(static_cast<T>(invstd * wc));
    coef[1] = static_cast<double>(static_cast<T>(bc - mean * invstd * wc));
    if (sh.p == 0) {
      const T mean_t = static_cast<T>(mean), var_t = static_cast<T>(m2 / (Md - 1));
      mean_out[sh.c] = mean_t;
      invstd_out[sh.c] = static_cast<T>(invstd);
      var_unbiased_out[sh.c] = var_t;
      if (run.mean) update_running(run, sh.c, mean_t, var_t);
      if (run.count && sh.c == 0) *run.count += 1;
    }
  }
  __syncthreads();
  const T scale = static_cast<T>(coef[0]), shift = static_cast<T>(coef[1]);
  for (ShareWalk it(sh.lo, sh.hi, C, sh.c, S); it.more(); it.next()) {
    T v = x[it.off] * scale + shift;
    if (res) v = v + res[it.off];
    v = relu && !(v > T(0)) ? T(0) : v;
    y[it.off] = v;
    if (y_bf16) y_bf16[it.off] = bf16::from_float(static_cast<float>(v));
  }
}

// Backward, first launch: part[c, p] = (sum d, sum d (x - mean)) over block (c, p)'s share, with
// d = dy masked by z > 0 when z is given, the terms formed as bn_backward_kernel forms them.
template <class T>
__global__ void bn_split_backward_stats_kernel(const T* dy, const T* x, const T* mean, const T* z,
                                               double* part, int64_t C, int64_t S, int64_t M,
                                               int B) {
  __shared__ double smem[32];
  const Share sh = share_of_block(M, B);
  const T mc = mean[sh.c];
  double sdy = 0, sdyx = 0;
  for (ShareWalk w(sh.lo, sh.hi, C, sh.c, S); w.more(); w.next()) {
    const T d = z && !(z[w.off] > T(0)) ? T(0) : dy[w.off];
    sdy += static_cast<double>(d);
    sdyx += static_cast<double>(d * (x[w.off] - mc));
  }
  sdy = block_reduce(sdy, SumOp{}, smem);
  sdyx = block_reduce(sdyx, SumOp{}, smem);
  if (threadIdx.x == 0) {
    part[2 * blockIdx.x] = sdy;
    part[2 * blockIdx.x + 1] = sdyx;
  }
}

// Backward, second launch: every block adds its channel's parts in part order and writes dx over
// its share (and the masked dy to dm, when not null) as bn_backward_kernel does; part 0 writes dw
// and db.
template <class T>
__global__ void bn_split_backward_apply_kernel(const T* dy, const T* x, const T* w, const T* mean,
                                               const T* invstd, const T* z, T* dx,
                                               uint16_t* dx_bf16, T* dw, T* db, T* dm,
                                               const double* part, int64_t C, int64_t S, int64_t M,
                                               int B) {
  __shared__ double sp[2 * kMaxParts];
  __shared__ double coef[3];  // a, bb, off, exactly as T
  const Share sh = share_of_block(M, B);
  double is = 0, wc = 1.0;  // read before the barrier: their latency overlaps the parts' loads
  if (threadIdx.x == 0) {
    is = static_cast<double>(invstd[sh.c]);
    if (w) wc = static_cast<double>(w[sh.c]);
  }
  const T mc = mean[sh.c];
  load_parts(part, sh.c, B, sp);
  if (threadIdx.x == 0) {
    double sdy = 0, sdyx = 0;
    for (int q = 0; q < B; ++q) {
      sdy += sp[2 * q];
      sdyx += sp[2 * q + 1];
    }
    sdyx *= is;  // sum(d xhat)
    if (sh.p == 0) {
      dw[sh.c] = static_cast<T>(sdyx);
      db[sh.c] = static_cast<T>(sdy);
    }
    const double Md = static_cast<double>(M), k = wc * is / Md;
    coef[0] = static_cast<double>(static_cast<T>(k * Md));
    coef[1] = static_cast<double>(static_cast<T>(-k * sdyx * is));
    coef[2] = static_cast<double>(static_cast<T>(-k * sdy));
  }
  __syncthreads();
  const T a = static_cast<T>(coef[0]), bb = static_cast<T>(coef[1]), off = static_cast<T>(coef[2]);
  for (ShareWalk it(sh.lo, sh.hi, C, sh.c, S); it.more(); it.next()) {
    const T d = z && !(z[it.off] > T(0)) ? T(0) : dy[it.off];
    const T g = a * d + bb * (x[it.off] - mc) + off;
    dx[it.off] = g;
    if (dx_bf16) dx_bf16[it.off] = bf16::from_float(static_cast<float>(g));
    if (dm) dm[it.off] = d;
  }
}

// Eval mode: y = x * scale + shift with scale = w / sqrt(var + eps), shift = b - mean scale, formed
// in double per channel as norm_cpu.cpp does and rounded to T. Block (c, j) takes channel c of
// the samples j, j + gridDim.y, ...; w, b may be null.
template <class T>
__global__ void bn_eval_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b,
                               T* y, int64_t N, int64_t C, int64_t S, double eps, Lanes lanes) {
  const int64_t c = blockIdx.x;
  const double inv = 1.0 / ::sqrt(static_cast<double>(var[c]) + eps);
  const double wc = w ? static_cast<double>(w[c]) : 1.0, bc = b ? static_cast<double>(b[c]) : 0.0;
  const T scale = static_cast<T>(wc * inv),
          shift = static_cast<T>(bc - static_cast<double>(mean[c]) * inv * wc);
  const int row0 = threadIdx.x / lanes.cols, col0 = threadIdx.x % lanes.cols;
  for (int64_t n = blockIdx.y * static_cast<int64_t>(lanes.rows) + row0; n < N;
       n += static_cast<int64_t>(gridDim.y) * lanes.rows) {
    const int64_t at = (n * C + c) * S;
    for (int64_t i = col0; i < S; i += lanes.cols) y[at + i] = x[at + i] * scale + shift;
  }
}

// A [C] parameter as a contiguous tensor of x's dtype on x's device, or undefined.
Tensor channel_param(const Tensor& t, int64_t C, const Tensor& x, const char* what,
                     const char* op) {
  if (!t.defined()) return Tensor();
  OKD_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the input has ", C, " channels");
  OKD_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device().str(),
            " but the input on ", x.device().str());
  return ops::contiguous(ops::to(t, x.dtype()));
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.device_data<T>() : nullptr;
}

// With set_bf16_prestaging (and no channels-last staging), a bfloat16 buffer for a copy of the
// float32 tensor t that the kernel writes beside t; else undefined.
Tensor prestaged(const Tensor& t) {
  if (!bf16_prestaging() || channels_last() || t.dtype() != DType::Float32 || t.numel() == 0)
    return Tensor();
  return empty({2 * t.numel()}, DType::UInt8, t.device());
}
uint16_t* bf16_data(const Tensor& buffer) {
  return buffer.defined() ? static_cast<uint16_t*>(buffer.device_raw_data()) : nullptr;
}

int split_mode_from_environment() noexcept {
  const char* v = std::getenv("OKD_BN_SPLIT");
  if (v == nullptr || *v == '\0') return 2;
  const std::string s(v);
  if (s == "0" || s == "1" || s == "2") return s[0] - '0';
  std::fprintf(stderr, "okd: OKD_BN_SPLIT=%s ignored: expected 0, 1 or 2\n", v);
  return 2;
}
// running = (1 - m) running + m batch for the mean and the variance of channel c = thread (the
// arithmetic of update_running); thread 0 of block 0 advances the counter.
template <class T>
__global__ void bn_update_running_kernel(RunningStats<T> run, const T* bmean, const T* bvar,
                                         int64_t C) {
  if (run.count && blockIdx.x == 0 && threadIdx.x == 0) *run.count += 1;
  OKD_GRID_STRIDE(c, C) { update_running(run, c, bmean[c], bvar[c]); }
}

// The device pointers of running (mean undefined: none), bumping the versions of what the
// kernel will write.
template <class T>
RunningStats<T> running_stats(const ops::BatchNormRunning& running) {
  RunningStats<T> r;
  if (!running.mean.defined()) return r;
  running.mean.impl()->storage->bump_version();
  running.var.impl()->storage->bump_version();
  r.mean = running.mean.device_data<T>();
  r.var = running.var.device_data<T>();
  r.momentum = running.momentum;
  if (running.num_batches_tracked.defined()) {
    running.num_batches_tracked.impl()->storage->bump_version();
    r.count = running.num_batches_tracked.device_data<int64_t>();
  }
  return r;
}

std::atomic<int> g_bn_split{split_mode_from_environment()};

}  // namespace

void set_batch_norm_split(int mode) {
  OKD_CHECK(mode >= 0 && mode <= 2,
            "set_batch_norm_split: expected 0 (one block per channel), 1 (split) or 2 (automatic), "
            "got ",
            mode);
  g_bn_split = mode;
}
int batch_norm_split() { return g_bn_split; }

int64_t batch_norm_parts(int64_t N, int64_t C, int64_t S) {
  const int mode = g_bn_split;
  const int64_t parts = std::clamp<int64_t>(N * S / kSplitShare, 1, kMaxParts);
  if (mode == 0 || parts == 1 || C > (int64_t{1} << 31) / kMaxParts - 1) return 1;
  if (mode == 2 && C >= kAutoSplitChannels) return 1;
  return parts;
}

namespace gpu {

std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x_, const Tensor& weight,
                                                        const Tensor& bias, double eps, bool relu,
                                                        const Tensor& residual,
                                                        const ops::BatchNormRunning& running) {
  const char* op = "batch_norm";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(g.M > 1, "batch_norm: training needs more than one value per channel, got input ",
            shape_str(x_.shape()));
  const Tensor x = ops::contiguous(x_);
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor b = channel_param(bias, g.C, x, "bias", op);
  Tensor res;
  if (residual.defined()) {
    OKD_CHECK(residual.shape() == x.shape() && residual.dtype() == x.dtype() &&
                  residual.device() == x.device(),
              "batch_norm: the residual ", residual.desc(), " does not match the input ", x.desc());
    res = ops::contiguous(residual);
  }
  const int64_t S = g.S;
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  ops::BatchNormStats st{empty({g.C}, x.dtype(), x.device()), empty({g.C}, x.dtype(), x.device()),
                         empty({g.C}, x.dtype(), x.device())};
  if (g.C == 0) {  // no channel: only the counter to advance
    if (running.mean.defined())
      batch_norm_update_running_(running.mean, running.var, st.mean, st.var_unbiased,
                                 running.momentum, running.num_batches_tracked);
    return {y, st};
  }
  const Tensor yb = prestaged(y);
  const int64_t B = batch_norm_parts(g.N, g.C, S);
  if (B > 1) {
    const Tensor part = empty({g.C, B, 2}, DType::Float64, x.device());
    const auto blocks = static_cast<unsigned>(g.C * B);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      bn_split_stats_kernel<T><<<blocks, kSplitThreads, 0, stream()>>>(
          x.device_data<T>(), part.device_data<double>(), g.C, S, g.M, static_cast<int>(B));
      bn_split_apply_kernel<T><<<blocks, kSplitThreads, 0, stream()>>>(
          x.device_data<T>(), data_or_null<T>(w), data_or_null<T>(b), data_or_null<T>(res),
          y.device_data<T>(), bf16_data(yb), st.mean.device_data<T>(), st.invstd.device_data<T>(),
          st.var_unbiased.device_data<T>(), running_stats<T>(running), part.device_data<double>(),
          g.C, S, g.M, static_cast<int>(B), eps, relu);
    });
    OKD_CUDA_CHECK_LAUNCH(op);
    if (yb.defined()) gpu::remember_bf16_copy(y, yb);
    return {y, st};
  }
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_train_kernel<T><<<static_cast<unsigned>(g.C), kChannelThreads, 0, stream()>>>(
        x.device_data<T>(), data_or_null<T>(w), data_or_null<T>(b), data_or_null<T>(res),
        y.device_data<T>(), bf16_data(yb), st.mean.device_data<T>(), st.invstd.device_data<T>(),
        st.var_unbiased.device_data<T>(), running_stats<T>(running), g.N, g.C, S, eps, relu,
        lanes_for(S, kChannelThreads));
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  if (yb.defined()) gpu::remember_bf16_copy(y, yb);
  return {y, st};
}

void batch_norm_update_running_(const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& batch_mean, const Tensor& batch_var, double momentum,
                                const Tensor& num_batches_tracked) {
  // Shapes, dtypes, layouts and devices were checked by ops::batch_norm_update_running_.
  const char* op = "batch_norm_update_running_";
  check_device(running_mean, op);
  const int64_t C = running_mean.numel();
  dispatch_float(running_mean.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const RunningStats<T> run =
        running_stats<T>({running_mean, running_var, momentum, num_batches_tracked});
    if (C == 0 && !run.count) return;
    bn_update_running_kernel<T><<<grid_for(std::max<int64_t>(C, 1)), kThreads, 0, stream()>>>(
        run, batch_mean.device_data<T>(), batch_var.device_data<T>(), C);
  });
  OKD_CUDA_CHECK_LAUNCH(op);
}

Tensor batch_norm_eval(const Tensor& x_, const Tensor& mean, const Tensor& var,
                       const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "batch_norm";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(mean.defined() && var.defined(), "batch_norm: eval mode needs running statistics");
  // (statistics of another float dtype than x are rounded to x's first; the CPU reads them in
  // double)
  const Tensor x = ops::contiguous(x_);
  const Tensor m = channel_param(mean, g.C, x, "running_mean", op);
  const Tensor v = channel_param(var, g.C, x, "running_var", op);
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor b = channel_param(bias, g.C, x, "bias", op);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return y;  // nothing to launch
  const int64_t S = g.S;
  const Lanes lanes = lanes_for(S, kEvalThreads);
  const int64_t row_blocks = (g.N + lanes.rows - 1) / lanes.rows;
  const dim3 grid(static_cast<unsigned>(g.C),
                  static_cast<unsigned>(std::min<int64_t>(row_blocks, 32)));
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_eval_kernel<T><<<grid, kEvalThreads, 0, stream()>>>(
        x.device_data<T>(), m.device_data<T>(), v.device_data<T>(), data_or_null<T>(w),
        data_or_null<T>(b), y.device_data<T>(), g.N, g.C, S, eps, lanes);
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  return y;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_backward(
    const Tensor& dy_, const Tensor& x_, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& relu_out, bool want_masked) {
  const char* op = "batch_norm_backward";
  const Geometry g = geometry(x_, op);
  OKD_CHECK(dy_.shape() == x_.shape() && dy_.dtype() == x_.dtype() && dy_.device() == x_.device(),
            "batch_norm_backward: gradient ", dy_.desc(), " does not match input ", x_.desc());
  if (relu_out.defined())
    OKD_CHECK(relu_out.shape() == x_.shape() && relu_out.dtype() == x_.dtype() &&
                  relu_out.device() == x_.device(),
              "batch_norm_backward: the fused ReLU output ", relu_out.desc(),
              " does not match the input ", x_.desc());
  const Tensor x = ops::contiguous(x_), dy = ops::contiguous(dy_);
  const Tensor z = relu_out.defined() ? ops::contiguous(relu_out) : Tensor();
  const Tensor w = channel_param(weight, g.C, x, "weight", op);
  const Tensor m = channel_param(mean, g.C, x, "mean", op);
  const Tensor is = channel_param(invstd, g.C, x, "invstd", op);
  OKD_CHECK(m.defined() && is.defined(), op, ": needs the forward's mean and invstd");
  const int64_t S = g.S;
  Tensor dx = empty(x.shape(), x.dtype(), x.device());
  Tensor dw = empty({g.C}, x.dtype(), x.device()), db = empty({g.C}, x.dtype(), x.device());
  OKD_CHECK(!want_masked || z.defined(), op, ": the masked gradient needs the fused output");
  Tensor dm = want_masked ? empty(x.shape(), x.dtype(), x.device()) : Tensor();
  if (g.C == 0) return {dx, dw, db, dm};  // no channel: nothing to launch
  const Tensor dxb = prestaged(dx);
  const int64_t B = batch_norm_parts(g.N, g.C, S);
  if (B > 1) {
    const Tensor part = empty({g.C, B, 2}, DType::Float64, x.device());
    const auto blocks = static_cast<unsigned>(g.C * B);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      bn_split_backward_stats_kernel<T><<<blocks, kSplitThreads, 0, stream()>>>(
          dy.device_data<T>(), x.device_data<T>(), m.device_data<T>(), data_or_null<T>(z),
          part.device_data<double>(), g.C, S, g.M, static_cast<int>(B));
      bn_split_backward_apply_kernel<T><<<blocks, kSplitThreads, 0, stream()>>>(
          dy.device_data<T>(), x.device_data<T>(), data_or_null<T>(w), m.device_data<T>(),
          is.device_data<T>(), data_or_null<T>(z), dx.device_data<T>(), bf16_data(dxb),
          dw.device_data<T>(), db.device_data<T>(), (dm.defined() ? dm.device_data<T>() : nullptr),
          part.device_data<double>(), g.C, S, g.M, static_cast<int>(B));
    });
    OKD_CUDA_CHECK_LAUNCH(op);
    if (dxb.defined()) gpu::remember_bf16_copy(dx, dxb);
    return {dx, dw, db, dm};
  }
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    bn_backward_kernel<T><<<static_cast<unsigned>(g.C), kChannelThreads, 0, stream()>>>(
        dy.device_data<T>(), x.device_data<T>(), data_or_null<T>(w), m.device_data<T>(),
        is.device_data<T>(), data_or_null<T>(z), dx.device_data<T>(), bf16_data(dxb),
        dw.device_data<T>(), db.device_data<T>(), (dm.defined() ? dm.device_data<T>() : nullptr),
        g.N, g.C, S, lanes_for(S, kChannelThreads));
  });
  OKD_CUDA_CHECK_LAUNCH(op);
  if (dxb.defined()) gpu::remember_bf16_copy(dx, dxb);
  return {dx, dw, db, dm};
}

}  // namespace gpu

}  // namespace okd::cuda
