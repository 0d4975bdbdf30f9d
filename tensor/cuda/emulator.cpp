// cuda:0 emulated on the CPU (cuda_ops.h, "emulation"): host memory labelled cuda:0, and every
// kernel entry point as the CPU op run on CPU-labelled aliases of its operands. The aliases share
// the memory, so results and in-place writes are the CPU kernels' bit for bit. The CUDA
// backend's rules are kept: every operand on cuda:0 (no mixing with CPU tensors), and the dtypes
// its kernels lack are refused with its message, so what passes here is what the GPU accepts; so
// are the host synchronisations its kernels make (note_host_sync), for SyncFreeScope.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tensor/cuda/backends.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/loss.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/reduce.h"
#include "tensor/random.h"
#include "tensor/runtime.h"

namespace okd::cuda {

namespace {

std::atomic<bool> g_emulating{false};

// Host memory standing in for device memory. cudaMalloc'd memory starts as garbage; filling a
// new block with 0xff bytes (NaN in float32 and float64) makes a read before a write visible.
struct EmulatedAllocator final : Allocator {
  void* allocate(size_t nbytes) override {
    constexpr size_t kAlign = 64;
    const size_t rounded = nbytes == 0 ? kAlign : (nbytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded);
    if (!p) OKD_FAIL("emulated cuda:0: out of memory allocating ", nbytes, " bytes");
    std::memset(p, 0xff, rounded);
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};

// ops::to's device copy between the CPU and the emulated device: both are host memory.
void emulated_copy(const Tensor& dst, const Tensor& src) {
  OKD_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() &&
                src.is_contiguous(),
            "device copy: expected contiguous tensors of one shape and dtype, got ", src.desc(),
            " -> ", dst.desc());
  if (dst.device().is_cpu()) note_host_sync("a device-to-host copy");
  if (src.device().is_cpu()) note_host_sync("a host-to-device copy");
  dst.impl()->storage->bump_version();
  if (src.nbytes() > 0) std::memcpy(dst.device_raw_data(), src.device_raw_data(), src.nbytes());
}

bool enable_from_environment() noexcept {
  const char* v = std::getenv("OKD_CUDA_EMULATE");
  if (v == nullptr || std::string(v) != "1") return false;
  try {
    enable_emulation();
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "okd: OKD_CUDA_EMULATE=1 ignored: %s\n", e.what());
    return false;
  }
}
const bool g_enabled_from_environment = enable_from_environment();

}  // namespace

bool emulating() { return g_emulating.load(std::memory_order_relaxed); }

void enable_emulation() {
  if (emulating()) return;
  OKD_CHECK(cuda_device_count() == 0,
            "enable_emulation: this machine has a CUDA GPU; emulation is for machines without one");
  static EmulatedAllocator allocator;
  set_allocator(DeviceType::CUDA, &allocator);
  ops::set_device_copy(&emulated_copy);
  g_emulating = true;
}

