// The CUDA backend in a build without CUDA: controls are no-ops and every cuda::gpu kernel throws
// (unreachable in practice: no tensor can be allocated on a real CUDA device here; an emulated
// cuda:0 goes to cuda::emu instead, see emulator.cpp).
#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"

namespace okd::cuda {

namespace {
[[noreturn]] void no_backend(const char* op) { OKD_FAIL(op, ": ", unavailable_reason()); }
}  // namespace

std::string unavailable_reason() {
  return "this build of okd has no CUDA backend (configure with -DOKD_CUDA=ON on a machine with "
         "nvcc)";
}

AllocatorStats allocator_stats() { return {}; }
void empty_cache() {}
void synchronize() {
  note_host_sync("synchronize()");
  raise_device_error();  // an emulated kernel's deferred error
}
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
void set_deterministic(bool) {}
bool deterministic() { return false; }
void set_channels_last(bool) {}
bool channels_last() { return false; }
void set_conv_autotune(bool) {}
bool conv_autotune() { return false; }
std::vector<ConvPlanInfo> conv_plans() { return {}; }
namespace {
int g_bn_split = 2;  // kept for batch_norm_split(); no kernel here to use it
}  // namespace
void set_batch_norm_split(int mode) {
  OKD_CHECK(mode >= 0 && mode <= 2,
            "set_batch_norm_split: expected 0 (one block per channel), 1 (split) or 2 (automatic), "
            "got ",
            mode);
  g_bn_split = mode;
}
int batch_norm_split() { return g_bn_split; }
int64_t batch_norm_parts(int64_t, int64_t, int64_t) { return 1; }
std::string device_summary() {
  return emulating() ? "cuda:0 emulated on the CPU (no GPU; OKD_CUDA_EMULATE)"
                     : unavailable_reason();
}

namespace gpu {

Tensor unary(Unary, const Tensor&, double, double) { no_backend("unary"); }
Tensor binary(Binary, const Tensor&, const Tensor&) { no_backend("binary"); }
Tensor compare(Compare, const Tensor&, const Tensor&) { no_backend("compare"); }
Tensor compare_scalar(Compare, const Tensor&, double) { no_backend("compare"); }
Tensor where(const Tensor&, const Tensor&, const Tensor&) { no_backend("where"); }
void binary_(Binary, const Tensor&, const Tensor&, double) { no_backend("binary_"); }
void mul_scalar_(const Tensor&, double) { no_backend("mul_"); }
void copy_(const Tensor&, const Tensor&) { no_backend("copy_"); }
void fill_(const Tensor&, double) { no_backend("fill_"); }
Tensor relu_backward(const Tensor&, const Tensor&) { no_backend("relu_backward"); }
Tensor reduce(Reduce, const Tensor&, const std::vector<int64_t>&, bool, bool) {
  no_backend("reduce");
}
std::pair<Tensor, Tensor> max_min(bool, const Tensor&, int64_t, bool) { no_backend("max"); }
Tensor logsumexp(const Tensor&, const std::vector<int64_t>&, bool) { no_backend("logsumexp"); }
Tensor norm(const Tensor&, double, const std::vector<int64_t>&, bool) { no_backend("norm"); }
Tensor matmul(const Tensor&, const Tensor&, Precision) { no_backend("matmul"); }
Tensor index_select(const Tensor&, int64_t, const Tensor&) { no_backend("index_select"); }
Tensor gather(const Tensor&, int64_t, const Tensor&) { no_backend("gather"); }
Tensor scatter_add(const Tensor&, int64_t, const Tensor&, const Tensor&) {
  no_backend("scatter_add");
}
Tensor one_hot(const Tensor&, int64_t, DType) { no_backend("one_hot"); }
std::pair<Tensor, Tensor> topk(const Tensor&, int64_t, int64_t, bool) { no_backend("topk"); }
Tensor sample_distinct(const Tensor&, const Tensor&, int64_t) { no_backend("sample_distinct"); }
Tensor log_softmax_lastdim(const Tensor&) { no_backend("log_softmax"); }
Tensor log_softmax_lastdim_backward(const Tensor&, const Tensor&) {
  no_backend("log_softmax_backward");
}
Tensor cross_entropy_forward(const Tensor&, const Tensor&, double, const Tensor&) {
  no_backend("cross_entropy");
}
Tensor cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&) {
  no_backend("cross_entropy_backward");
}
Tensor kd_div_rows(const Tensor&, const Tensor&, double, double) { no_backend("kd_div"); }
Tensor kd_div_backward_student(const Tensor&, const Tensor&, const Tensor&, double, double) {
  no_backend("kd_div_backward");
}
Tensor conv2d_forward(const Tensor&, const Tensor&, const Tensor&, const ops::Conv2dParams&) {
  no_backend("conv2d");
}
Tensor conv2d_backward_input(const Tensor&, const Tensor&, const Shape&, const ops::Conv2dParams&,
                             const Tensor&) {
  no_backend("conv2d_backward_input");
}
Tensor conv2d_backward_weight(const Tensor&, const Tensor&, const Shape&,
                              const ops::Conv2dParams&) {
  no_backend("conv2d_backward_weight");
}
Tensor conv_transpose2d_forward(const Tensor&, const Tensor&, const Tensor&,
                                const ops::Conv2dParams&, int64_t, int64_t) {
  no_backend("conv_transpose2d");
}
std::pair<Tensor, ops::BatchNormStats> batch_norm_train(const Tensor&, const Tensor&, const Tensor&,
                                                        double, bool, const Tensor&,
                                                        const ops::BatchNormRunning&) {
  no_backend("batch_norm");
}
void batch_norm_update_running_(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double,
                                const Tensor&) {
  no_backend("batch_norm_update_running_");
}
Tensor batch_norm_eval(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                       double) {
  no_backend("batch_norm");
}
std::tuple<Tensor, Tensor, Tensor, Tensor> batch_norm_backward(const Tensor&, const Tensor&,
                                                               const Tensor&, const Tensor&,
                                                               const Tensor&, const Tensor&, bool) {
  no_backend("batch_norm_backward");
}
std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor&, int64_t, int64_t, int64_t) {
  no_backend("max_pool2d");
}
Tensor max_pool2d_backward(const Tensor&, const Tensor&, const Shape&) {
  no_backend("max_pool2d_backward");
}
Tensor avg_pool2d_forward(const Tensor&, int64_t, int64_t, int64_t) { no_backend("avg_pool2d"); }
Tensor avg_pool2d_backward(const Tensor&, const Shape&, int64_t, int64_t, int64_t) {
  no_backend("avg_pool2d_backward");
}
Tensor adaptive_avg_pool2d_forward(const Tensor&, int64_t, int64_t) {
  no_backend("adaptive_avg_pool2d");
}
Tensor adaptive_avg_pool2d_backward(const Tensor&, const Shape&) {
  no_backend("adaptive_avg_pool2d_backward");
}
void sgd_step_(const Tensor&, const Tensor&, const Tensor&, const SgdStep&) {
  no_backend("SGD::step");
}
void adam_step_(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                const AdamStep&) {
  no_backend("Adam::step");
}

