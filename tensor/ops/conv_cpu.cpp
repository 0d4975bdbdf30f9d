// Convolution on the CPU: im2col + GEMM per sample and group, samples in parallel (the GEMM runs
// single-threaded inside; see runtime.cpp), 1x1 stride-1 unpadded convolutions skip im2col.
// The weight gradient is accumulated over fixed chunks of the batch whose partial sums are added
// in order, so it is bit-identical for any thread count.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/conv3x3_direct.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"
#include "tensor/parallel.h"

namespace okd::ops {

namespace {

constexpr int64_t kWeightGradChunks = 16;

bool is_pointwise(const Shape& w, const Conv2dParams& p) {
  return w[2] == 1 && w[3] == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
         p.pad_w == 0;
}

// The range [lo, hi) of output columns ow whose input column ow*s - p + j*d lies in [0, W).
inline void valid_columns(int64_t OW, int64_t W, int64_t s, int64_t off, int64_t& lo, int64_t& hi) {
  // w = ow * s + off must satisfy 0 <= w < W
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = W - off <= 0 ? 0 : std::min<int64_t>(OW, (W - off + s - 1) / s);
  if (hi < lo) hi = lo;
}

// col[(c, kh, kw), (oh, ow)] = x[c, oh*s - p + kh*d, ow*s - p + kw*d] (0 outside). The valid
// column range of each kernel tap is computed once, so the inner loop is a branch-free copy.
// The rows are short (32 floats on CIFAR), so the loops stay inline: GCC's loop distribution
// would otherwise turn each into a memcpy/memset call (10% of a ResNet step in call overhead).
template <class T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void im2col(
    const T* x, int64_t C, int64_t H, int64_t W, int64_t kH, int64_t kW, int64_t OH, int64_t OW,
    const Conv2dParams& p, T* col) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < kH; ++i)
      for (int64_t j = 0; j < kW; ++j) {
        T* row = col + ((c * kH + i) * kW + j) * OH * OW;
        const T* xc = x + c * H * W;
        const int64_t off = j * p.dil_w - p.pad_w;
        int64_t lo, hi;
        valid_columns(OW, W, p.stride_w, off, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t h = oh * p.stride_h - p.pad_h + i * p.dil_h;
          T* r = row + oh * OW;
          if (h < 0 || h >= H) {
            for (int64_t ow = 0; ow < OW; ++ow) r[ow] = T(0);
            continue;
          }
          const T* xr = xc + h * W;  // input column of ow is ow * stride + off
          for (int64_t ow = 0; ow < lo; ++ow) r[ow] = T(0);
          if (p.stride_w == 1) {
            const T* src = xr + off;
            for (int64_t ow = lo; ow < hi; ++ow) r[ow] = src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * p.stride_w + off];
          }
          for (int64_t ow = hi; ow < OW; ++ow) r[ow] = T(0);
        }
      }
}

// x[c, h, w] += col[(c, kh, kw), (oh, ow)]: the adjoint of im2col.
template <class T>
void col2im(const T* col, int64_t C, int64_t H, int64_t W, int64_t kH, int64_t kW, int64_t OH,
            int64_t OW, const Conv2dParams& p, T* x) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < kH; ++i)
      for (int64_t j = 0; j < kW; ++j) {
        const T* row = col + ((c * kH + i) * kW + j) * OH * OW;
        T* xc = x + c * H * W;
        const int64_t off = j * p.dil_w - p.pad_w;
        int64_t lo, hi;
        valid_columns(OW, W, p.stride_w, off, lo, hi);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t h = oh * p.stride_h - p.pad_h + i * p.dil_h;
          if (h < 0 || h >= H) continue;
          const T* r = row + oh * OW;
          T* xr = xc + h * W;
          if (p.stride_w == 1) {
            T* xo = xr + off + lo;
            const T* ro = r + lo;
            for (int64_t k = 0; k < hi - lo; ++k) xo[k] += ro[k];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) xr[ow * p.stride_w + off] += r[ow];
          }
        }
      }
}

