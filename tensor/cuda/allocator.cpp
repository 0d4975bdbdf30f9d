// The CUDA caching allocator and the pinned staging buffers of host<->device copies (design in
// allocator.h and docs/cuda.md).
#include "tensor/cuda/allocator.h"

#include <cuda_runtime.h>

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/cuda/context.h"

namespace okd::cuda {

namespace {

std::string mib(int64_t bytes) { return str(bytes / (1024.0 * 1024.0), " MiB"); }

using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // size class -> free blocks

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    const size_t size = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    FreeLists& lists = open_pool_ ? pools_.at(open_pool_) : free_;
    auto it = lists.find(size);
    void* p = nullptr;
    if (it != lists.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= static_cast<int64_t>(size);
    } else {
      p = device_malloc(size, nbytes);
    }
    stats_.allocated_bytes += static_cast<int64_t>(size);
    live_[p] = {size, open_pool_};
    return p;
  }

  void deallocate(void* ptr, size_t) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours: never happens unless storage is corrupted
    const auto [size, pool] = it->second;
    live_.erase(it);
    stats_.allocated_bytes -= static_cast<int64_t>(size);
    stats_.cached_bytes += static_cast<int64_t>(size);
    auto p = pools_.find(pool);
    (p != pools_.end() ? p->second : free_)[size].push_back(ptr);
  }

  int begin_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    OKD_CHECK(open_pool_ == 0, "cuda allocator: a graph pool is already open");
    open_pool_ = ++last_pool_;
    pools_[open_pool_];
    return open_pool_;
  }
  void end_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    open_pool_ = 0;
  }
  void release_pool(int pool) {
    std::lock_guard<std::mutex> lock(mu_);
    auto p = pools_.find(pool);
    if (p == pools_.end()) return;
    for (auto& [size, blocks] : p->second)
      free_[size].insert(free_[size].end(), blocks.begin(), blocks.end());
    pools_.erase(p);  // live blocks of the pool go to the shared lists when freed
    if (open_pool_ == pool) open_pool_ = 0;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached();
  }

 private:
  // cudaMalloc, and on out-of-memory one retry after returning every cached block to the driver.
  void* device_malloc(size_t size, size_t requested) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached();
      e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      OKD_FAIL("CUDA out of memory: could not allocate ", requested, " bytes (", mib(size),
               " block) on cuda:0; tensors hold ", mib(stats_.allocated_bytes), ", the device has ",
               mib(static_cast<int64_t>(free_b)), " free of ", mib(static_cast<int64_t>(total_b)));
    }
    OKD_CUDA_CHECK("cuda allocator", e);
    ++stats_.device_mallocs;
    return p;
  }

  // Caller holds mu_. cudaFree waits for the device, so queued work using a block finishes first.
  void release_cached() {  // the shared lists only: a graph's pool stays with the graph
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        OKD_CUDA_CHECK("cuda allocator", cudaFree(p));
        ++stats_.device_frees;
        stats_.cached_bytes -= static_cast<int64_t>(size);
      }
      blocks.clear();
    }
  }

  struct Block {
    size_t size;  // size class
    int pool;     // 0: the shared lists; else a graph's private pool
  };
  std::mutex mu_;
  FreeLists free_;                            // shared free blocks
  std::unordered_map<int, FreeLists> pools_;  // graph pools' free blocks
  std::unordered_map<void*, Block> live_;     // block -> its size class and pool
  int open_pool_ = 0, last_pool_ = 0;
  AllocatorStats stats_;
};

CachingAllocator& allocator_instance() {
  static CachingAllocator* a = new CachingAllocator();  // leaked on purpose (see allocator.h)
  return *a;
}

