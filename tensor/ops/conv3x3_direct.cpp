// Direct 3x3 stride-1 convolution with AVX-512 register tiles (see conv3x3_direct.h).
//
// Layout. An image plane is cut into 16-lane "positions": a row segment of 16 pixels when W > 8,
// or two whole rows (8 lanes each) when W <= 8 (CIFAR's last stage is 8x8: no lane is wasted).
// Each input plane is first copied into a zero-bordered layout in which the 16 input values of
// tap (i, j) of a position are one contiguous vector, so no load needs a bounds test or a shuffle:
// wide rows: the padded plane itself, (H+2) rows of W+2 (tap (i, j): i rows down, j right);
// narrow rows: for each padded row r and j = 0..2, the 16 floats padded[r][j..j+7] followed by
// padded[r+1][j..j+7] (tap (i, j) of rows 2p, 2p+1: block (2p + i, j)).
//
// Forward (and input gradient, which is the same convolution of dY with the weights transposed
// and flipped): a tile is 3 positions x 8 output channels = 24 accumulator registers; for every
// input channel and tap it loads 3 input vectors and broadcasts 8 weights:
//   y[o][pos] += w[o][c][i][j] * padded_x[c][pos shifted by (i, j)].
// Weight gradient: a tile is 3 output channels x 9 taps = 27 accumulators over all positions:
//   dW[o][c][i][j] += sum_pos dY[o][pos] * padded_x[c][pos shifted by (i, j)],
// the accumulators staying in registers over every sample of a fixed chunk of the batch; the
// chunks' partial sums are added in order.
#include "tensor/ops/conv3x3_direct.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
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
// On unless the environment says OKD_CONV_DIRECT=0 (A/B comparisons without a rebuild).
std::atomic<bool> g_direct_enabled{[] {
  const char* v = std::getenv("OKD_CONV_DIRECT");
  return v == nullptr || std::string(v) != "0";
}()};
}  // namespace
void set_conv_direct_enabled(bool on) { g_direct_enabled = on; }
bool conv_direct_enabled() { return g_direct_enabled; }

namespace direct3x3 {

#if OKD_DIRECT3X3_X86

namespace {

constexpr int64_t kWeightGradChunks = 16;  // as conv_cpu.cpp: thread-count independent sums
constexpr int64_t kIm2colW8MaxRows = 64;   // im2col_w8's stack buffer

bool cpu_has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return ok;
}

// One image plane and its cut into 16-lane positions, with each position's offsets and lane
// mask tabulated once (no division in the inner loops).
struct Plane {
  int64_t H, W;
  bool narrow;      // W <= 8: a position is rows 2p and 2p+1
  int64_t row;      // floats between padded rows: W + 2, or 3 * 16 (narrow)
  int64_t tap_col;  // floats between taps j and j + 1: 1, or 16 (narrow)
  int64_t padded;   // floats in one padded plane
  int64_t positions;
  std::vector<int64_t> padded_at;  // tap (0, 0) of position p in a padded plane
  std::vector<int64_t> plain_at;   // first pixel of position p in an unpadded plane
  // valid lanes; narrow: bits 0-7 the first row, bits 8-15 the second (0 past the last row)
  std::vector<uint16_t> mask;
};

Plane make_plane(int64_t H, int64_t W) {
  Plane g{};
  g.H = H;
  g.W = W;
  g.narrow = W <= 8;
  g.row = g.narrow ? 48 : W + 2;
  g.tap_col = g.narrow ? 16 : 1;
  g.padded = (H + 2) * g.row;
  const uint32_t row_bits = (1u << std::min<int64_t>(W, 8)) - 1u;
  if (g.narrow) {
    for (int64_t r = 0; r < H; r += 2) {
      g.padded_at.push_back(r * g.row);
      g.plain_at.push_back(r * W);
      g.mask.push_back(static_cast<uint16_t>(row_bits | (r + 1 < H ? row_bits << 8 : 0u)));
    }
  } else {
    for (int64_t r = 0; r < H; ++r)
      for (int64_t c = 0; c < W; c += 16) {
        g.padded_at.push_back(r * g.row + c);
        g.plain_at.push_back(r * W + c);
        g.mask.push_back(static_cast<uint16_t>((1u << std::min<int64_t>(16, W - c)) - 1u));
      }
  }
  g.positions = static_cast<int64_t>(g.padded_at.size());
  return g;
}

// Floats for C padded planes plus slack: a wide vector load may run up to 16 floats past the
// last column of the last plane (lanes whose results are never stored).
int64_t padded_floats(const Plane& g, int64_t C) { return C * g.padded + 32; }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma")

// dst[0, n) = src[0, n) for the short runs of pad_planes (rows of 8 to 32 floats): 16-float
// vectors and a masked tail, instead of a memcpy call per row.
inline void copy_floats(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
}

// out = the padded layout of x (C planes); borders and slack are zero.
void pad_planes(const float* x, int64_t C, const Plane& g, float* out) {
  const int64_t H = g.H, W = g.W;
  if (!g.narrow) {
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = x + c * H * W;
      float* oc = out + c * g.padded;
      std::memset(oc, 0, sizeof(float) * static_cast<size_t>(g.row + 1));  // top row, left pixel
      for (int64_t h = 0; h < H; ++h) {
        float* r = oc + (h + 1) * g.row;
        copy_floats(r + 1, xc + h * W, W);
        r[W + 1] = 0.0f;  // right border, and the left border of the next row:
        r[W + 2] = 0.0f;
      }
      std::memset(oc + (H + 1) * g.row, 0, sizeof(float) * static_cast<size_t>(g.row));
    }
    std::memset(out + C * g.padded, 0, sizeof(float) * 32);
    return;
  }
  // narrow: block (r, j) = padded[r][j..j+7] ++ padded[r+1][j..j+7], built from zero-bordered
  // rows of 16 floats (the padded row, then zeros, so that j + 7 never leaves the row)
  std::vector<float> rows(static_cast<size_t>((H + 3) * 16), 0.0f);
  for (int64_t c = 0; c < C; ++c) {
    const float* xc = x + c * H * W;
    for (int64_t h = 0; h < H; ++h)
      copy_floats(&rows[static_cast<size_t>((h + 1) * 16 + 1)], xc + h * W, W);
    float* oc = out + c * g.padded;
    const float* zr = rows.data();
    for (int64_t r = 0; r < H + 2; ++r)
      for (int64_t j = 0; j < 3; ++j) {  // two 8-float halves, one 16-float store
        const __m256 lo = _mm256_loadu_ps(zr + r * 16 + j);
        const __m256 hi = _mm256_loadu_ps(zr + (r + 1) * 16 + j);
        _mm512_storeu_ps(oc + r * 48 + j * 16,
                         _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
      }
  }
  std::memset(out + C * g.padded, 0, sizeof(float) * 32);
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

// Position p of an unpadded plane, invalid lanes zero.
template <bool kNarrow>
inline __m512 load_plain(const float* plane, const Plane& g, int64_t p) {
  const float* at = plane + g.plain_at[p];
  const uint32_t m = g.mask[p];
  if constexpr (kNarrow) {  // masked-off lanes are not read, so a missing second row is safe
    const __m256 lo = _mm256_maskz_loadu_ps(static_cast<__mmask8>(m), at);
    const __m256 hi = _mm256_maskz_loadu_ps(static_cast<__mmask8>(m >> 8), at + g.W);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
  } else {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), at);
  }
}

