// The CUDA entry points of cuda_ops.h: each forwards to the emulator (cuda::emu, when
// enable_emulation() was called on a machine without a GPU) or to the GPU kernels (cuda::gpu);
// the sync-free scopes (note_host_sync) and the deferred device errors, shared by both.
#include <tuple>
#include <type_traits>
#include <utility>

#include "tensor/cuda/backends.h"

namespace okd::cuda {

namespace {
thread_local const char* t_sync_free_scope = nullptr;  // the innermost SyncFreeScope's name
thread_local bool t_bf16_prestaging = false;           // set_bf16_prestaging

// A replayed out-of-place call delivers its new result into the tensors the capture returned.
void deliver(const Tensor& captured, const Tensor& fresh) { emu::overwrite(captured, fresh); }
void deliver(const std::pair<Tensor, Tensor>& captured, const std::pair<Tensor, Tensor>& fresh) {
  deliver(captured.first, fresh.first);
  deliver(captured.second, fresh.second);
}
void deliver(const std::pair<Tensor, ops::BatchNormStats>& captured,
             const std::pair<Tensor, ops::BatchNormStats>& fresh) {
  deliver(captured.first, fresh.first);
  deliver(captured.second.mean, fresh.second.mean);
  deliver(captured.second.invstd, fresh.second.invstd);
  deliver(captured.second.var_unbiased, fresh.second.var_unbiased);
}
void deliver(const std::tuple<Tensor, Tensor, Tensor, Tensor>& captured,
             const std::tuple<Tensor, Tensor, Tensor, Tensor>& fresh) {
  deliver(std::get<0>(captured), std::get<0>(fresh));
  deliver(std::get<1>(captured), std::get<1>(fresh));
  deliver(std::get<2>(captured), std::get<2>(fresh));
  deliver(std::get<3>(captured), std::get<3>(fresh));  // (undefined unless the masked dy was asked)
}

// Every emulated entry point runs through here. Inside an emulated capture (graph.h) the call,
// operands and scalars copied into f, is also recorded, to run again on replay.
template <class F>
auto emulated(F f) -> decltype(f()) {
  using R = decltype(f());
  if (!detail::emulated_recording()) return f();
  if constexpr (std::is_void_v<R>) {
    f();
    detail::record_emulated([f] { f(); });
  } else {
    R r = f();
    detail::record_emulated([f, r] { deliver(r, f()); });
    return r;
  }
}
}  // namespace

void note_host_sync(const char* what) {
  if (t_sync_free_scope != nullptr)
    OKD_FAIL(what, " makes the host wait for the device inside ", t_sync_free_scope,
             " (a step that is to be captured as a CUDA graph must not)");
}

SyncFreeScope::SyncFreeScope(const char* scope) : previous_(t_sync_free_scope) {
  t_sync_free_scope = scope;
}
SyncFreeScope::~SyncFreeScope() { t_sync_free_scope = previous_; }

void set_bf16_prestaging(bool on) { t_bf16_prestaging = on; }
bool bf16_prestaging() { return t_bf16_prestaging; }

Tensor unary(Unary op, const Tensor& a, double s0, double s1) {
  return emulating() ? emulated([=] { return emu::unary(op, a, s0, s1); })
                     : gpu::unary(op, a, s0, s1);
}
Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  return emulating() ? emulated([=] { return emu::binary(op, a, b); }) : gpu::binary(op, a, b);
}
Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  return emulating() ? emulated([=] { return emu::compare(op, a, b); }) : gpu::compare(op, a, b);
}
Tensor compare_scalar(Compare op, const Tensor& a, double s) {
  return emulating() ? emulated([=] { return emu::compare_scalar(op, a, s); })
                     : gpu::compare_scalar(op, a, s);
}
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return emulating() ? emulated([=] { return emu::where(cond, a, b); }) : gpu::where(cond, a, b);
}
void binary_(Binary op, const Tensor& dst, const Tensor& src, double alpha) {
  return emulating() ? emulated([=] { return emu::binary_(op, dst, src, alpha); })
                     : gpu::binary_(op, dst, src, alpha);
}
void mul_scalar_(const Tensor& dst, double s) {
  return emulating() ? emulated([=] { return emu::mul_scalar_(dst, s); })
                     : gpu::mul_scalar_(dst, s);
}
void copy_(const Tensor& dst, const Tensor& src) {
  return emulating() ? emulated([=] { return emu::copy_(dst, src); }) : gpu::copy_(dst, src);
}
void fill_(const Tensor& dst, double value) {
  return emulating() ? emulated([=] { return emu::fill_(dst, value); }) : gpu::fill_(dst, value);
}
Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  return emulating() ? emulated([=] { return emu::relu_backward(dy, y); })
                     : gpu::relu_backward(dy, y);
}
Tensor reduce(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
              bool unbiased) {
  return emulating() ? emulated([=] { return emu::reduce(op, a, dims, keepdim, unbiased); })
                     : gpu::reduce(op, a, dims, keepdim, unbiased);
}
std::pair<Tensor, Tensor> max_min(bool is_max, const Tensor& a, int64_t dim, bool keepdim) {
  return emulating() ? emulated([=] { return emu::max_min(is_max, a, dim, keepdim); })
                     : gpu::max_min(is_max, a, dim, keepdim);
}
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return emulating() ? emulated([=] { return emu::logsumexp(a, dims, keepdim); })
                     : gpu::logsumexp(a, dims, keepdim);
}
Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  return emulating() ? emulated([=] { return emu::norm(a, p, dims, keepdim); })
                     : gpu::norm(a, p, dims, keepdim);
}
Tensor matmul(const Tensor& a, const Tensor& b, Precision precision) {
  return emulating() ? emulated([=] { return emu::matmul(a, b, precision); })
                     : gpu::matmul(a, b, precision);
}
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  return emulating() ? emulated([=] { return emu::index_select(t, dim, index); })
                     : gpu::index_select(t, dim, index);
}
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  return emulating() ? emulated([=] { return emu::gather(t, dim, index); })
                     : gpu::gather(t, dim, index);
}
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  return emulating() ? emulated([=] { return emu::scatter_add(t, dim, index, src); })
                     : gpu::scatter_add(t, dim, index, src);
}
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  return emulating() ? emulated([=] { return emu::one_hot(labels, num_classes, dtype); })
                     : gpu::one_hot(labels, num_classes, dtype);
}
Tensor sample_distinct(const Tensor& u, const Tensor& counts, int64_t max_count) {
  return emulating() ? emulated([=] { return emu::sample_distinct(u, counts, max_count); })
                     : gpu::sample_distinct(u, counts, max_count);
}

