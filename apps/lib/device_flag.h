// The --device flag of okd's programs: "cpu", "cuda" or "cuda:N", refused with the reason when
// the CUDA backend cannot be used here.
#pragma once
#include <string>

#include "tensor/device.h"

namespace okd::apps {

// Throws okd::Error for an unknown name, or for cuda where this build or machine has no usable
// GPU (naming the reason and the CPU emulation that tests can use instead).
Device device_from_flag(const std::string& name);

}  // namespace okd::apps