template <bool kNarrow>
inline void store_plain(float* plane, const Plane& g, int64_t p, __m512 v) {
  float* at = plane + g.plain_at[p];
  const uint32_t m = g.mask[p];
  if constexpr (kNarrow) {
    _mm256_mask_storeu_ps(at, static_cast<__mmask8>(m), _mm512_castps512_ps256(v));
    _mm256_mask_storeu_ps(at + g.W, static_cast<__mmask8>(m >> 8), upper_half(v));
  } else {
    _mm512_mask_storeu_ps(at, static_cast<__mmask16>(m), v);
  }
}

// y[o0 + k] at positions p0 .. p0 + kP - 1, k < 8, from Cin padded input planes and the weight
// block wblk[Cin][9][8] (zero rows for k >= Cout - o0).
template <bool kNarrow, int kP>
void conv_tile(const float* xp, const float* wblk, int64_t Cin, const Plane& g, int64_t p0,
               const float* bias, int64_t o0, int64_t Cout, float* y) {
  __m512 acc[kP][8];
#pragma GCC unroll 16
  for (int k = 0; k < 8; ++k) {
    const float b = bias != nullptr && o0 + k < Cout ? bias[o0 + k] : 0.0f;
#pragma GCC unroll 16
    for (int q = 0; q < kP; ++q) acc[q][k] = _mm512_set1_ps(b);
  }
  int64_t off[kP];
#pragma GCC unroll 16
  for (int q = 0; q < kP; ++q) off[q] = g.padded_at[p0 + q];
  const int64_t row = g.row, tap_col = g.tap_col;
  for (int64_t c = 0; c < Cin; ++c) {
    const float* xc = xp + c * g.padded;
    const float* wc = wblk + c * 72;
#pragma GCC unroll 16
    for (int i = 0; i < 3; ++i)
#pragma GCC unroll 16
      for (int j = 0; j < 3; ++j) {
        __m512 xv[kP];
#pragma GCC unroll 16
        for (int q = 0; q < kP; ++q) xv[q] = _mm512_loadu_ps(xc + off[q] + i * row + j * tap_col);
        const float* wt = wc + (i * 3 + j) * 8;
#pragma GCC unroll 16
        for (int k = 0; k < 8; ++k) {
          const __m512 w = _mm512_set1_ps(wt[k]);
#pragma GCC unroll 16
          for (int q = 0; q < kP; ++q) acc[q][k] = _mm512_fmadd_ps(w, xv[q], acc[q][k]);
        }
      }
  }
  const int64_t HW = g.H * g.W;
#pragma GCC unroll 16
  for (int k = 0; k < 8; ++k)
    if (o0 + k < Cout)
#pragma GCC unroll 16
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

// dw[o0 + k][c][tap] = sum over the samples of a chunk and their positions of
// dy[n][o0 + k] * shifted xp[n][c], k < kO. The accumulators stay in vector lanes over the whole
// chunk (with 4 positions per 8x8 plane, a horizontal sum per sample would cost more than the
// FMAs). Samples run outside a group of 8 input channels, so a sample's kO dY planes are read
// from L1 by all 8; each channel's 9 kO accumulators are kept in `saved` between samples (27
// loads and stores per plane of 27 x positions FMAs). Per channel, the sums run over samples and
// then positions in order, as before the grouping: the result does not depend on it.
template <bool kNarrow, int kO>
void wgrad_block(const float* dy, const float* xp, int64_t samples, int64_t O, int64_t C,
                 const Plane& g, int64_t o0, float* dw) {
  const int64_t HW = g.H * g.W, row = g.row, tap_col = g.tap_col;
  constexpr int64_t kGroup = 8;
  __m512 saved[kGroup][kO][9];
  for (int64_t c0 = 0; c0 < C; c0 += kGroup) {
    const int64_t cn = std::min(kGroup, C - c0);
    for (int64_t cc = 0; cc < cn; ++cc)
#pragma GCC unroll 16
      for (int k = 0; k < kO; ++k)
#pragma GCC unroll 16
        for (int t = 0; t < 9; ++t) saved[cc][k][t] = _mm512_setzero_ps();
    for (int64_t n = 0; n < samples; ++n) {
      const float* dyn = dy + (n * O + o0) * HW;
      for (int64_t cc = 0; cc < cn; ++cc) {
        __m512 acc[kO][9];
#pragma GCC unroll 16
        for (int k = 0; k < kO; ++k)
#pragma GCC unroll 16
          for (int t = 0; t < 9; ++t) acc[k][t] = saved[cc][k][t];
        const float* xc = xp + (n * C + c0 + cc) * g.padded;
        for (int64_t p = 0; p < g.positions; ++p) {
          __m512 d[kO];
#pragma GCC unroll 16
          for (int k = 0; k < kO; ++k) d[k] = load_plain<kNarrow>(dyn + k * HW, g, p);
          const float* at = xc + g.padded_at[p];
#pragma GCC unroll 16
          for (int i = 0; i < 3; ++i)
#pragma GCC unroll 16
            for (int j = 0; j < 3; ++j) {
              __m512 xv = _mm512_loadu_ps(at + i * row + j * tap_col);
              asm("" : "+v"(xv));
#pragma GCC unroll 16
              for (int k = 0; k < kO; ++k)
                acc[k][i * 3 + j] = _mm512_fmadd_ps(d[k], xv, acc[k][i * 3 + j]);
            }
        }
#pragma GCC unroll 16
        for (int k = 0; k < kO; ++k)
#pragma GCC unroll 16
          for (int t = 0; t < 9; ++t) saved[cc][k][t] = acc[k][t];
      }
    }
    for (int64_t cc = 0; cc < cn; ++cc)
#pragma GCC unroll 16
      for (int k = 0; k < kO; ++k)
#pragma GCC unroll 16
        for (int t = 0; t < 9; ++t)
          dw[((o0 + k) * C + c0 + cc) * 9 + t] = horizontal_sum(saved[cc][k][t]);
  }
}

// dw (O x C x 9) of `samples` consecutive samples: dy [samples][O][H][W], xp their padded planes.
template <bool kNarrow>
void wgrad_chunk(const float* dy, const float* xp, int64_t samples, int64_t O, int64_t C,
                 const Plane& g, float* dw) {
  int64_t o0 = 0;
  for (; o0 + 3 <= O; o0 += 3) wgrad_block<kNarrow, 3>(dy, xp, samples, O, C, g, o0, dw);
  if (O - o0 == 2) wgrad_block<kNarrow, 2>(dy, xp, samples, O, C, g, o0, dw);
  if (O - o0 == 1) wgrad_block<kNarrow, 1>(dy, xp, samples, O, C, g, o0, dw);
}

// im2col of a 3x3, stride-1, pad-1 convolution on planes 8 wide (H even), for the weight-gradient
// GEMM of CIFAR's last stage: col[(c*3 + i)*3 + j][oh*8 + ow] = x[c][oh + i - 1][ow + j - 1]
// (0 outside). Two output rows are one 16-lane vector: with the plane between a zero row above and
// below (buf), the 16 values of rows 2p and 2p+1 for tap (i, j) are the 16 floats starting at
// row 2p + i - 1, column j - 1 of buf, except the lanes whose column wraps into the neighbouring
// row (column -1 or 8), which the load's mask zeroes. One masked load and one store per vector,
// against 16 short row copies with bounds arithmetic in the generic im2col.
void im2col_w8(const float* x, int64_t C, int64_t H, float* col) {
  // buf: 1 slack float, row -1 (zeros), rows 0..H-1, row H (zeros), 1 slack float
  float buf[1 + 8 * (kIm2colW8MaxRows + 2) + 1];
  const int64_t rows = H + 2, L = H * 8;
  std::memset(buf, 0, sizeof(float) * static_cast<size_t>(rows * 8 + 2));
  static constexpr __mmask16 kColumnMask[3] = {0xFEFE, 0xFFFF, 0x7F7F};  // j = 0, 1, 2
  for (int64_t c = 0; c < C; ++c) {
    copy_floats(buf + 9, x + c * L, L);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        float* row = col + ((c * 3 + i) * 3 + j) * L;
        const float* src = buf + 1 + i * 8 + (j - 1);  // row 2p + i - 1 at p = 0, column j - 1
        for (int64_t p = 0; p < H / 2; ++p)
          _mm512_storeu_ps(row + 16 * p, _mm512_maskz_loadu_ps(kColumnMask[j], src + 16 * p));
      }
  }
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

bool im2col_w8_applies(DType dtype, const Shape& ws, const Conv2dParams& p, int64_t H, int64_t W) {
  return applies(dtype, ws, p) && W == 8 && H % 2 == 0 && H <= kIm2colW8MaxRows;
}

void im2col_w8_planes(const float* x, int64_t C, int64_t H, float* col) { im2col_w8(x, C, H, col); }

namespace {
// The weights of w [O][C][3][3] in conv_tile's layout [ceil(out/8)][in][tap][8] (zero past the
// last output channel). Forward: out = O, in = C, wr[o / 8][c][tap][o % 8] = w[o][c][tap].
// Input gradient: dx = conv3x3(dy, w') with w'[c][o][i][j] = w[o][c][2 - i][2 - j], so out = C,
// in = O, wr[c / 8][o][tap][c % 8] = w[o][c][8 - tap].
std::vector<float> pack_weights(const Tensor& weight, bool for_input_gradient) {
  const int64_t O = weight.size(0), C = weight.size(1);
  const int64_t out = for_input_gradient ? C : O, in = for_input_gradient ? O : C;
  const float* w = weight.data<float>();
  std::vector<float> wr(static_cast<size_t>((out + 7) / 8 * in * 72), 0.0f);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < 9; ++t) {
        const int64_t oc = for_input_gradient ? c : o, ic = for_input_gradient ? o : c;
        const int tap = for_input_gradient ? 8 - t : t;
        wr[static_cast<size_t>(((oc / 8) * in + ic) * 72 + tap * 8 + oc % 8)] =
            w[(o * C + c) * 9 + t];
      }
  return wr;
}
}  // namespace