void check_conv(const Tensor& input, const Tensor& weight, const Conv2dParams& p, const char* op) {
  OKD_CHECK(input.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ",
            shape_str(input.shape()));
  OKD_CHECK(weight.dim() == 4, op, ": expected a 4-D weight, got ", shape_str(weight.shape()));
  OKD_CHECK(input.dtype() == weight.dtype(), op, ": input is ", dtype_name(input.dtype()),
            " but weight is ", dtype_name(weight.dtype()));
  OKD_CHECK(is_floating(input.dtype()), op, ": expected float32 or float64, got ",
            dtype_name(input.dtype()));
  OKD_CHECK(input.device().is_cpu() && weight.device().is_cpu(), op,
            ": the CPU kernel got tensors on ", input.device().str(), " and ",
            weight.device().str());
  OKD_CHECK(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dil_h >= 1 && p.dil_w >= 1 &&
                p.pad_h >= 0 && p.pad_w >= 0,
            op, ": invalid stride/padding/dilation/groups");
}

// Precision::BFloat16 on a float32 CPU op: the float32 op on bfloat16-rounded operands, its
// result rounded to bfloat16 (conv.h). The products of two bfloat16 values are exact in float32,
// so this is the mixed-precision arithmetic up to the order of the float32 sums.
bool bf16_products(const Tensor& t, const Conv2dParams& p) {
  return p.precision == Precision::BFloat16 && t.dtype() == DType::Float32;
}
Conv2dParams as_float32(Conv2dParams p) {
  p.precision = Precision::Float32;
  return p;
}

}  // namespace

std::pair<int64_t, int64_t> conv2d_output_size(const Shape& in, const Shape& w,
                                               const Conv2dParams& p) {
  const int64_t OH = (in[2] + 2 * p.pad_h - p.dil_h * (w[2] - 1) - 1) / p.stride_h + 1;
  const int64_t OW = (in[3] + 2 * p.pad_w - p.dil_w * (w[3] - 1) - 1) / p.stride_w + 1;
  OKD_CHECK(OH > 0 && OW > 0, "conv2d: input ", shape_str(in), " is too small for kernel ",
            shape_str(w), " (output would be ", OH, "x", OW, ")");
  return {OH, OW};
}

Tensor conv2d_forward(const Tensor& input_, const Tensor& weight_, const Tensor& bias,
                      const Conv2dParams& p) {
  if (cuda::on_cuda(input_, weight_, bias)) return cuda::conv2d_forward(input_, weight_, bias, p);
  check_conv(input_, weight_, p, "conv2d");
  if (bf16_products(input_, p)) {
    Tensor out = round_bf16(
        conv2d_forward(round_bf16(input_), round_bf16(weight_), Tensor(), as_float32(p)));
    if (bias.defined()) {
      OKD_CHECK(bias.dim() == 1 && bias.size(0) == weight_.size(0), "conv2d: bias ",
                shape_str(bias.shape()), " does not match ", weight_.size(0), " output channels");
      add_(out, reshape(bias, {1, bias.size(0), 1, 1}));
    }
    return out;
  }
  const Shape& s = input_.shape();
  const Shape& ws = weight_.shape();
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3], O = ws[0], kH = ws[2], kW = ws[3],
                G = p.groups;
  OKD_CHECK(O % G == 0 && C % G == 0, "conv2d: channels (", C, " in, ", O,
            " out) are not divisible by groups ", G);
  OKD_CHECK(ws[1] * G == C, "conv2d: input has ", C, " channels but weight expects ", ws[1] * G,
            " (input ", shape_str(s), ", weight ", shape_str(ws), ", groups ", G, ")");
  if (bias.defined())
    OKD_CHECK(bias.dim() == 1 && bias.size(0) == O, "conv2d: bias ", shape_str(bias.shape()),
              " does not match ", O, " output channels");
  auto [OH, OW] = conv2d_output_size(s, ws, p);
  Tensor input = contiguous(input_), weight = contiguous(weight_);
  if (direct3x3::applies(input.dtype(), ws, p))
    return direct3x3::forward(input, weight, bias.defined() ? contiguous(bias) : Tensor());
  Tensor out = empty({N, O, OH, OW}, input.dtype());
  const int64_t Cg = C / G, Og = O / G, K = Cg * kH * kW, L = OH * OW;
  const bool pointwise = is_pointwise(ws, p);
  OKD_DISPATCH_FLOAT(input.dtype(), "conv2d", [&]<class T>() {
    const T* x = input.data<T>();
    const T* w = weight.data<T>();
    T* y = out.data<T>();
    Tensor bias_c = bias.defined() ? contiguous(bias) : Tensor();
    const T* b = bias_c.defined() ? bias_c.data<T>() : nullptr;
    parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      std::vector<T> col(pointwise ? 0 : static_cast<size_t>(K * L));
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t g = 0; g < G; ++g) {
          const T* xg = x + (n * C + g * Cg) * H * W;
          const T* colp = xg;
          if (!pointwise) {
            im2col(xg, Cg, H, W, kH, kW, OH, OW, p, col.data());
            colp = col.data();
          }
          T* yg = y + (n * O + g * Og) * L;
          gemm(false, false, Og, L, K, T(1), w + g * Og * K, K, colp, L, T(0), yg, L);
          if (b)
            for (int64_t o = 0; o < Og; ++o) {
              const T bv = b[g * Og + o];
              T* r = yg + o * L;
              for (int64_t l = 0; l < L; ++l) r[l] += bv;
            }
        }
      }
    });
  });
  return out;
}

