// The bfloat16 staging kernels of bf16_staging.h: float32 <-> bfloat16 copies, optionally
// transposing NCHW <-> NHWC on the way (a shared-memory tile per 32 x 32 block of [C, H W]), and
// in-place rounding. The rounding is tensor/bf16.h's, the same
// code as the CPU's round_bf16, so both devices round every value identically. Also the per-thread
// table of reusable copies (to_bf16_reused).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <iterator>
#include <memory>
#include <unordered_map>

#include "tensor/bf16.h"
#include "tensor/cuda/bf16_staging.h"
#include "tensor/cuda/launch.cuh"

namespace okd::cuda::gpu {

namespace {

__global__ void to_bf16_kernel(const float* x, uint16_t* out, int64_t n) {
  OKD_GRID_STRIDE(i, n) { out[i] = bf16::from_float(x[i]); }
}

// out = float(buf), or out += float(buf) with kAdd (one float32 addition: the sum is that of
// widening first and adding after, bit for bit, since widening is exact).
template <bool kAdd>
__global__ void from_bf16_kernel(const uint16_t* buf, float* out, int64_t n) {
  OKD_GRID_STRIDE(i, n) {
    const float v = bf16::to_float(buf[i]);
    out[i] = kAdd ? out[i] + v : v;
  }
}

// NCHW <-> NHWC: per sample, a transposition between [C, P] and [P, C] (P = H W) through a shared
// 32 x 32 tile, so that both the reads and the writes of a warp are contiguous (and no thread
// divides an index). Block (x, y, z) = (tile of P, tile of C, sample); blockDim (32, 8).
constexpr int kTile = 32;
constexpr int kTileRows = 8;

// out[n][p][c] = bf16(x[n][c][p])
__global__ void to_bf16_nhwc_kernel(const float* x, uint16_t* out, int C, int P) {
  __shared__ uint16_t tile[kTile][kTile + 1];
  const int64_t base = static_cast<int64_t>(blockIdx.z) * C * P;
  const int p0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int c = c0 + k, p = p0 + threadIdx.x;
    if (c < C && p < P) tile[k][threadIdx.x] = bf16::from_float(x[base + int64_t{c} * P + p]);
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int p = p0 + k, c = c0 + threadIdx.x;
    if (c < C && p < P) out[base + int64_t{p} * C + c] = tile[threadIdx.x][k];
  }
}

// out[n][c][p] = float(buf[n][p][c]) (+= with kAdd)
template <bool kAdd>
__global__ void from_bf16_nhwc_kernel(const uint16_t* buf, float* out, int C, int P) {
  __shared__ uint16_t tile[kTile][kTile + 1];
  const int64_t base = static_cast<int64_t>(blockIdx.z) * C * P;
  const int p0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int p = p0 + k, c = c0 + threadIdx.x;
    if (c < C && p < P) tile[k][threadIdx.x] = buf[base + int64_t{p} * C + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int c = c0 + k, p = p0 + threadIdx.x;
    if (c < C && p < P) {
      const int64_t at = base + int64_t{c} * P + p;
      const float v = bf16::to_float(tile[threadIdx.x][k]);
      out[at] = kAdd ? out[at] + v : v;
    }
  }
}

__global__ void round_bf16_kernel(float* x, int64_t n) {
  OKD_GRID_STRIDE(i, n) { x[i] = bf16::round(x[i]); }
}

// The transposition's grid for a 4-D shape [N, C, H, W].
dim3 nhwc_grid(const Shape& s, const char* op) {
  OKD_CHECK(s.size() == 4, op, ": the NHWC order needs a 4-D shape, got ", shape_str(s));
  const int64_t P = s[2] * s[3];
  OKD_CHECK(s[0] <= 65535 && s[1] <= INT_MAX / 2 && P <= INT_MAX / 2 && s[1] * P <= INT_MAX, op,
            ": shape ", shape_str(s), " is too large for the NHWC staging kernel");
  return dim3(static_cast<unsigned>((P + kTile - 1) / kTile),
              static_cast<unsigned>((s[1] + kTile - 1) / kTile), static_cast<unsigned>(s[0]));
}

}  // namespace

Tensor to_bf16(const Tensor& x, bool nhwc) {
  const char* op = "to_bf16";
  OKD_CHECK(x.dtype() == DType::Float32 && x.is_contiguous(), op,
            ": expected a contiguous float32 tensor, got ", x.desc());
  check_device(x, op);
  const int64_t n = x.numel();
  const dim3 grid = nhwc ? nhwc_grid(x.shape(), op) : dim3(grid_for(n));
  Tensor out = empty({2 * n}, DType::UInt8, x.device());
  if (n == 0) return out;
  uint16_t* o = static_cast<uint16_t*>(out.device_raw_data());
  if (nhwc)
    to_bf16_nhwc_kernel<<<grid, dim3(kTile, kTileRows), 0, stream()>>>(
        x.device_data<float>(), o, static_cast<int>(x.size(1)),
        static_cast<int>(x.size(2) * x.size(3)));
  else
    to_bf16_kernel<<<grid, kThreads, 0, stream()>>>(x.device_data<float>(), o, n);
  OKD_CUDA_CHECK_LAUNCH(op);
  return out;
}