Tensor forward(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  return convolve(input, pack_weights(weight, false), weight.size(0),
                  bias.defined() ? bias.data<float>() : nullptr);
}

Tensor backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& s) {
  OKD_CHECK(s[1] == weight.size(1) && grad_out.size(1) == weight.size(0),
            "conv2d backward: shapes do not match");
  return convolve(grad_out, pack_weights(weight, true), weight.size(1), nullptr);
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
    // the padded planes of every sample of a chunk, one after the other
    const int64_t per_sample = C * g.padded;
    std::vector<float> padded(static_cast<size_t>((per - 1) * per_sample + padded_floats(g, C)));
    float* xp = padded.data();
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t n0 = ch * per, n1 = std::min(N, (ch + 1) * per);
      if (n1 <= n0) continue;
      for (int64_t n = n0; n < n1; ++n)
        pad_planes(x + n * C * H * W, C, g, xp + (n - n0) * per_sample);
      float* acc = partial.data() + ch * wsize;
      const float* dyn = dy + n0 * O * H * W;
      if (g.narrow)
        wgrad_chunk<true>(dyn, xp, n1 - n0, O, C, g, acc);
      else
        wgrad_chunk<false>(dyn, xp, n1 - n0, O, C, g, acc);
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
bool im2col_w8_applies(DType, const Shape&, const Conv2dParams&, int64_t, int64_t) { return false; }
void im2col_w8_planes(const float*, int64_t, int64_t, float*) {
  OKD_FAIL("conv3x3 direct kernel: not built for this CPU");
}
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