namespace {
// dx of conv2d on the CPU, a new tensor.
Tensor backward_input_cpu(const Tensor& grad_out_, const Tensor& weight_, const Shape& s,
                          const Conv2dParams& p) {
  if (bf16_products(grad_out_, p))
    return round_bf16(
        backward_input_cpu(round_bf16(grad_out_), round_bf16(weight_), s, as_float32(p)));
  const Shape& ws = weight_.shape();
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3], O = ws[0], kH = ws[2], kW = ws[3],
                G = p.groups;
  const int64_t OH = grad_out_.size(2), OW = grad_out_.size(3);
  const int64_t Cg = C / G, Og = O / G, K = Cg * kH * kW, L = OH * OW;
  OKD_CHECK(grad_out_.size(1) == O && grad_out_.size(0) == N, "conv2d backward: grad_output ",
            shape_str(grad_out_.shape()), " does not match weight ", shape_str(ws), " and input ",
            shape_str(s));
  Tensor go = contiguous(grad_out_), weight = contiguous(weight_);
  if (direct3x3::applies(go.dtype(), ws, p)) return direct3x3::backward_input(go, weight, s);
  Tensor dx = zeros(s, go.dtype());
  const bool pointwise = is_pointwise(ws, p);
  OKD_DISPATCH_FLOAT(go.dtype(), "conv2d_backward_input", [&]<class T>() {
    const T* dy = go.data<T>();
    const T* w = weight.data<T>();
    T* dxp = dx.data<T>();
    parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      std::vector<T> col(static_cast<size_t>(K * L));
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G; ++g) {
          T* dxg = dxp + (n * C + g * Cg) * H * W;
          // dcol = W_g^T dY_g  [K, L]
          T* target = pointwise ? dxg : col.data();
          gemm(true, false, K, L, Og, T(1), w + g * Og * K, K, dy + (n * O + g * Og) * L, L, T(0),
               target, L);
          if (!pointwise) col2im(col.data(), Cg, H, W, kH, kW, OH, OW, p, dxg);
        }
    });
  });
  return dx;
}
}  // namespace

void check_conv_accumulate(const Tensor& acc, const Tensor& grad_out, const Shape& s,
                           const char* op) {
  if (!acc.defined()) return;
  OKD_CHECK(acc.shape() == s && acc.dtype() == grad_out.dtype() &&
                acc.device() == grad_out.device() && acc.is_contiguous(),
            op, ": the tensor to accumulate into (", acc.desc(),
            ") must be a contiguous tensor of the input's shape ", shape_str(s),
            " with grad_output's dtype and device (", grad_out.desc(), ")");
}

// dx + accumulate written into accumulate (conv.h): add_ bumps its version. Without accumulate dx.
Tensor conv2d_backward_input(const Tensor& grad_out_, const Tensor& weight_, const Shape& s,
                             const Conv2dParams& p, const Tensor& accumulate) {
  check_conv_accumulate(accumulate, grad_out_, s, "conv2d_backward_input");
  if (cuda::on_cuda(grad_out_, weight_, accumulate))
    return cuda::conv2d_backward_input(grad_out_, weight_, s, p, accumulate);
  if (!accumulate.defined()) return backward_input_cpu(grad_out_, weight_, s, p);
  add_(accumulate, backward_input_cpu(grad_out_, weight_, s, p));
  return accumulate;
}

