// CapturedGraph (graph.h): the emulated recording and the parts shared with the GPU's CUDA graphs
// (graph_cuda.cpp in a CUDA build; without one only emulation can capture).
#include "tensor/cuda/graph.h"

#include <vector>

#include "tensor/cuda/backends.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/update.h"

namespace okd::cuda {

namespace {
thread_local std::vector<detail::Recorded>* t_recording = nullptr;  // emulated capture in progress
thread_local bool t_capturing = false;
thread_local std::vector<std::function<void()>>* t_host_hooks = nullptr;  // of the capture
}  // namespace

namespace detail {
bool emulated_recording() { return t_recording != nullptr; }
void record_emulated(Recorded call) { t_recording->push_back(std::move(call)); }
}  // namespace detail

bool capturing() { return t_capturing; }

void on_replay(std::function<void()> f) {
  if (t_host_hooks) t_host_hooks->push_back(std::move(f));
}

const Tensor& DeviceCounter::holding(Device device, int64_t value, const char* who) {
  if (tensor_.defined() && tensor_.device() == device && value_ == value) return tensor_;
  OKD_CHECK(!capturing(), who, ": a captured step uses a device counter that was not made (or not ",
            "up to date) before the capture: run the step once eagerly first");
  if (!tensor_.defined() || tensor_.device() != device)
    tensor_ = full({}, static_cast<double>(value), DType::Int64, device);
  else
    ops::fill_(tensor_, static_cast<double>(value));
  value_ = value;
  return tensor_;
}

void DeviceCounter::advance(int64_t n) {
  ops::counter_add_(tensor_, n);
  value_ += n;
}

struct CapturedGraph::Impl {
  bool ready = false;
  std::vector<detail::Recorded> calls;            // emulation
  std::vector<std::function<void()>> host_hooks;  // on_replay
  detail::GpuGraph* gpu = nullptr;                // a CUDA graph (graph_cuda.cpp)
};

CapturedGraph::CapturedGraph() : impl_(std::make_unique<Impl>()) {}

CapturedGraph::~CapturedGraph() {
  if (impl_->gpu) detail::gpu_graph_destroy(impl_->gpu);
}

void CapturedGraph::capture(const std::function<void()>& fn, const char* what) {
  OKD_CHECK(!impl_->ready, "CapturedGraph: already captured (make a new one to capture again)");
  OKD_CHECK(!t_capturing, "CapturedGraph: captures cannot nest");
  std::vector<std::function<void()>> hooks;
  struct Flag {
    explicit Flag(std::vector<std::function<void()>>* h) {
      t_capturing = true;
      t_host_hooks = h;
    }
    ~Flag() {
      t_capturing = false;
      t_host_hooks = nullptr;
    }
  } flag(&hooks);
  if (emulating()) {
    // The emulated kernels run as they are recorded, which is the one execution capture() owes.
    std::vector<detail::Recorded> calls;
    t_recording = &calls;
    try {
      SyncFreeScope scope(what);
      fn();
    } catch (...) {
      t_recording = nullptr;
      throw;
    }
    t_recording = nullptr;
    impl_->calls = std::move(calls);
  } else {
    impl_->gpu = detail::gpu_graph_capture(fn, what);  // captures, then launches once
  }
  impl_->host_hooks = std::move(hooks);
  impl_->ready = true;
}

void CapturedGraph::replay() {
  OKD_CHECK(impl_->ready, "CapturedGraph: replay() before capture()");
  if (impl_->gpu)
    detail::gpu_graph_launch(impl_->gpu);
  else
    for (const auto& call : impl_->calls) call();
  for (const auto& hook : impl_->host_hooks) hook();
}

bool CapturedGraph::ready() const { return impl_->ready; }

int64_t CapturedGraph::size() const {
  if (impl_->gpu) return detail::gpu_graph_size(impl_->gpu);
  return static_cast<int64_t>(impl_->calls.size());
}

}  // namespace okd::cuda