namespace {
// out (float32, contiguous, shape s) = or += the bfloat16 buffer's values.
void widen(const Tensor& buffer, const Tensor& out, bool nhwc, bool add, const char* op) {
  const Shape& s = out.shape();
  const int64_t n = shape_numel(s);
  const dim3 grid = nhwc ? nhwc_grid(s, op) : dim3(grid_for(n));
  OKD_CHECK(buffer.dtype() == DType::UInt8 && buffer.is_contiguous() && buffer.numel() == 2 * n, op,
            ": expected a buffer of ", 2 * n, " bytes for shape ", shape_str(s), ", got ",
            buffer.desc());
  check_device(buffer, op);
  if (n == 0) return;
  const uint16_t* b = static_cast<const uint16_t*>(buffer.device_raw_data());
  float* o = out.device_data<float>();
  const int C = nhwc ? static_cast<int>(s[1]) : 0, P = nhwc ? static_cast<int>(s[2] * s[3]) : 0;
  const dim3 tile(kTile, kTileRows);
  if (nhwc && add)
    from_bf16_nhwc_kernel<true><<<grid, tile, 0, stream()>>>(b, o, C, P);
  else if (nhwc)
    from_bf16_nhwc_kernel<false><<<grid, tile, 0, stream()>>>(b, o, C, P);
  else if (add)
    from_bf16_kernel<true><<<grid, kThreads, 0, stream()>>>(b, o, n);
  else
    from_bf16_kernel<false><<<grid, kThreads, 0, stream()>>>(b, o, n);
  OKD_CUDA_CHECK_LAUNCH(op);
}
}  // namespace

Tensor from_bf16(const Tensor& buffer, const Shape& s, bool nhwc) {
  Tensor out = empty(s, DType::Float32, buffer.device());
  widen(buffer, out, nhwc, /*add=*/false, "from_bf16");
  return out;
}

void add_from_bf16_(const Tensor& dst, const Tensor& buffer, bool nhwc) {
  const char* op = "add_from_bf16_";
  OKD_CHECK(dst.dtype() == DType::Float32 && dst.is_contiguous(), op,
            ": expected a contiguous float32 tensor, got ", dst.desc());
  check_device(dst, op);
  dst.impl()->storage->bump_version();
  widen(buffer, dst, nhwc, /*add=*/true, op);
}

namespace {
// One reusable copy: what it was made from, weakly (a dead or rewritten source retires it).
struct StagedCopy {
  std::weak_ptr<Storage> source;
  uint64_t version;
  int64_t offset;
  Shape shape;
  bool nhwc;
  Tensor copy;
  bool current() const {
    const std::shared_ptr<Storage> s = source.lock();
    return s && s->version() == version;
  }
};
struct StagedCopies {
  std::unordered_multimap<const Storage*, StagedCopy> by_source;
  size_t sweep_at = 64;  // drop retired copies when the map grows past this (amortised)
  int64_t reused = 0;
};
thread_local StagedCopies t_staged;

// Files copy as the reusable copy of x (at x's current version), first dropping retired copies
// when the table has grown past its sweep mark.
void keep(StagedCopies& c, const Tensor& x, bool nhwc, const Tensor& copy) {
  if (c.by_source.size() >= c.sweep_at) {
    for (auto it = c.by_source.begin(); it != c.by_source.end();)
      it = it->second.current() ? std::next(it) : c.by_source.erase(it);
    c.sweep_at = std::max<size_t>(64, 2 * c.by_source.size());
  }
  const std::shared_ptr<Storage>& storage = x.impl()->storage;
  c.by_source.emplace(storage.get(),
                      StagedCopy{storage, storage->version(), x.offset(), x.shape(), nhwc, copy});
}
}  // namespace

Tensor to_bf16_reused(const Tensor& x, bool nhwc) {
  StagedCopies& c = t_staged;
  const std::shared_ptr<Storage>& storage = x.impl()->storage;
  auto [first, last] = c.by_source.equal_range(storage.get());
  for (auto it = first; it != last; ++it) {
    StagedCopy& e = it->second;
    // (a live entry keyed by this address is this storage: two live storages never share one)
    if (e.offset == x.offset() && e.nhwc == nhwc && e.shape == x.shape() && e.current()) {
      ++c.reused;
      return e.copy;
    }
  }
  Tensor copy = to_bf16(x, nhwc);
  keep(c, x, nhwc, copy);
  return copy;
}

void remember_bf16_copy(const Tensor& x, const Tensor& copy) {
  OKD_CHECK(x.dtype() == DType::Float32 && x.is_contiguous() && copy.dtype() == DType::UInt8 &&
                copy.numel() == 2 * x.numel() && copy.device() == x.device(),
            "remember_bf16_copy: ", copy.desc(), " is not a bfloat16 copy of ", x.desc());
  keep(t_staged, x, /*nhwc=*/false, copy);
}

void forget_bf16_copies() {
  t_staged.by_source.clear();
  t_staged.sweep_at = 64;
}
int64_t bf16_copies_held() { return static_cast<int64_t>(t_staged.by_source.size()); }
int64_t bf16_copies_reused() { return t_staged.reused; }

void round_bf16_(const Tensor& x) {
  const char* op = "round_bf16_";
  OKD_CHECK(x.dtype() == DType::Float32 && x.is_contiguous(), op,
            ": expected a contiguous float32 tensor, got ", x.desc());
  check_device(x, op);
  x.impl()->storage->bump_version();
  const int64_t n = x.numel();
  if (n == 0) return;
  round_bf16_kernel<<<grid_for(n), kThreads, 0, stream()>>>(x.device_data<float>(), n);
  OKD_CUDA_CHECK_LAUNCH(op);
}

}  // namespace okd::cuda::gpu
