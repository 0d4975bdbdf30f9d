// Direct 3x3 stride-1 convolution with AVX-512 register tiles (see conv3x3_direct.h).
//
// Layout. Each input plane is copied into a zero-bordered plane of (H+2) x (W+2) floats, so the
// tap (i, j) of output pixel (h, w) is padded[h + i][w + j] and no load needs a bounds test. An
// image plane is cut into 16-lane "positions": a row segment of 16 pixels when W > 8, or two
// whole rows (8 lanes each) when W <= 8 (CIFAR's last stage is 8x8: no lane is wasted).
//
// Forward (and input gradient, which is the same convolution of dY with the weights transposed
// and flipped): a tile is 3 positions x 8 output channels = 24 accumulator registers; for every
// input channel and tap it loads 3 input vectors and broadcasts 8 weights:
//   y[o][pos] += w[o][c][i][j] * padded_x[c][pos shifted by (i, j)].
// Weight gradient: a tile is 3 output channels x 9 taps = 27 accumulators over all positions:
//   dW[o][c][i][j] += sum_pos dY[o][pos] * padded_x[c][pos shifted by (i, j)],
// summed over fixed chunks of the batch whose partial sums are added in order.
#include "tensor/ops/conv3x3_direct.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "tensor/parallel.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define OKD_DIRECT3X3_X86 1
// GCC 12's AVX-512 intrinsics build their results from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports at every use (GCC PR 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#else
#define OKD_DIRECT3X3_X86 0
#endif

namespace okd::ops {

namespace {
std::atomic<bool> g_direct_enabled{true};
}
void set_conv_direct_enabled(bool on) { g_direct_enabled = on; }
bool conv_direct_enabled() { return g_direct_enabled; }

namespace direct3x3 {

#if OKD_DIRECT3X3_X86

namespace {

constexpr int64_t kWeightGradChunks = 16;  // as conv_cpu.cpp: thread-count independent sums

bool cpu_has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return ok;
}

// One image plane and its cut into 16-lane positions.
struct Plane {
  int64_t H, W;
  int64_t Wp;      // padded row: W + 2
  int64_t padded;  // floats in a padded plane: (H + 2) * Wp
  bool narrow;     // W <= 8: a position is rows 2p and 2p+1
  int64_t segs;    // 16-pixel segments per row (W > 8)
  int64_t positions;
};

Plane make_plane(int64_t H, int64_t W) {
  Plane g{};
  g.H = H;
  g.W = W;
  g.Wp = W + 2;
  g.padded = (H + 2) * g.Wp;
  g.narrow = W <= 8;
  g.segs = (W + 15) / 16;
  g.positions = g.narrow ? (H + 1) / 2 : H * g.segs;
  return g;
}

// Floats for C padded planes plus slack: a full vector load may run past the last column of the
// last plane, and a narrow position of an odd-H plane reads one row past it.
int64_t padded_floats(const Plane& g, int64_t C) { return C * g.padded + 2 * g.Wp + 32; }

// out = x (C planes) with a one-pixel zero border; the slack is zero too (finite garbage only).
void pad_planes(const float* x, int64_t C, const Plane& g, float* out) {
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(padded_floats(g, C)));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t h = 0; h < g.H; ++h)
      std::memcpy(out + c * g.padded + (h + 1) * g.Wp + 1, x + (c * g.H + h) * g.W,
                  sizeof(float) * static_cast<size_t>(g.W));
}

// Offset of position p's first pixel in a padded plane (tap (0, 0)) and in an unpadded plane.
inline int64_t padded_offset(const Plane& g, int64_t p) {
  if (g.narrow) return 2 * p * g.Wp;
  return (p / g.segs) * g.Wp + (p % g.segs) * 16;
}
inline int64_t plain_offset(const Plane& g, int64_t p) {
  if (g.narrow) return 2 * p * g.W;
  return (p / g.segs) * g.W + (p % g.segs) * 16;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma")

inline __mmask16 wide_mask(const Plane& g, int64_t p) {
  const int64_t valid = std::min<int64_t>(16, g.W - (p % g.segs) * 16);
  return static_cast<__mmask16>((1u << valid) - 1u);
}
// Upper 8 lanes (a lane shuffle: GCC 12 warns about the undefined source inside the
// extract/reduce intrinsics).
inline __m256 upper_half(__m512 v) {
  return _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline float horizontal_sum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), upper_half(v));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
