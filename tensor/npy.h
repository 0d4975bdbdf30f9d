// NumPy .npy files (format 1.0/2.0/3.0; float32, float64, int64, uint8, bool read as uint8;
// little-endian; C order on write, C or Fortran order on read) for interop with NumPy/PyTorch.
#pragma once
#include <string>

#include "tensor/tensor.h"

namespace okd {

Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);

}  // namespace okd