namespace emu {

namespace {

Tensor alias(const Tensor& t, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(t.impl_ptr()->storage, device);
  impl->shape = t.shape();
  impl->strides = t.strides();
  impl->offset = t.offset();
  impl->dtype = t.dtype();
  return Tensor(impl);
}

// The CPU-labelled alias of a cuda:0 operand (an undefined tensor, e.g. an absent bias, stays so).
Tensor host(const Tensor& t, const char* op) {
  if (!t.defined()) return t;
  OKD_CHECK(t.device().is_cuda() && t.device().index == 0, op,
            ": expected every tensor on cuda:0 (the CUDA backend does not mix devices), got ",
            t.desc());
  return alias(t, kCPU);
}
// The cuda:0-labelled alias of a CPU result.
Tensor dev(const Tensor& t) { return t.defined() ? alias(t, Device(DeviceType::CUDA, 0)) : t; }
std::pair<Tensor, Tensor> dev(const std::pair<Tensor, Tensor>& p) {
  return {dev(p.first), dev(p.second)};
}

// The CUDA kernels of floating-point math take float32 and float64 only.
void float_only(const Tensor& t, const char* op) {
  if (t.defined() && !is_floating(t.dtype()))
    OKD_FAIL("op ", op, " has no CUDA kernel for ", dtype_name(t.dtype()), " yet");
}
Tensor host_float(const Tensor& t, const char* op) {
  float_only(t, op);
  return host(t, op);
}

// In-place ops write through the alias; the tensor's own version must move as the GPU's would.
void bump(const Tensor& t) { t.impl()->storage->bump_version(); }

}  // namespace

Tensor unary(Unary op, const Tensor& a_, double s0, double s1) {
  static const char* names[] = {"neg",     "exp",  "log", "sqrt",  "rsqrt", "abs", "sign", "relu",
                                "sigmoid", "tanh", "pow", "clamp", "add",   "mul", "rsub", "rdiv"};
  const char* name = names[static_cast<int>(op)];
  const Tensor a = host_float(a_, name);
  switch (op) {
    case Unary::Neg:
      return dev(ops::neg(a));
    case Unary::Exp:
      return dev(ops::exp(a));
    case Unary::Log:
      return dev(ops::log(a));
    case Unary::Sqrt:
      return dev(ops::sqrt(a));
    case Unary::Rsqrt:
      return dev(ops::rsqrt(a));
    case Unary::Abs:
      return dev(ops::abs(a));
    case Unary::Sign:
      return dev(ops::sign(a));
    case Unary::Relu:
      return dev(ops::relu(a));
    case Unary::Sigmoid:
      return dev(ops::sigmoid(a));
    case Unary::Tanh:
      return dev(ops::tanh(a));
    case Unary::Pow:
      return dev(ops::pow(a, s0));
    case Unary::Clamp:
      return dev(ops::clamp(a, s0, s1));
    case Unary::AddScalar:
      return dev(ops::add(a, s0));
    case Unary::MulScalar:
      return dev(ops::mul(a, s0));
    case Unary::RsubScalar:
      return dev(ops::rsub(s0, a));
    case Unary::RdivScalar:
      return dev(ops::rdiv(s0, a));
  }
  OKD_FAIL("emulated unary: unknown op");
}

Tensor binary(Binary op, const Tensor& a_, const Tensor& b_) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  const char* name = names[static_cast<int>(op)];
  const Tensor a = host_float(a_, name), b = host_float(b_, name);
  switch (op) {
    case Binary::Add:
      return dev(ops::add(a, b));
    case Binary::Sub:
      return dev(ops::sub(a, b));
    case Binary::Mul:
      return dev(ops::mul(a, b));
    case Binary::Div:
      return dev(ops::div(a, b));
    case Binary::Pow:
      return dev(ops::pow(a, b));
    case Binary::Maximum:
      return dev(ops::maximum(a, b));
    case Binary::Minimum:
      return dev(ops::minimum(a, b));
  }
  OKD_FAIL("emulated binary: unknown op");
}

Tensor compare(Compare op, const Tensor& a_, const Tensor& b_) {
  const Tensor a = host(a_, "compare"), b = host(b_, "compare");
  switch (op) {
    case Compare::Eq:
      return dev(ops::eq(a, b));
    case Compare::Ne:
      return dev(ops::ne(a, b));
    case Compare::Lt:
      return dev(ops::lt(a, b));
    case Compare::Le:
      return dev(ops::le(a, b));
    case Compare::Gt:
      return dev(ops::gt(a, b));
    case Compare::Ge:
      return dev(ops::ge(a, b));
  }
  OKD_FAIL("emulated compare: unknown op");
}

Tensor compare_scalar(Compare op, const Tensor& a_, double s) {
  const Tensor a = host(a_, "compare");
  switch (op) {
    case Compare::Eq:
      return dev(ops::eq(a, s));
    case Compare::Lt:
      return dev(ops::lt(a, s));
    case Compare::Le:
      return dev(ops::le(a, s));
    case Compare::Gt:
      return dev(ops::gt(a, s));
    case Compare::Ge:
      return dev(ops::ge(a, s));
    case Compare::Ne:
      break;  // no CPU op compares with a scalar for inequality
  }
  OKD_FAIL("emulated compare_scalar: unsupported op");
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return dev(ops::where(host(cond, "where"), host(a, "where"), host(b, "where")));
}

