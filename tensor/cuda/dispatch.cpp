// The CUDA entry points of cuda_ops.h: each forwards to the emulator (cuda::emu, when
// enable_emulation() was called on a machine without a GPU) or to the GPU kernels (cuda::gpu);
// and the sync-free scopes (note_host_sync), shared by both.
#include "tensor/cuda/backends.h"

namespace okd::cuda {

namespace {
thread_local const char* t_sync_free_scope = nullptr;  // the innermost SyncFreeScope's name
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

Tensor unary(Unary op, const Tensor& a, double s0, double s1) {
  return emulating() ? emu::unary(op, a, s0, s1) : gpu::unary(op, a, s0, s1);
}
Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  return emulating() ? emu::binary(op, a, b) : gpu::binary(op, a, b);
}
Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  return emulating() ? emu::compare(op, a, b) : gpu::compare(op, a, b);
}
Tensor compare_scalar(Compare op, const Tensor& a, double s) {
  return emulating() ? emu::compare_scalar(op, a, s) : gpu::compare_scalar(op, a, s);
}
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return emulating() ? emu::where(cond, a, b) : gpu::where(cond, a, b);
}
void binary_(Binary op, const Tensor& dst, const Tensor& src, double alpha) {
  return emulating() ? emu::binary_(op, dst, src, alpha) : gpu::binary_(op, dst, src, alpha);
}
void mul_scalar_(const Tensor& dst, double s) {
  return emulating() ? emu::mul_scalar_(dst, s) : gpu::mul_scalar_(dst, s);
}
void copy_(const Tensor& dst, const Tensor& src) {
  return emulating() ? emu::copy_(dst, src) : gpu::copy_(dst, src);
}
void fill_(const Tensor& dst, double value) {
  return emulating() ? emu::fill_(dst, value) : gpu::fill_(dst, value);
}
Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  return emulating() ? emu::relu_backward(dy, y) : gpu::relu_backward(dy, y);
}
Tensor reduce(Reduce op, const Tensor& a, const std::vector<int64_t>& dims, bool keepdim,
              bool unbiased) {
  return emulating() ? emu::reduce(op, a, dims, keepdim, unbiased)
                     : gpu::reduce(op, a, dims, keepdim, unbiased);
}
std::pair<Tensor, Tensor> max_min(bool is_max, const Tensor& a, int64_t dim, bool keepdim) {
  return emulating() ? emu::max_min(is_max, a, dim, keepdim)
                     : gpu::max_min(is_max, a, dim, keepdim);
}
Tensor logsumexp(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return emulating() ? emu::logsumexp(a, dims, keepdim) : gpu::logsumexp(a, dims, keepdim);
}
Tensor norm(const Tensor& a, double p, const std::vector<int64_t>& dims, bool keepdim) {
  return emulating() ? emu::norm(a, p, dims, keepdim) : gpu::norm(a, p, dims, keepdim);
}
Tensor matmul(const Tensor& a, const Tensor& b) {
  return emulating() ? emu::matmul(a, b) : gpu::matmul(a, b);
}
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  return emulating() ? emu::index_select(t, dim, index) : gpu::index_select(t, dim, index);
}
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  return emulating() ? emu::gather(t, dim, index) : gpu::gather(t, dim, index);
}
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  return emulating() ? emu::scatter_add(t, dim, index, src) : gpu::scatter_add(t, dim, index, src);
}
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  return emulating() ? emu::one_hot(labels, num_classes, dtype)
                     : gpu::one_hot(labels, num_classes, dtype);
}
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim, bool largest) {
  return emulating() ? emu::topk(t, k, dim, largest) : gpu::topk(t, k, dim, largest);
}
Tensor log_softmax_lastdim(const Tensor& x) {
  return emulating() ? emu::log_softmax_lastdim(x) : gpu::log_softmax_lastdim(x);
}
Tensor log_softmax_lastdim_backward(const Tensor& dy, const Tensor& log_softmax_out) {
  return emulating() ? emu::log_softmax_lastdim_backward(dy, log_softmax_out)
                     : gpu::log_softmax_lastdim_backward(dy, log_softmax_out);
}
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& targets, double label_smoothing,
                             const Tensor& class_weights) {
  return emulating() ? emu::cross_entropy_forward(logits, targets, label_smoothing, class_weights)
                     : gpu::cross_entropy_forward(logits, targets, label_smoothing, class_weights);
}
Tensor cross_entropy_backward(double g, const Tensor& logits, const Tensor& targets,
                              double label_smoothing, const Tensor& class_weights) {
  return emulating()
             ? emu::cross_entropy_backward(g, logits, targets, label_smoothing, class_weights)
             : gpu::cross_entropy_backward(g, logits, targets, label_smoothing, class_weights);
}
Tensor conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const ops::Conv2dParams& p) {
  return emulating() ? emu::conv2d_forward(input, weight, bias, p)
                     : gpu::conv2d_forward(input, weight, bias, p);
}
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const ops::Conv2dParams& p) {
  return emulating() ? emu::conv2d_backward_input(grad_out, weight, input_shape, p)
                     : gpu::conv2d_backward_input(grad_out, weight, input_shape, p);
}
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Shape& weight_shape, const ops::Conv2dParams& p) {
  return emulating() ? emu::conv2d_backward_weight(grad_out, input, weight_shape, p)
                     : gpu::conv2d_backward_weight(grad_out, input, weight_shape, p);
}
Tensor conv_transpose2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                const ops::Conv2dParams& p, int64_t output_padding_h,
                                int64_t output_padding_w) {
  return emulating() ? emu::conv_transpose2d_forward(input, weight, bias, p, output_padding_h,
                                                     output_padding_w)
                     : gpu::conv_transpose2d_forward(input, weight, bias, p, output_padding_h,
                                                     output_padding_w);
}
std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor& x, const Tensor& weight,
                                                        const Tensor& bias, double eps) {
  return emulating() ? emu::batch_norm_train(x, weight, bias, eps)
                     : gpu::batch_norm_train(x, weight, bias, eps);
}
Tensor batch_norm_eval(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                       const Tensor& bias, double eps) {
  return emulating() ? emu::batch_norm_eval(x, mean, var, weight, bias, eps)
                     : gpu::batch_norm_eval(x, mean, var, weight, bias, eps);
}
std::tuple<Tensor, Tensor, Tensor> batch_norm_backward(const Tensor& dy, const Tensor& x,
                                                       const Tensor& weight, const Tensor& mean,
                                                       const Tensor& invstd) {
  return emulating() ? emu::batch_norm_backward(dy, x, weight, mean, invstd)
                     : gpu::batch_norm_backward(dy, x, weight, mean, invstd);
}
std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride,
                                             int64_t pad) {
  return emulating() ? emu::max_pool2d_forward(x, kernel, stride, pad)
                     : gpu::max_pool2d_forward(x, kernel, stride, pad);
}
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, const Shape& input_shape) {
  return emulating() ? emu::max_pool2d_backward(dy, indices, input_shape)
                     : gpu::max_pool2d_backward(dy, indices, input_shape);
}
Tensor avg_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int64_t pad) {
  return emulating() ? emu::avg_pool2d_forward(x, kernel, stride, pad)
                     : gpu::avg_pool2d_forward(x, kernel, stride, pad);
}
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& input_shape, int64_t kernel,
                           int64_t stride, int64_t pad) {
  return emulating() ? emu::avg_pool2d_backward(dy, input_shape, kernel, stride, pad)
                     : gpu::avg_pool2d_backward(dy, input_shape, kernel, stride, pad);
}
Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
  return emulating() ? emu::adaptive_avg_pool2d_forward(x, out_h, out_w)
                     : gpu::adaptive_avg_pool2d_forward(x, out_h, out_w);
}
Tensor adaptive_avg_pool2d_backward(const Tensor& dy, const Shape& input_shape) {
  return emulating() ? emu::adaptive_avg_pool2d_backward(dy, input_shape)
                     : gpu::adaptive_avg_pool2d_backward(dy, input_shape);
}
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
               const SgdStep& s) {
  return emulating() ? emu::sgd_step_(param, grad, momentum_buffer, s)
                     : gpu::sgd_step_(param, grad, momentum_buffer, s);
}
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& s) {
  return emulating() ? emu::adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s)
                     : gpu::adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
}

Tensor random_uniform(const Shape& shape, DType dtype, double lo, double hi, uint64_t first,
                      uint64_t key) {
  return emulating() ? emu::random_uniform(shape, dtype, lo, hi, first, key)
                     : gpu::random_uniform(shape, dtype, lo, hi, first, key);
}
Tensor random_bernoulli(const Shape& shape, DType dtype, double p, uint64_t first, uint64_t key) {
  return emulating() ? emu::random_bernoulli(shape, dtype, p, first, key)
                     : gpu::random_bernoulli(shape, dtype, p, first, key);
}

}  // namespace okd::cuda