Tensor random_uniform(const Shape&, DType, double, double, const Tensor&, uint64_t) {
  no_backend("uniform");
}
Tensor random_bernoulli(const Shape&, DType, double, const Tensor&, uint64_t) {
  no_backend("bernoulli");
}

DeviceErrorRecord* device_error_record() { return nullptr; }
void counter_add_(const Tensor&, int64_t) { no_backend("counter_add_"); }
Tensor crop_flip_normalize(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const Tensor&, bool) {
  no_backend("crop_flip_normalize");
}
void sgd_step_foreach_(const std::vector<Tensor>&, const std::vector<Tensor>&,
                       const std::vector<Tensor>&, const SgdStep&) {
  no_backend("sgd_step_foreach_");
}
void adam_step_foreach_(const std::vector<Tensor>&, const std::vector<Tensor>&,
                        const std::vector<Tensor>&, const std::vector<Tensor>&,
                        const std::vector<Tensor>&, const std::vector<int64_t>&,
                        const std::vector<Tensor>&, const AdamStep&) {
  no_backend("adam_step_foreach_");
}  // no kernel can run

}  // namespace gpu

namespace detail {
struct GpuGraph {};
GpuGraph* gpu_graph_capture(const std::function<void()>&, const char*) {
  no_backend("CapturedGraph");
}
void gpu_graph_launch(GpuGraph*) { no_backend("CapturedGraph"); }
int64_t gpu_graph_size(const GpuGraph*) { return 0; }
void gpu_graph_destroy(GpuGraph*) {}
}  // namespace detail

}  // namespace okd::cuda