void binary_(Binary op, const Tensor& dst, const Tensor& src, double alpha) {
  const char* name = op == Binary::Mul ? "mul_" : "add_";
  const Tensor d = host_float(dst, name), s = host_float(src, name);
  if (op == Binary::Mul)
    ops::mul_(d, s);
  else if (alpha == 1.0)
    ops::add_(d, s);
  else
    ops::add_(d, s, alpha);
  bump(dst);
}

void mul_scalar_(const Tensor& dst, double s) {
  ops::mul_(host_float(dst, "mul_"), s);
  bump(dst);
}

// Like the GPU's copy_, either side may be on the CPU (the source is moved over first there).
void copy_(const Tensor& dst, const Tensor& src) {
  const Tensor d = dst.device().is_cuda() ? host(dst, "copy_") : dst;
  const Tensor s = src.device().is_cuda() ? host(src, "copy_") : src;
  ops::copy_(d, s);
  bump(dst);
}

void fill_(const Tensor& dst, double value) {
  ops::fill_(host(dst, "fill_"), value);
  bump(dst);
}

Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  return dev(ops::relu_backward(host_float(dy, "relu_backward"), host_float(y, "relu_backward")));
}

Tensor reduce(Reduce op, const Tensor& a_, const std::vector<int64_t>& dims, bool keepdim,
              bool unbiased) {
  static const char* names[] = {"sum", "mean", "var", "std", "amax", "amin"};
  const char* name = names[static_cast<int>(op)];
  // Integer tensors: sum, amax and amin only (as the GPU's kernels).
  if (op == Reduce::Mean || op == Reduce::Var || op == Reduce::Std) float_only(a_, name);
  const Tensor a = host(a_, name);
  switch (op) {
    case Reduce::Sum:
      return dev(ops::sum(a, dims, keepdim));
    case Reduce::Mean:
      return dev(ops::mean(a, dims, keepdim));
    case Reduce::Var:
      return dev(ops::var(a, dims, unbiased, keepdim));
    case Reduce::Std:
      return dev(ops::std(a, dims, unbiased, keepdim));
    case Reduce::Amax:
      return dev(ops::amax(a, dims, keepdim));
    case Reduce::Amin:
      return dev(ops::amin(a, dims, keepdim));
  }
  OKD_FAIL("emulated reduce: unknown op");
}

std::pair<Tensor, Tensor> max_min(bool is_max, const Tensor& a_, int64_t dim, bool keepdim) {
  const Tensor a = host(a_, is_max ? "max" : "min");
  return dev(is_max ? ops::max(a, dim, keepdim) : ops::min(a, dim, keepdim));
}

Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return dev(ops::logsumexp(host_float(a, "logsumexp"), dims, keepdim));
}

Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  return dev(ops::norm(host_float(a, "norm"), p, dims, keepdim));
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  return dev(ops::matmul(host_float(a, "matmul"), host_float(b, "matmul")));
}

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  note_host_sync("index_select's index check");
  return dev(ops::index_select(host(t, "index_select"), dim, host(index, "index_select")));
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  note_host_sync("gather's index check");
  return dev(ops::gather(host(t, "gather"), dim, host(index, "gather")));
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  note_host_sync("scatter_add's index check");
  return dev(ops::scatter_add(host(t, "scatter_add"), dim, host(index, "scatter_add"),
                              host(src, "scatter_add")));
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  note_host_sync("one_hot's label check");
  return dev(ops::one_hot(host(labels, "one_hot"), num_classes, dtype));
}

std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest) {
  return dev(ops::topk(host(t, "topk"), k, dim, largest));
}

Tensor log_softmax_lastdim(const Tensor& x) {
  return dev(ops::log_softmax_lastdim(host_float(x, "log_softmax")));
}

Tensor log_softmax_lastdim_backward(const Tensor& dy, const Tensor& y) {
  return dev(ops::log_softmax_lastdim_backward(host_float(dy, "log_softmax_backward"),
                                               host_float(y, "log_softmax_backward")));
}

Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double eps,
                             const Tensor& weights) {
  note_host_sync("cross_entropy's target check");
  return dev(ops::cross_entropy_forward(host_float(logits, "cross_entropy"),
                                        host(targets, "cross_entropy"), eps,
                                        host_float(weights, "cross_entropy")));
}