inline __mmask8 narrow_mask(const Plane& g) { return static_cast<__mmask8>((1u << g.W) - 1u); }

// 16 lanes of a padded plane at `at` (the position's tap-shifted first pixel).
template <bool kNarrow>
inline __m512 load_padded(const float* at, int64_t Wp) {
  if constexpr (kNarrow) {
    const __m256 lo = _mm256_loadu_ps(at), hi = _mm256_loadu_ps(at + Wp);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  } else {
    return _mm512_loadu_ps(at);
  }
}

// Position p of an unpadded plane, invalid lanes zero.
template <bool kNarrow>
inline __m512 load_plain(const float* plane, const Plane& g, int64_t p) {
  const float* at = plane + plain_offset(g, p);
  if constexpr (kNarrow) {
    const __mmask8 m = narrow_mask(g);
    const __m256 lo = _mm256_maskz_loadu_ps(m, at);
    const __m256 hi = 2 * p + 1 < g.H ? _mm256_maskz_loadu_ps(m, at + g.W) : _mm256_setzero_ps();
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  } else {
    return _mm512_maskz_loadu_ps(wide_mask(g, p), at);
  }
}

template <bool kNarrow>
inline void store_plain(float* plane, const Plane& g, int64_t p, __m512 v) {
  float* at = plane + plain_offset(g, p);
  if constexpr (kNarrow) {
    const __mmask8 m = narrow_mask(g);
    _mm256_mask_storeu_ps(at, m, _mm512_castps512_ps256(v));
    if (2 * p + 1 < g.H) _mm256_mask_storeu_ps(at + g.W, m, upper_half(v));
  } else {
    _mm512_mask_storeu_ps(at, wide_mask(g, p), v);
  }
}

// y[o0 + k] at positions p0 .. p0 + kP - 1, k < 8, from Cin padded input planes and the weight
// block wblk[Cin][9][8] (zero rows for k >= Cout - o0).
template <bool kNarrow, int kP>
void conv_tile(const float* xp, const float* wblk, int64_t Cin, const Plane& g, int64_t p0,
               const float* bias, int64_t o0, int64_t Cout, float* y) {
  __m512 acc[kP][8];
  for (int k = 0; k < 8; ++k) {
    const float b = bias != nullptr && o0 + k < Cout ? bias[o0 + k] : 0.0f;
    for (int q = 0; q < kP; ++q) acc[q][k] = _mm512_set1_ps(b);
  }
  int64_t off[kP];
  for (int q = 0; q < kP; ++q) off[q] = padded_offset(g, p0 + q);
  const int64_t Wp = g.Wp;
  for (int64_t c = 0; c < Cin; ++c) {
    const float* xc = xp + c * g.padded;
    const float* wc = wblk + c * 72;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        __m512 xv[kP];
        for (int q = 0; q < kP; ++q) xv[q] = load_padded<kNarrow>(xc + off[q] + i * Wp + j, Wp);
        const float* wt = wc + (i * 3 + j) * 8;
        for (int k = 0; k < 8; ++k) {
          const __m512 w = _mm512_set1_ps(wt[k]);
          for (int q = 0; q < kP; ++q) acc[q][k] = _mm512_fmadd_ps(w, xv[q], acc[q][k]);
        }
      }
  }
  const int64_t HW = g.H * g.W;
  for (int k = 0; k < 8 && o0 + k < Cout; ++k)
    for (int q = 0; q < kP; ++q) store_plain<kNarrow>(y + (o0 + k) * HW, g, p0 + q, acc[q][k]);
}

