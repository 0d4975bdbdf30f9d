// Storage: one reference-counted block of memory shared by a tensor and all its views.
// CPU memory is 64-byte aligned. Other devices plug in an Allocator (tensor/cuda/ does for CUDA).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace okd {

struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
};

// Registers the allocator of a device type (the CUDA backend does this at start-up).
void set_allocator(DeviceType type, Allocator* allocator);
Allocator* get_allocator(DeviceType type);
bool has_allocator(DeviceType type);

// The size class of an allocation of nbytes in okd's caching allocators (CPU blocks of 64 KiB and
// more, and every CUDA block): 512 bytes at least, then four classes per power of two (2^k times
// 1, 1.25, 1.5, 1.75), so a cached block is at most 25% larger than the request.
size_t allocation_size_class(size_t nbytes);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // An alias of base's memory labelled with another device, keeping base alive and never freeing
  // it. Only the CUDA emulator (tensor/cuda/emulator.cpp) uses it: its "device" memory is host
  // memory, and it runs the CPU kernels on CPU-labelled aliases of cuda:0 tensors.
  Storage(std::shared_ptr<Storage> base, Device as_device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Bumped by every in-place write; autograd compares it with the value it saw when it saved a
  // tensor, so a saved tensor modified before backward is an error rather than a wrong gradient.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::shared_ptr<Storage> base_;  // set for an alias: the storage that owns data_
  uint64_t version_ = 0;
};

}  // namespace okd