std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest) {
  return emulating() ? emulated([=] { return emu::topk(t, k, dim, largest); })
                     : gpu::topk(t, k, dim, largest);
}
Tensor log_softmax_lastdim(const Tensor& x) {
  return emulating() ? emulated([=] { return emu::log_softmax_lastdim(x); })
                     : gpu::log_softmax_lastdim(x);
}
Tensor log_softmax_lastdim_backward(const Tensor& dy, const Tensor& log_softmax_out) {
  return emulating()
             ? emulated([=] { return emu::log_softmax_lastdim_backward(dy, log_softmax_out); })
             : gpu::log_softmax_lastdim_backward(dy, log_softmax_out);
}
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double label_smoothing,
                             const Tensor& class_weights) {
  return emulating() ? emulated([=] {
    return emu::cross_entropy_forward(logits, targets, label_smoothing, class_weights);
  })
                     : gpu::cross_entropy_forward(logits, targets, label_smoothing, class_weights);
}
Tensor cross_entropy_backward(const Tensor& g, const Tensor& logits, const Tensor& targets,
                              double label_smoothing, const Tensor& class_weights) {
  return emulating() ? emulated([=] {
    return emu::cross_entropy_backward(g, logits, targets, label_smoothing, class_weights);
  })
                     : gpu::cross_entropy_backward(g, logits, targets, label_smoothing,
                                                   class_weights);
}
Tensor kd_div_rows(const Tensor& student, const Tensor& teacher, double T, double teacher_eps) {
  return emulating() ? emulated([=] { return emu::kd_div_rows(student, teacher, T, teacher_eps); })
                     : gpu::kd_div_rows(student, teacher, T, teacher_eps);
}
Tensor kd_div_backward_student(const Tensor& g_rows, const Tensor& student, const Tensor& teacher,
                               double T, double teacher_eps) {
  return emulating() ? emulated([=] {
    return emu::kd_div_backward_student(g_rows, student, teacher, T, teacher_eps);
  })
                     : gpu::kd_div_backward_student(g_rows, student, teacher, T, teacher_eps);
}
Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const ops::Conv2dParams& p) {
  return emulating() ? emulated([=] { return emu::conv2d_forward(input, weight, bias, p); })
                     : gpu::conv2d_forward(input, weight, bias, p);
}
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const ops::Conv2dParams& p, const Tensor& accumulate) {
  // With accumulate, a replay adds into it again and delivers it onto itself (a no-op).
  return emulating() ? emulated([=] {
    return emu::conv2d_backward_input(grad_out, weight, input_shape, p, accumulate);
  })
                     : gpu::conv2d_backward_input(grad_out, weight, input_shape, p, accumulate);
}
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const ops::Conv2dParams& p) {
  return emulating() ? emulated([=] {
    return emu::conv2d_backward_weight(grad_out, input, weight_shape, p);
  })
                     : gpu::conv2d_backward_weight(grad_out, input, weight_shape, p);
}
Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const ops::Conv2dParams& p, int64_t output_padding_h,
                                int64_t output_padding_w) {
  return emulating() ? emulated([=] {
    return emu::conv_transpose2d_forward(input, weight, bias, p, output_padding_h,
                                         output_padding_w);
  })
                     : gpu::conv_transpose2d_forward(input, weight, bias, p, output_padding_h,
                                                     output_padding_w);
}
std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                        const Tensor& bias, double eps, bool relu,
                                                        const Tensor& residual,
                                                        const ops::BatchNormRunning& running) {
  return emulating() ? emulated([=] {
    return emu::batch_norm_train(x, weight, bias, eps, relu, residual, running);
  })
                     : gpu::batch_norm_train(x, weight, bias, eps, relu, residual, running);
}
void batch_norm_update_running_(const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& batch_mean, const Tensor& batch_var, double momentum,
                                const Tensor& num_batches_tracked) {
  return emulating() ? emulated([=] {
    return emu::batch_norm_update_running_(running_mean, running_var, batch_mean, batch_var,
                                           momentum, num_batches_tracked);
  })
                     : gpu::batch_norm_update_running_(running_mean, running_var, batch_mean,
                                                       batch_var, momentum, num_batches_tracked);
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  return emulating()
             ? emulated([=] { return emu::batch_norm_eval(x, mean, var, weight, bias, eps); })
             : gpu::batch_norm_eval(x, mean, var, weight, bias, eps);
}
std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_backward(
    const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& mean,
    const Tensor& invstd, const Tensor& relu_out, bool want_masked) {
  return emulating() ? emulated([=] {
    return emu::batch_norm_backward(dy, x, weight, mean, invstd, relu_out, want_masked);
  })
                     : gpu::batch_norm_backward(dy, x, weight, mean, invstd, relu_out, want_masked);
}
std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride,
                                             int64_t pad) {
  return emulating() ? emulated([=] { return emu::max_pool2d_forward(x, kernel, stride, pad); })
                     : gpu::max_pool2d_forward(x, kernel, stride, pad);
}
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& input_shape) {
  return emulating() ? emulated([=] { return emu::max_pool2d_backward(dy, indices, input_shape); })
                     : gpu::max_pool2d_backward(dy, indices, input_shape);
}
Tensor avg_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  return emulating() ? emulated([=] { return emu::avg_pool2d_forward(x, kernel, stride, pad); })
                     : gpu::avg_pool2d_forward(x, kernel, stride, pad);
}
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t pad) {
  return emulating() ? emulated([=] {
    return emu::avg_pool2d_backward(dy, input_shape, kernel, stride, pad);
  })
                     : gpu::avg_pool2d_backward(dy, input_shape, kernel, stride, pad);
}
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
  return emulating() ? emulated([=] { return emu::adaptive_avg_pool2d_forward(x, out_h, out_w); })
                     : gpu::adaptive_avg_pool2d_forward(x, out_h, out_w);
}
Tensor adaptive_avg_pool2d_backward(const Tensor& dy, const Shape& input_shape) {
  return emulating() ? emulated([=] { return emu::adaptive_avg_pool2d_backward(dy, input_shape); })
                     : gpu::adaptive_avg_pool2d_backward(dy, input_shape);
}
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s) {
  return emulating() ? emulated([=] { return emu::sgd_step_(param, grad, momentum_buffer, s); })
                     : gpu::sgd_step_(param, grad, momentum_buffer, s);
}
void sgd_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& momentum_buffers, const SgdStep& s) {
  return emulating()
             ? emulated([=] { return emu::sgd_step_foreach_(params, grads, momentum_buffers, s); })
             : gpu::sgd_step_foreach_(params, grads, momentum_buffers, s);
}
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  return emulating() ? emulated([=] {
    return emu::adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  })
                     : gpu::adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
}
void adam_step_foreach_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                        const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                        const std::vector<Tensor>& max_exp_avg_sqs,
                        const std::vector<int64_t>& steps, const std::vector<Tensor>& step_counters,
                        const AdamStep& s) {
  return emulating() ? emulated([=] {
    return emu::adam_step_foreach_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                                   step_counters, s);
  })
                     : gpu::adam_step_foreach_(params, grads, exp_avgs, exp_avg_sqs,
                                               max_exp_avg_sqs, steps, step_counters, s);
}

