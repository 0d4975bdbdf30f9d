// cuda:0 emulated on the CPU (cuda_ops.h, "emulation"): host memory labelled cuda:0, and every
// kernel entry point as the CPU op run on CPU-labelled aliases of its operands. The aliases share
// the memory, so results and in-place writes are the CPU kernels' bit for bit. The CUDA
// backend's rules are kept: every operand on cuda:0 (no mixing with CPU tensors), and the dtypes
// its kernels lack are refused with its message, so what passes here is what the GPU accepts; a
// bad index is deferred to the next sync as the kernels defer it; and inside an emulated capture
// (graph.h) dispatch.cpp records each call here for replay.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tensor/cuda/backends.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/augment.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/loss.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/update.h"
#include "tensor/ops/view.h"
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
  if (dst.device().is_cpu()) raise_device_error();  // as after a GPU's device-to-host copy
  if (dst.device().is_cuda() && src.device().is_cuda() && detail::emulated_recording())
    detail::record_emulated([dst, src] {  // a device-to-device copy is part of a captured step
      if (src.nbytes() > 0) std::memcpy(dst.device_raw_data(), src.device_raw_data(), src.nbytes());
    });
}

DeviceErrorRecord g_error_record;  // the emulated kernels' deferred errors

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

// The GPU kernels check index-valued inputs themselves and defer the error (cuda_ops.h): the first
// value of idx (a CPU alias) outside [0, bound) is recorded as the kernel would record it, and
// true returned, in which case the caller skips the CPU op (which would throw at once) and returns
// a NaN-filled result of the right shape.
bool defer_bad_index(const Tensor& idx, int64_t bound, DeviceErrorKind kind, int64_t dim) {
  const Tensor c = ops::contiguous(idx);
  const int64_t* v = c.data<int64_t>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    if (v[i] >= 0 && v[i] < bound) continue;
    if (g_error_record.kind == 0) {
      g_error_record.kind = static_cast<int32_t>(kind);
      g_error_record.dim = static_cast<int32_t>(dim);
      g_error_record.position = i;
      g_error_record.value = v[i];
      g_error_record.bound = bound;
    }
    return true;
  }
  return false;
}
// What a kernel leaves behind after a bad index: memory nobody should read (the error is raised
// at the next synchronisation).
Tensor poisoned(const Shape& shape, DType dtype) {
  return dev(full(shape, is_floating(dtype) ? std::numeric_limits<double>::quiet_NaN() : 0, dtype));
}
int64_t dim_size(const Tensor& t, int64_t dim) { return t.dim() ? t.shape()[dim] : 1; }

// In-place ops write through the alias; the tensor's own version must move as the GPU's would.
void bump(const Tensor& t) { t.impl()->storage->bump_version(); }

}  // namespace