Tensor conv2d_backward_weight(const Tensor& grad_out_, const Tensor& input_, const Shape& ws,
                              const Conv2dParams& p) {
  if (cuda::on_cuda(grad_out_, input_))
    return cuda::conv2d_backward_weight(grad_out_, input_, ws, p);
  if (bf16_products(grad_out_, p))
    return round_bf16(
        conv2d_backward_weight(round_bf16(grad_out_), round_bf16(input_), ws, as_float32(p)));
  const Shape& s = input_.shape();
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3], O = ws[0], kH = ws[2], kW = ws[3],
                G = p.groups;
  const int64_t OH = grad_out_.size(2), OW = grad_out_.size(3);
  const int64_t Cg = C / G, Og = O / G, K = Cg * kH * kW, L = OH * OW;
  Tensor go = contiguous(grad_out_), input = contiguous(input_);
  // Planes of 8 columns or fewer (ResNet stage 3): im2col + GEMM is faster than the direct
  // kernel's weight gradient, whose 16-lane accumulators need a horizontal sum per (o, c, tap) for
  // only 4 positions per plane (N 128, C 64, 8x8: 67 vs 48 GFLOP/s on one core, 124 vs 103 on two),
  // and on 8-wide planes the im2col is the vectorised one (w8: 67 -> 83 GFLOP/s on one core).
  if (direct3x3::applies(go.dtype(), ws, p) && W > 8)
    return direct3x3::backward_weight(go, input, ws);
  const int64_t chunks = std::min<int64_t>(kWeightGradChunks, std::max<int64_t>(N, 1));
  const int64_t per = (N + chunks - 1) / chunks;
  const int64_t wsize = O * K;
  Tensor dw = zeros(ws, go.dtype());
  const bool pointwise = is_pointwise(ws, p);
  const bool w8 = G == 1 && direct3x3::im2col_w8_applies(go.dtype(), ws, p, H, W);
  OKD_DISPATCH_FLOAT(go.dtype(), "conv2d_backward_weight", [&]<class T>() {
    std::vector<T> partial(static_cast<size_t>(chunks * wsize), T(0));
    const T* dy = go.data<T>();
    const T* x = input.data<T>();
    parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      std::vector<T> col(pointwise ? 0 : static_cast<size_t>(K * L));
      for (int64_t c = c0; c < c1; ++c) {
        T* acc = partial.data() + c * wsize;
        for (int64_t n = c * per; n < std::min(N, (c + 1) * per); ++n)
          for (int64_t g = 0; g < G; ++g) {
            const T* xg = x + (n * C + g * Cg) * H * W;
            const T* colp = xg;
            if (!pointwise) {
              if constexpr (std::is_same_v<T, float>) {
                if (w8) direct3x3::im2col_w8_planes(xg, Cg, H, col.data());
              }
              if (!w8) im2col(xg, Cg, H, W, kH, kW, OH, OW, p, col.data());
              colp = col.data();
            }
            // dW_g += dY_g col^T  [Og, K]
            gemm(false, true, Og, K, L, T(1), dy + (n * O + g * Og) * L, L, colp, L, T(1),
                 acc + g * Og * K, K);
          }
      }
    });
    T* out = dw.data<T>();
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t i = 0; i < wsize; ++i) out[i] += partial[c * wsize + i];
  });
  return dw;
}

Tensor conv2d_backward_bias(const Tensor& grad_out) { return sum(grad_out, {0, 2, 3}); }

namespace {
// dst[.., dh : dh + h, dw : dw + w] = src[.., sh : sh + h, sw : sw + w]: views and copy_, so on
// either device; nothing when the window is empty.
void copy_window(const Tensor& dst, int64_t dh, int64_t dw, const Tensor& src, int64_t sh,
                 int64_t sw, int64_t h, int64_t w) {
  if (h <= 0 || w <= 0) return;
  copy_(narrow(narrow(dst, 2, dh, h), 3, dw, w), narrow(narrow(src, 2, sh, h), 3, sw, w));
}

Conv2dParams unpadded(Conv2dParams p) {
  p.pad_h = p.pad_w = 0;
  return p;
}
}  // namespace

bool conv_transpose2d_crops_full(const Conv2dParams& p, int64_t oph, int64_t opw) {
  return oph >= p.stride_h || opw >= p.stride_w;
}