void counter_add_(const Tensor& counter, int64_t amount) {
  return emulating() ? emulated([=] { return emu::counter_add_(counter, amount); })
                     : gpu::counter_add_(counter, amount);
}

Tensor crop_flip_normalize(const Tensor& images, const Tensor& index, const Tensor& params,
                           const Tensor& scale, const Tensor& shift, bool reflect) {
  return emulating() ? emulated([=] {
    return emu::crop_flip_normalize(images, index, params, scale, shift, reflect);
  })
                     : gpu::crop_flip_normalize(images, index, params, scale, shift, reflect);
}

DeviceErrorRecord* device_error_record() {
  return emulating() ? emu::device_error_record() : gpu::device_error_record();
}

std::string describe(const DeviceErrorRecord& r) {
  const char* op = "";
  switch (static_cast<DeviceErrorKind>(r.kind)) {
    case DeviceErrorKind::None:
      return "no error";
    case DeviceErrorKind::CrossEntropyTarget:
      return str("cross_entropy: target ", r.value, " at position ", r.position, " is outside [0, ",
                 r.bound, ")");
    case DeviceErrorKind::CropFlipNormalizeIndex:
      return str("crop_flip_normalize: index ", r.value, " at position ", r.position,
                 " is outside [0, ", r.bound, ")");
    case DeviceErrorKind::SampleDistinctCount:
      return str("sample_distinct: count ", r.value, " of row ", r.position, " is outside [1, ",
                 r.bound, "]");
    case DeviceErrorKind::OneHotLabel:
      return str("one_hot: label ", r.value, " at position ", r.position, " is outside [0, ",
                 r.bound, ")");
    case DeviceErrorKind::IndexSelectIndex:
      op = "index_select";
      break;
    case DeviceErrorKind::GatherIndex:
      op = "gather";
      break;
    case DeviceErrorKind::ScatterAddIndex:
      op = "scatter_add";
      break;
  }
  if (*op == 0) return str("unknown device error kind ", r.kind);
  return str(op, ": index ", r.value, " is out of range for dim ", r.dim, " of size ", r.bound);
}

void raise_device_error() {
  DeviceErrorRecord* rec = device_error_record();
  if (rec == nullptr || rec->kind == 0) return;
  const DeviceErrorRecord r = *rec;
  *rec = DeviceErrorRecord{};
  OKD_FAIL(describe(r), " (found on ", emulating() ? "the emulated device" : "the GPU",
           " by the kernel; reported at the next host synchronisation)");
}

Tensor random_uniform(const Shape& shape, DType dtype, double lo, double hi, const Tensor& first,
                      uint64_t key) {
  return emulating()
             ? emulated([=] { return emu::random_uniform(shape, dtype, lo, hi, first, key); })
             : gpu::random_uniform(shape, dtype, lo, hi, first, key);
}
Tensor random_bernoulli(const Shape& shape, DType dtype, double p, const Tensor& first,
                        uint64_t key) {
  return emulating() ? emulated([=] { return emu::random_bernoulli(shape, dtype, p, first, key); })
                     : gpu::random_bernoulli(shape, dtype, p, first, key);
}

}  // namespace okd::cuda