// Two pinned buffers used alternately; `done` is recorded after the device's last read of a
// buffer (host->device), so the host waits on it before overwriting the buffer.
constexpr size_t kStageBytes = size_t{4} << 20;
struct Stage {
  void* host = nullptr;
  cudaEvent_t done = nullptr;
};
struct Staging {
  std::mutex mu;
  Stage stages[2];
  Staging() {
    for (Stage& s : stages) {
      OKD_CUDA_CHECK("to(cuda)", cudaHostAlloc(&s.host, kStageBytes, cudaHostAllocDefault));
      OKD_CUDA_CHECK("to(cuda)", cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
  }
};
Staging& staging() {
  static Staging* s = new Staging();  // leaked on purpose, like the allocator
  return *s;
}

void host_to_device(char* dst, const char* src, size_t n) {
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  cudaStream_t s = stream();
  int k = 0;
  for (size_t off = 0; off < n; off += kStageBytes, k ^= 1) {
    const size_t len = std::min(kStageBytes, n - off);
    Stage& buf = st.stages[k];
    OKD_CUDA_CHECK("to(cuda)", cudaEventSynchronize(buf.done));
    std::memcpy(buf.host, src + off, len);
    OKD_CUDA_CHECK("to(cuda)",
                   cudaMemcpyAsync(dst + off, buf.host, len, cudaMemcpyHostToDevice, s));
    OKD_CUDA_CHECK("to(cuda)", cudaEventRecord(buf.done, s));
  }
}

// Chunk k+1 is queued before chunk k is copied out on the host, so the two overlap.
void device_to_host(char* dst, const char* src, size_t n) {
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  cudaStream_t s = stream();
  const size_t chunks = (n + kStageBytes - 1) / kStageBytes;
  auto issue = [&](size_t c) {
    const size_t off = c * kStageBytes, len = std::min(kStageBytes, n - off);
    Stage& buf = st.stages[c % 2];
    OKD_CUDA_CHECK("to(cpu)", cudaMemcpyAsync(buf.host, src + off, len, cudaMemcpyDeviceToHost, s));
    OKD_CUDA_CHECK("to(cpu)", cudaEventRecord(buf.done, s));
  };
  if (chunks > 0) issue(0);
  for (size_t c = 0; c < chunks; ++c) {
    if (c + 1 < chunks) issue(c + 1);
    const size_t off = c * kStageBytes, len = std::min(kStageBytes, n - off);
    Stage& buf = st.stages[c % 2];
    OKD_CUDA_CHECK("to(cpu)", cudaEventSynchronize(buf.done));
    std::memcpy(dst + off, buf.host, len);
  }
}

}  // namespace

Allocator* caching_allocator() { return &allocator_instance(); }

AllocatorStats allocator_stats() { return allocator_instance().stats(); }

int begin_graph_pool() { return allocator_instance().begin_pool(); }
void end_graph_pool() { allocator_instance().end_pool(); }
void release_graph_pool(int pool) { allocator_instance().release_pool(pool); }

void empty_cache() { allocator_instance().empty_cache(); }

void device_copy(const Tensor& dst, const Tensor& src) {
  OKD_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() &&
                src.is_contiguous(),
            "device copy: expected contiguous tensors of one shape and dtype, got ", src.desc(),
            " -> ", dst.desc());
  if (dst.device().is_cuda()) check_device(dst, "to");
  if (src.device().is_cuda()) check_device(src, "to");
  if (dst.device().is_cpu()) note_host_sync("a device-to-host copy");
  if (src.device().is_cpu()) note_host_sync("a host-to-device copy");
  const size_t n = src.nbytes();
  dst.impl()->storage->bump_version();
  if (n == 0) return;
  char* d = static_cast<char*>(dst.device_raw_data());
  const char* s = static_cast<const char*>(src.device_raw_data());
  if (src.device().is_cpu() && dst.device().is_cuda()) {
    host_to_device(d, s, n);
  } else if (src.device().is_cuda() && dst.device().is_cpu()) {
    device_to_host(d, s, n);
    raise_device_error();  // the device's work up to this copy has finished
  } else if (src.device().is_cuda() && dst.device().is_cuda()) {
    OKD_CUDA_CHECK("to(cuda)", cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, stream()));
  } else {
    std::memcpy(d, s, n);
  }
}

}  // namespace okd::cuda