Tensor unary(Unary op, const Tensor& a_, double s0, double s1) {
  static const char* names[] = {"neg",  "exp",  "log",     "sqrt", "rsqrt",     "abs",
                                "sign", "relu", "sigmoid", "tanh", "pow",       "clamp",
                                "add",  "mul",  "rsub",    "rdiv", "round_bf16"};
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
    case Unary::RoundBf16:
      return dev(ops::round_bf16(a));
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

Tensor matmul(const Tensor& a, const Tensor& b, Precision precision) {
  return dev(ops::matmul(host_float(a, "matmul"), host_float(b, "matmul"), precision));
}

// A bad index value is deferred only once the operands' dtypes and ranks are right; otherwise the
// CPU op runs and raises its own (immediate, as on the GPU) error about them.
Tensor index_select(const Tensor& t_, int64_t dim, const Tensor& index_) {
  const Tensor t = host(t_, "index_select"), index = host(index_, "index_select");
  if (index.dtype() == DType::Int64 && index.dim() <= 1) {
    const int64_t d = wrap_dim(dim, std::max<int64_t>(t.dim(), 1), "index_select");
    if (defer_bad_index(index, dim_size(t, d), DeviceErrorKind::IndexSelectIndex, d)) {
      Shape s = t.shape();
      if (t.dim()) s[d] = index.numel();
      return poisoned(s, t.dtype());
    }
  }
  return dev(ops::index_select(t, dim, index));
}

Tensor gather(const Tensor& t_, int64_t dim, const Tensor& index_) {
  const Tensor t = host(t_, "gather"), index = host(index_, "gather");
  if (index.dtype() == DType::Int64 && index.dim() == t.dim() && t.dim() > 0) {
    const int64_t d = wrap_dim(dim, t.dim(), "gather");
    if (defer_bad_index(index, t.shape()[d], DeviceErrorKind::GatherIndex, d))
      return poisoned(index.shape(), t.dtype());
  }
  return dev(ops::gather(t, dim, index));
}

Tensor scatter_add(const Tensor& t_, int64_t dim, const Tensor& index_, const Tensor& src) {
  const Tensor t = host(t_, "scatter_add"), index = host(index_, "scatter_add");
  if (index.dtype() == DType::Int64 && index.dim() == t.dim() && t.dim() > 0) {
    const int64_t d = wrap_dim(dim, t.dim(), "scatter_add");
    if (defer_bad_index(index, t.shape()[d], DeviceErrorKind::ScatterAddIndex, d))
      return poisoned(t.shape(), t.dtype());
  }
  return dev(ops::scatter_add(t, dim, index, host(src, "scatter_add")));
}

Tensor one_hot(const Tensor& labels_, int64_t num_classes, DType dtype) {
  const Tensor labels = host(labels_, "one_hot");
  if (labels.dtype() == DType::Int64 && num_classes > 0 &&
      defer_bad_index(labels, num_classes, DeviceErrorKind::OneHotLabel, 0)) {
    Shape s = labels.shape();
    s.push_back(num_classes);
    return poisoned(s, dtype);
  }
  return dev(ops::one_hot(labels, num_classes, dtype));
}

// As the kernel: a count outside [1, max_count] is recorded (the first one) and its row is zeros.
Tensor sample_distinct(const Tensor& u_, const Tensor& counts_, int64_t max_count) {
  const Tensor u = host(u_, "sample_distinct");
  Tensor counts = ops::clone(host(counts_, "sample_distinct"));
  int64_t* c = counts.data<int64_t>();
  std::vector<int64_t> bad;
  for (int64_t b = 0; b < counts.numel(); ++b) {
    if (c[b] >= 1 && c[b] <= max_count) continue;
    if (g_error_record.kind == 0) {
      g_error_record.kind = static_cast<int32_t>(DeviceErrorKind::SampleDistinctCount);
      g_error_record.dim = 0;
      g_error_record.position = b;
      g_error_record.value = c[b];
      g_error_record.bound = max_count;
    }
    bad.push_back(b);
    c[b] = 1;
  }
  Tensor out = ops::sample_distinct(u, counts, max_count);
  for (int64_t b : bad) ops::fill_(ops::select(out, 0, b), 0.0);
  return dev(out);
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

// A target outside [0, C) is deferred as the kernels do (after the shape checks, which the CPU op
// makes first, have passed).
bool defer_bad_target(const Tensor& logits, const Tensor& targets) {
  return logits.dim() == 2 && targets.dtype() == DType::Int64 && targets.dim() == 1 &&
         targets.size(0) == logits.size(0) &&
         defer_bad_index(targets, logits.size(1), DeviceErrorKind::CrossEntropyTarget, 0);
}

Tensor cross_entropy_forward(const Tensor& logits_, const Tensor& targets_, double eps,
                             const Tensor& weights) {
  const Tensor logits = host_float(logits_, "cross_entropy");
  const Tensor targets = host(targets_, "cross_entropy");
  if (defer_bad_target(logits, targets)) return poisoned({}, logits.dtype());
  return dev(
      ops::cross_entropy_forward(logits, targets, eps, host_float(weights, "cross_entropy")));
}

Tensor cross_entropy_backward(const Tensor& g, const Tensor& logits_, const Tensor& targets_,
                              double eps, const Tensor& weights) {
  const char* op = "cross_entropy_backward";
  const Tensor logits = host_float(logits_, op), targets = host(targets_, op);
  if (defer_bad_target(logits, targets)) return poisoned(logits.shape(), logits.dtype());
  return dev(ops::cross_entropy_backward(host_float(g, op), logits, targets, eps,
                                         host_float(weights, op)));
}

Tensor kd_div_rows(const Tensor& student, const Tensor& teacher, double T, double teacher_eps) {
  return dev(ops::kd_div_rows(host_float(student, "kd_div"), host_float(teacher, "kd_div"), T,
                              teacher_eps));
}

Tensor kd_div_backward_student(const Tensor& g, const Tensor& student, const Tensor& teacher,
                               double T, double teacher_eps) {
  const char* op = "kd_div_backward";
  return dev(ops::kd_div_backward_student(host_float(g, op), host_float(student, op),
                                          host_float(teacher, op), T, teacher_eps));
}

Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const ops::Conv2dParams& p) {
  return dev(ops::conv2d_forward(host_float(input, "conv2d"), host_float(weight, "conv2d"),
                                 host_float(bias, "conv2d"), p));
}

// With accumulate: dx on the host, then accumulate += dx through its host alias (whose own version
// counter is not accumulate's, hence the bump).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const ops::Conv2dParams& p, const Tensor& accumulate) {
  const char* op = "conv2d_backward_input";
  const Tensor dx =
      ops::conv2d_backward_input(host_float(grad_out, op), host_float(weight, op), input_shape, p);
  if (!accumulate.defined()) return dev(dx);
  ops::add_(host_float(accumulate, op), dx);
  bump(accumulate);
  return accumulate;
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
                                                        const Tensor& bias, double eps, bool relu,
                                                        const Tensor& residual,
                                                        const ops::BatchNormRunning& running) {
  auto [y, s] = ops::batch_norm_train(host_float(x, "batch_norm"), host_float(weight, "batch_norm"),
                                      host_float(bias, "batch_norm"), eps, relu,
                                      host_float(residual, "batch_norm"));
  ops::BatchNormStats st{dev(s.mean), dev(s.invstd), dev(s.var_unbiased)};
  // the running statistics in the same entry point (one recorded call, as on a GPU)
  if (running.mean.defined())
    batch_norm_update_running_(running.mean, running.var, st.mean, st.var_unbiased,
                               running.momentum, running.num_batches_tracked);
  return {dev(y), st};
}

