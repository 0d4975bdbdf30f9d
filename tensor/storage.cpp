// CPU aligned allocation and the per-device allocator table.
#include "tensor/storage.h"

#include <malloc.h>

#include <cstdlib>
#include <new>

#include "tensor/error.h"

namespace okd {

namespace {
constexpr size_t kAlignment = 64;

struct CpuAllocator final : Allocator {
  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
    if (rounded == 0) rounded = kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) OKD_FAIL("out of memory: could not allocate ", nbytes, " bytes on the CPU");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};

// glibc returns large blocks to the OS on free and maps them again on the next allocation, so every
// training step would page-fault its activations in anew. Raising the mmap and trim thresholds
// keeps freed blocks in the heap for reuse (what a caching allocator does, at no code cost).
const bool g_malloc_tuned = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

Allocator*& slot(DeviceType type) {
  static CpuAllocator cpu;
  static Allocator* table[2] = {&cpu, nullptr};
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
