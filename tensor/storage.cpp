// CPU aligned allocation and the per-device allocator table.
#include "tensor/storage.h"

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

Allocator*& slot(DeviceType type) {
  static CpuAllocator cpu;
  static Allocator* table[2] = {&cpu, nullptr};
  return table[static_cast<int>(type)];
}
}  // namespace

void set_allocator(DeviceType type, Allocator* allocator) { slot(type) = allocator; }

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

Storage::~Storage() {
  if (data_) get_allocator(device_.type)->deallocate(data_, nbytes_);
}

}  // namespace okd