void batch_norm_update_running_(const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& batch_mean, const Tensor& batch_var, double momentum,
                                const Tensor& num_batches_tracked) {
  const char* op = "batch_norm_update_running_";
  ops::batch_norm_update_running_(
      host_float(running_mean, op), host_float(running_var, op), host_float(batch_mean, op),
      host_float(batch_var, op), momentum,
      num_batches_tracked.defined() ? host(num_batches_tracked, op) : Tensor());
  bump(running_mean);
  bump(running_var);
  if (num_batches_tracked.defined()) bump(num_batches_tracked);
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  return dev(ops::batch_norm_eval(host_float(x, "batch_norm"), host_float(mean, "batch_norm"),
                                  host_float(var, "batch_norm"), host_float(weight, "batch_norm"),
                                  host_float(bias, "batch_norm"), eps));
}

std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_backward(
    const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& relu_out, bool want_masked) {
  const char* op = "batch_norm_backward";
  if (want_masked) {
    auto [dx, dw, db, dm] = ops::batch_norm_add_relu_backward(
        host_float(dy, op), host_float(x, op), host_float(weight, op), host_float(mean, op),
        host_float(invstd, op), host_float(relu_out, op));
    return {dev(dx), dev(dw), dev(db), dev(dm)};
  }
  auto [dx, dw, db] = ops::batch_norm_backward(host_float(dy, op), host_float(x, op),
                                               host_float(weight, op), host_float(mean, op),
                                               host_float(invstd, op), host_float(relu_out, op));
  return {dev(dx), dev(dw), dev(db), Tensor()};
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

void sgd_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& bufs, const SgdStep& s) {
  for (size_t i = 0; i < params.size(); ++i)
    emu::sgd_step_(params[i], grads[i], s.momentum != 0 ? bufs[i] : Tensor(), s);
}

// The per-tensor step for each parameter, in order (recorded by dispatch.cpp as one call).
void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const AdamStep& s) {
  for (size_t i = 0; i < params.size(); ++i) {
    AdamStep si = s;
    si.step = steps[i];
    if (!step_counters.empty()) si.step_counter = step_counters[i];
    emu::adam_step_(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i],
                    s.amsgrad ? max_exp_avg_sqs[i] : Tensor(), si);
  }
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s_) {
  const char* op = "Adam::step";
  AdamStep s = s_;
  if (s.step_counter.defined()) {  // read where the kernel reads it, at run time (replays)
    s.step = host(s.step_counter, op).data<int64_t>()[0];
    s.step_counter = Tensor();
  }
  ops::adam_step_(host_float(param, op), host_float(grad, op), host_float(exp_avg, op),
                  host_float(exp_avg_sq, op), host_float(max_exp_avg_sq, op), s);
  bump(param);
}

DeviceErrorRecord* device_error_record() { return &g_error_record; }

void overwrite(const Tensor& dst_, const Tensor& src_) {
  if (!dst_.defined()) return;
  const Tensor dst = host(dst_, "replay"), src = host(src_, "replay");
  OKD_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(), "replay: a kernel's result ",
            src.desc(), " no longer matches the captured ", dst.desc());
  if (dst.device_raw_data() == src.device_raw_data() && dst.strides() == src.strides()) return;
  ops::copy_(dst, src);
  bump(dst_);
}

Tensor crop_flip_normalize(const Tensor& images_, const Tensor& index_, const Tensor& params,
                           const Tensor& scale, const Tensor& shift, bool reflect) {
  const char* op = "crop_flip_normalize";
  const Tensor images = host(images_, op), index = host(index_, op);
  if (defer_bad_index(index, images.size(0), DeviceErrorKind::CropFlipNormalizeIndex, 0))
    return poisoned({index.numel(), images.size(1), images.size(2), images.size(3)},
                    DType::Float32);
  return dev(ops::crop_flip_normalize(images, index, host(params, op), host(scale, op),
                                      host(shift, op), reflect));
}

void counter_add_(const Tensor& counter, int64_t amount) {
  ops::counter_add_(host(counter, "counter_add_"), amount);
  bump(counter);
}

// The first block comes from the device counter, read where the kernel reads it (at run time, so
// a replayed draw sees the advanced counter).
static uint64_t first_block(const Tensor& first) {
  return static_cast<uint64_t>(host(first, "random").data<int64_t>()[0]);
}

Tensor random_uniform(const Shape& shape, DType dtype, double lo, double hi, const Tensor& first,
                      uint64_t key) {
  return dev(okd::detail::uniform_from(shape, dtype, lo, hi, first_block(first), key));
}

Tensor random_bernoulli(const Shape& shape, DType dtype, double p, const Tensor& first,
                        uint64_t key) {
  return dev(okd::detail::bernoulli_from(shape, dtype, p, first_block(first), key));
}

}  // namespace emu
}  // namespace okd::cuda
