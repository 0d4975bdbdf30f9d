// The --device flag of okd's programs (device_flag.h).
#include "apps/lib/device_flag.h"

#include "tensor/cuda/cuda_ops.h"
#include "tensor/storage.h"

namespace okd::apps {

Device device_from_flag(const std::string& name) {
  const Device device = Device::parse(name);
  if (device.is_cuda())
    OKD_CHECK(has_allocator(DeviceType::CUDA), "--device ", name, ": ", cuda::unavailable_reason(),
              "; use --device cpu (OKD_CUDA_EMULATE=1 emulates cuda:0 on the CPU, for testing)");
  return device;
}

}  // namespace okd::apps
