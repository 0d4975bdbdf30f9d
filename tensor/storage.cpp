// CPU memory (aligned, with a caching allocator for large blocks) and the per-device allocator
// table.
#include "tensor/storage.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "tensor/error.h"

namespace okd {

size_t allocation_size_class(size_t nbytes) {
  constexpr size_t kMin = 512;
  if (nbytes <= kMin) return kMin;
  // base = the largest power of two below nbytes; classes step by base / 4 up to 2 base.
  const size_t base = std::bit_floor(nbytes - 1);
  const size_t step = base / 4;
  return base + (nbytes - base + step - 1) / step * step;
}

namespace {
constexpr size_t kAlignment = 64;
// Blocks from this size up are cached; smaller ones come from malloc's own bins. Under
// AddressSanitizer nothing is cached, so that a use after free stays detectable.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheFrom = SIZE_MAX;
#else
constexpr size_t kCacheFrom = 64 * 1024;
#endif
// Free blocks beyond this many bytes go back to the system.
constexpr size_t kCacheLimit = size_t{8} << 30;

void* aligned_or_null(size_t nbytes) {
  const size_t rounded = std::max(kAlignment, (nbytes + kAlignment - 1) / kAlignment * kAlignment);
  return std::aligned_alloc(kAlignment, rounded);
}

// CPU memory, 64-byte aligned. Blocks of 64 KiB and more are a caching allocator's, as on the GPU
// (tensor/cuda/allocator.h): rounded up to a size class and kept on that class's free list when
// freed, so the activations of a training step reuse the last step's blocks. Plain malloc/free
// hands such blocks back to the kernel and faults them in again on the next step (measured on
// ResNet-32 training: 25,000 page faults and 10% of the time in the kernel per step).
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes < kCacheFrom) {
      void* p = aligned_or_null(nbytes);
      if (!p) OKD_FAIL("out of memory: could not allocate ", nbytes, " bytes on the CPU");
      return p;
    }
    const size_t size = allocation_size_class(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        return p;
      }
    }
    void* p = aligned_or_null(size);
    if (!p) {  // give the cache back to the system and try once more
      release_cache();
      p = aligned_or_null(size);
    }
    if (!p) OKD_FAIL("out of memory: could not allocate ", nbytes, " bytes on the CPU");
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (nbytes < kCacheFrom) {
      std::free(p);
      return;
    }
    const size_t size = allocation_size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + size > kCacheLimit) {
      std::free(p);
      return;
    }
    free_[size].push_back(p);
    cached_ += size;
  }
  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

Allocator*& slot(DeviceType type) {
  // Never destroyed: tensors in static storage may be freed after every other object at exit.
  static CpuAllocator* cpu = new CpuAllocator;
  static Allocator* table[2] = {cpu, nullptr};
  return table[static_cast<int>(type)];
}
}  // namespace

void set_allocator(DeviceType type, Allocator* allocator) { slot(type) = allocator; }

bool has_allocator(DeviceType type) { return slot(type) != nullptr; }

Allocator* get_allocator(DeviceType type) {
  Allocator* a = slot(type);
  if (!a) {
    OKD_FAIL("device ", Device(type).str(),
             " is not available: this build of okd has no CUDA backend or no GPU was found");
  }
  return a;
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = get_allocator(device.type)->allocate(nbytes);
}

Storage::Storage(std::shared_ptr<Storage> base, Device as_device)
    : data_(base->data()), nbytes_(base->nbytes()), device_(as_device), base_(std::move(base)) {}

Storage::~Storage() {
  if (data_ && !base_) get_allocator(device_.type)->deallocate(data_, nbytes_);
}

}  // namespace okd