Tensor cross_entropy_backward(double g, const Tensor& logits, const Tensor& targets, double eps,
                              const Tensor& weights) {
  note_host_sync("cross_entropy's target check");
  return dev(ops::cross_entropy_backward(g, host_float(logits, "cross_entropy_backward"),
                                         host(targets, "cross_entropy_backward"), eps,
                                         host_float(weights, "cross_entropy_backward")));
}

Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const ops::Conv2dParams& p) {
  return dev(ops::conv2d_forward(host_float(input, "conv2d"), host_float(weight, "conv2d"),
                                 host_float(bias, "conv2d"), p));
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const ops::Conv2dParams& p) {
  return dev(ops::conv2d_backward_input(host_float(grad_out, "conv2d_backward_input"),
                                        host_float(weight, "conv2d_backward_input"), input_shape,
                                        p));
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const ops::Conv2dParams& p) {
  return dev(ops::conv2d_backward_weight(host_float(grad_out, "conv2d_backward_weight"),
                                         host_float(input, "conv2d_backward_weight"), weight_shape,
                                         p));
}

Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const ops::Conv2dParams& p, int64_t output_padding_h,
                                int64_t output_padding_w) {
  return dev(ops::conv_transpose2d_forward(
      host_float(input, "conv_transpose2d"), host_float(weight, "conv_transpose2d"),
      host_float(bias, "conv_transpose2d"), p, output_padding_h, output_padding_w));
}

std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                        const Tensor& bias, double eps) {
  auto [y, s] = ops::batch_norm_train(host_float(x, "batch_norm"), host_float(weight, "batch_norm"),
                                      host_float(bias, "batch_norm"), eps);
  return {dev(y), ops::BatchNormStats{dev(s.mean), dev(s.invstd), dev(s.var_unbiased)}};
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  return dev(ops::batch_norm_eval(host_float(x, "batch_norm"), host_float(mean, "batch_norm"),
                                  host_float(var, "batch_norm"), host_float(weight, "batch_norm"),
                                  host_float(bias, "batch_norm"), eps));
}

std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd) {
  const char* op = "batch_norm_backward";
  auto [dx, dw, db] =
      ops::batch_norm_backward(host_float(dy, op), host_float(x, op), host_float(weight, op),
                               host_float(mean, op), host_float(invstd, op));
  return {dev(dx), dev(dw), dev(db)};
}

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride,
                                             int64_t pad) {
  return dev(ops::max_pool2d_forward(host_float(x, "max_pool2d"), kernel, stride, pad));
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& input_shape) {
  return dev(ops::max_pool2d_backward(host_float(dy, "max_pool2d_backward"),
                                      host(indices, "max_pool2d_backward"), input_shape));
}

Tensor avg_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  return dev(ops::avg_pool2d_forward(host_float(x, "avg_pool2d"), kernel, stride, pad));
}

Tensor avg_pool2d_backward(const Tensor& dy, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t pad) {
  return dev(ops::avg_pool2d_backward(host_float(dy, "avg_pool2d_backward"), input_shape, kernel,
                                      stride, pad));
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
  return dev(ops::adaptive_avg_pool2d_forward(host_float(x, "adaptive_avg_pool2d"), out_h, out_w));
}

Tensor adaptive_avg_pool2d_backward(const Tensor& dy, const Shape& input_shape) {
  return dev(ops::adaptive_avg_pool2d_backward(host_float(dy, "adaptive_avg_pool2d_backward"),
                                               input_shape));
}

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s) {
  const char* op = "SGD::step";
  ops::sgd_step_(host_float(param, op), host_float(grad, op), host_float(momentum_buffer, op), s);
  bump(param);
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  const char* op = "Adam::step";
  ops::adam_step_(host_float(param, op), host_float(grad, op), host_float(exp_avg, op),
                  host_float(exp_avg_sq, op), host_float(max_exp_avg_sq, op), s);
  bump(param);
}

Tensor random_uniform(const Shape& shape, DType dtype, double lo, double hi, uint64_t first,
                      uint64_t key) {
  return dev(detail::uniform_from(shape, dtype, lo, hi, first, key));
}

Tensor random_bernoulli(const Shape& shape, DType dtype, double p, uint64_t first, uint64_t key) {
  return dev(detail::bernoulli_from(shape, dtype, p, first, key));
}

}  // namespace emu
}  // namespace okd::cuda
