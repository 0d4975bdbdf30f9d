// The CUDA backend's entry points as plain C++ (no CUDA headers): what the CPU op files call when
// they see a CUDA tensor, and the backend's controls. Defined in tensor/cuda/*.cpp and
// tensor/ops/*_cuda.cu when okd is built with CUDA, by tensor/cuda/cuda_ops_stub.cpp otherwise
// (where every call throws, though no CUDA tensor can exist in such a build). See docs/cuda.md.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensor/ops/conv.h"
#include "tensor/ops/norm.h"
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
// "NVIDIA H200 (sm_90, 139 GiB), cuBLAS 13.0, cuDNN 91900" or the unavailable reason.
std::string device_summary();

// ---- kernels (validation included: the same errors as the CPU ops) -----------------------------
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
};
enum class Binary : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class Compare : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
enum class Reduce : uint8_t { Sum, Mean, Var, Std, Amax, Amin };

Tensor unary(Unary op, const Tensor& a, double s0 = 0, double s1 = 0);
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
Tensor compare(Compare op, const Tensor& a, const Tensor& b);
Tensor compare_scalar(Compare op, const Tensor& a, double s);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// dst = dst + alpha * src (op Add) or dst * src (op Mul), src broadcast to dst.
void binary_(Binary op, const Tensor& dst, const Tensor& src, double alpha = 1.0);
void mul_scalar_(const Tensor& dst, double s);
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, double value);
Tensor relu_backward(const Tensor& dy, const Tensor& y);

Tensor reduce(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
              bool unbiased = true);
// Values and int64 indices of the max (is_max) or min along dim; the first occurrence (the first
// NaN) wins, as on the CPU. All four dtypes.
std::pair<Tensor, Tensor> max_min(bool is_max, const Tensor& a, int64_t dim, bool keepdim);
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim);
Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim);

Tensor matmul(const Tensor& a, const Tensor& b);

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype);
// Always sorted, in index_cpu.cpp's order (NaN as the largest, ties by lower index).
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest);

Tensor log_softmax_lastdim(const Tensor& x);
Tensor log_softmax_lastdim_backward(const Tensor& dy, const Tensor& log_softmax_out);
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double label_smoothing,
                             const Tensor& class_weights);
Tensor cross_entropy_backward(double g, const Tensor& logits, const Tensor& targets,
                              double label_smoothing, const Tensor& class_weights);

// cuDNN (conv_cuda.cu); without cuDNN in the build they throw "op X has no CUDA kernel yet".
Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const ops::Conv2dParams& p);
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const ops::Conv2dParams& p);
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const ops::Conv2dParams& p);
Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const ops::Conv2dParams& p, int64_t output_padding_h,
                                int64_t output_padding_w);

std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                        const Tensor& bias, double eps);
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps);
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd);

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride,
                                             int64_t pad);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad);
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t pad);
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& dy, const Shape& input_shape);

// The update loops of optim/sgd.cpp and optim/adam.cpp on the device (update_cuda.cu), for
// optim/ to call on CUDA parameters; state tensors contiguous, on the parameter's device.
struct SgdStep {
  double lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
  bool first = false;  // the momentum buffer is initialised with this step's gradient
};
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s);
struct AdamStep {
  double lr = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t step = 1;        // t of the bias corrections (updates including this one)
  bool decoupled = false;  // AdamW
  bool amsgrad = false;
};
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s);

}  // namespace okd::cuda