// All Cout planes of one sample: y = conv(xp, w) (+ bias), wr = [ceil(Cout/8)][Cin][9][8].
template <bool kNarrow>
void conv_sample(const float* xp, const float* wr, int64_t Cin, int64_t Cout, const Plane& g,
                 const float* bias, float* y) {
  for (int64_t o0 = 0; o0 < Cout; o0 += 8) {
    const float* wblk = wr + (o0 / 8) * Cin * 72;
    int64_t p = 0;
    for (; p + 3 <= g.positions; p += 3)
      conv_tile<kNarrow, 3>(xp, wblk, Cin, g, p, bias, o0, Cout, y);
    if (g.positions - p == 2)
      conv_tile<kNarrow, 2>(xp, wblk, Cin, g, p, bias, o0, Cout, y);
    else if (g.positions - p == 1)
      conv_tile<kNarrow, 1>(xp, wblk, Cin, g, p, bias, o0, Cout, y);
  }
}

// dw[o0 + k][c][tap] += sum over positions of dy[o0 + k] * shifted xp[c], k < kO.
template <bool kNarrow, int kO>
void wgrad_block(const float* dy, const float* xp, const Plane& g, int64_t o0, int64_t C,
                 float* dw) {
  const int64_t HW = g.H * g.W, Wp = g.Wp;
  for (int64_t c = 0; c < C; ++c) {
    const float* xc = xp + c * g.padded;
    __m512 acc[kO][9];
    for (int k = 0; k < kO; ++k)
      for (int t = 0; t < 9; ++t) acc[k][t] = _mm512_setzero_ps();
    for (int64_t p = 0; p < g.positions; ++p) {
      __m512 d[kO];
      for (int k = 0; k < kO; ++k) d[k] = load_plain<kNarrow>(dy + (o0 + k) * HW, g, p);
      const float* at = xc + padded_offset(g, p);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          const __m512 xv = load_padded<kNarrow>(at + i * Wp + j, Wp);
          for (int k = 0; k < kO; ++k)
            acc[k][i * 3 + j] = _mm512_fmadd_ps(d[k], xv, acc[k][i * 3 + j]);
        }
    }
    for (int k = 0; k < kO; ++k)
      for (int t = 0; t < 9; ++t) dw[((o0 + k) * C + c) * 9 + t] += horizontal_sum(acc[k][t]);
  }
}

template <bool kNarrow>
void wgrad_sample(const float* dy, const float* xp, int64_t O, int64_t C, const Plane& g,
                  float* dw) {
  int64_t o0 = 0;
  for (; o0 + 3 <= O; o0 += 3) wgrad_block<kNarrow, 3>(dy, xp, g, o0, C, dw);
  if (O - o0 == 2)
    wgrad_block<kNarrow, 2>(dy, xp, g, o0, C, dw);
  else if (O - o0 == 1)
    wgrad_block<kNarrow, 1>(dy, xp, g, o0, C, dw);
}

#pragma GCC pop_options

// out[N, Cout, H, W] = conv3x3(in[N, Cin, H, W]) with wr prepared as [ceil(Cout/8)][Cin][9][8].
Tensor convolve(const Tensor& in, const std::vector<float>& wr, int64_t Cout, const float* bias) {
  const int64_t N = in.size(0), Cin = in.size(1), H = in.size(2), W = in.size(3);
  const Plane g = make_plane(H, W);
  Tensor out = empty({N, Cout, H, W}, DType::Float32);
  const float* x = in.data<float>();
  float* y = out.data<float>();
  parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> xp(static_cast<size_t>(padded_floats(g, Cin)));
    for (int64_t n = n0; n < n1; ++n) {
      pad_planes(x + n * Cin * H * W, Cin, g, xp.data());
      float* yn = y + n * Cout * H * W;
      if (g.narrow)
        conv_sample<true>(xp.data(), wr.data(), Cin, Cout, g, bias, yn);
      else
        conv_sample<false>(xp.data(), wr.data(), Cin, Cout, g, bias, yn);
    }
  });
  return out;
}

}  // namespace