Tensor conv_transpose2d_uncrop(const Tensor& grad_out, const Shape& s, const Shape& ws,
                               const Conv2dParams& p) {
  const int64_t FH = (s[2] - 1) * p.stride_h + p.dil_h * (ws[2] - 1) + 1;
  const int64_t FW = (s[3] - 1) * p.stride_w + p.dil_w * (ws[3] - 1) + 1;
  Tensor full =
      zeros({grad_out.size(0), grad_out.size(1), FH, FW}, grad_out.dtype(), grad_out.device());
  copy_window(full, p.pad_h, p.pad_w, grad_out, 0, 0, std::min(grad_out.size(2), FH - p.pad_h),
              std::min(grad_out.size(3), FW - p.pad_w));
  return full;
}

Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const Conv2dParams& p, int64_t oph, int64_t opw) {
  if (conv_transpose2d_crops_full(p, oph, opw) && oph >= 0 && opw >= 0) {
    // out[o] = full[o + pad] for o + pad < F, else the bias alone (conv.h); both devices.
    OKD_CHECK(oph < std::max(p.stride_h, p.dil_h) && opw < std::max(p.stride_w, p.dil_w),
              "conv_transpose2d: output_padding must be smaller than stride or dilation");
    Tensor full = conv_transpose2d_forward(input, weight, bias, unpadded(p), 0, 0);
    const int64_t FH = full.size(2), FW = full.size(3);
    const int64_t OH = FH - 2 * p.pad_h + oph, OW = FW - 2 * p.pad_w + opw;
    OKD_CHECK(OH > 0 && OW > 0, "conv_transpose2d: output would be empty for input ",
              shape_str(input.shape()));
    Tensor out = empty({full.size(0), full.size(1), OH, OW}, full.dtype(), full.device());
    if (bias.defined())
      copy_(out, reshape(bias, {1, full.size(1), 1, 1}));
    else
      fill_(out, 0.0);
    copy_window(out, 0, 0, full, p.pad_h, p.pad_w, std::min(OH, FH - p.pad_h),
                std::min(OW, FW - p.pad_w));
    return out;
  }
  if (cuda::on_cuda(input, weight, bias))
    return cuda::conv_transpose2d_forward(input, weight, bias, p, oph, opw);
  check_conv(input, weight, p, "conv_transpose2d");
  const Shape& s = input.shape();
  const Shape& ws = weight.shape();
  OKD_CHECK(ws[0] == s[1], "conv_transpose2d: input has ", s[1], " channels but weight expects ",
            ws[0], " (input ", shape_str(s), ", weight ", shape_str(ws), ")");
  OKD_CHECK(oph >= 0 && opw >= 0 && oph < std::max(p.stride_h, p.dil_h) &&
                opw < std::max(p.stride_w, p.dil_w),
            "conv_transpose2d: output_padding must be smaller than stride or dilation");
  const int64_t Cout = ws[1] * p.groups;
  const int64_t OH = (s[2] - 1) * p.stride_h - 2 * p.pad_h + p.dil_h * (ws[2] - 1) + oph + 1;
  const int64_t OW = (s[3] - 1) * p.stride_w - 2 * p.pad_w + p.dil_w * (ws[3] - 1) + opw + 1;
  OKD_CHECK(OH > 0 && OW > 0, "conv_transpose2d: output would be empty for input ", shape_str(s));
  // The transposed convolution is the input-gradient of a conv2d whose input is the output here.
  Tensor out = conv2d_backward_input(input, weight, {s[0], Cout, OH, OW}, p);
  if (bias.defined()) {
    OKD_CHECK(bias.dim() == 1 && bias.size(0) == Cout, "conv_transpose2d: bias ",
              shape_str(bias.shape()), " does not match ", Cout, " output channels");
    Tensor bc = contiguous(bias);
    OKD_DISPATCH_FLOAT(out.dtype(), "conv_transpose2d", [&]<class T>() {
      T* o = out.data<T>();
      const T* b = bc.data<T>();
      for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < Cout; ++c)
          for (int64_t l = 0; l < OH * OW; ++l) o[(n * Cout + c) * OH * OW + l] += b[c];
    });
  }
  return out;
}

}  // namespace okd::ops