bool applies(DType dtype, const Shape& ws, const Conv2dParams& p) {
  return dtype == DType::Float32 && ws.size() == 4 && ws[2] == 3 && ws[3] == 3 && p.stride_h == 1 &&
         p.stride_w == 1 && p.pad_h == 1 && p.pad_w == 1 && p.dil_h == 1 && p.dil_w == 1 &&
         p.groups == 1 && conv_direct_enabled() && cpu_has_avx512();
}

Tensor forward(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const int64_t O = weight.size(0), C = weight.size(1);
  const float* w = weight.data<float>();
  // wr[o / 8][c][tap][o % 8] = w[o][c][tap]
  std::vector<float> wr(static_cast<size_t>((O + 7) / 8 * C * 72), 0.0f);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t)
        wr[static_cast<size_t>(((o / 8) * C + c) * 72 + t * 8 + o % 8)] = w[(o * C + c) * 9 + t];
  return convolve(input, wr, O, bias.defined() ? bias.data<float>() : nullptr);
}

Tensor backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& s) {
  const int64_t O = weight.size(0), C = weight.size(1);
  OKD_CHECK(s[1] == C && grad_out.size(1) == O, "conv2d backward: shapes do not match");
  const float* w = weight.data<float>();
  // dx = conv3x3(dy, w') with w'[c][o][i][j] = w[o][c][2 - i][2 - j]:
  // wr[c / 8][o][tap][c % 8] = w[o][c][8 - tap]
  std::vector<float> wr(static_cast<size_t>((C + 7) / 8 * O * 72), 0.0f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t o = 0; o < O; ++o)
      for (int t = 0; t < 9; ++t)
        wr[static_cast<size_t>(((c / 8) * O + o) * 72 + t * 8 + c % 8)] =
            w[(o * C + c) * 9 + (8 - t)];
  return convolve(grad_out, wr, C, nullptr);
}

Tensor backward_weight(const Tensor& grad_out, const Tensor& input, const Shape& ws) {
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t O = ws[0];
  const Plane g = make_plane(H, W);
  const int64_t chunks = std::min<int64_t>(kWeightGradChunks, std::max<int64_t>(N, 1));
  const int64_t per = (N + chunks - 1) / chunks;
  const int64_t wsize = O * C * 9;
  std::vector<float> partial(static_cast<size_t>(chunks * wsize), 0.0f);
  const float* x = input.data<float>();
  const float* dy = grad_out.data<float>();
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> xp(static_cast<size_t>(padded_floats(g, C)));
    for (int64_t ch = c0; ch < c1; ++ch) {
      float* acc = partial.data() + ch * wsize;
      for (int64_t n = ch * per; n < std::min(N, (ch + 1) * per); ++n) {
        pad_planes(x + n * C * H * W, C, g, xp.data());
        const float* dyn = dy + n * O * H * W;
        if (g.narrow)
          wgrad_sample<true>(dyn, xp.data(), O, C, g, acc);
        else
          wgrad_sample<false>(dyn, xp.data(), O, C, g, acc);
      }
    }
  });
  Tensor dw = zeros(ws, DType::Float32);
  float* out = dw.data<float>();
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int64_t i = 0; i < wsize; ++i) out[i] += partial[static_cast<size_t>(ch * wsize + i)];
  return dw;
}

#else  // not x86-64 GCC/Clang: never applies

bool applies(DType, const Shape&, const Conv2dParams&) { return false; }
Tensor forward(const Tensor&, const Tensor&, const Tensor&) {
  OKD_FAIL("conv3x3 direct kernel: not built for this CPU");
}
Tensor backward_input(const Tensor&, const Tensor&, const Shape&) {
  OKD_FAIL("conv3x3 direct kernel: not built for this CPU");
}
Tensor backward_weight(const Tensor&, const Tensor&, const Shape&) {
  OKD_FAIL("conv3x3 direct kernel: not built for this CPU");
}

#endif

}  // namespace direct3x3
}  // namespace okd::ops
