// Element types of okd tensors and the dispatch macros that turn a runtime dtype into a C++ type.
#pragma once
#include <cstddef>
#include <cstdint>
#include <ostream>

namespace okd {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32:
      return 4;
    case DType::Float64:
      return 8;
    case DType::Int64:
      return 8;
    case DType::UInt8:
      return 1;
  }
  return 0;
}
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int64:
      return "int64";
    case DType::UInt8:
      return "uint8";
  }
  return "?";
}
constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// How a float32 convolution or matrix product forms its products (mixed precision).
//   Float32:  as stored.
//   BFloat16: the operands are rounded to bfloat16 (8 significant bits, round to nearest even),
//             multiplied and accumulated in float32, and the result is rounded to bfloat16; it is
//             held in float32 storage. This is what cuDNN/cuBLAS compute with bf16 operands and
//             float32 accumulation, and what PyTorch's bf16 autocast computes for conv and linear.
// Ignored by float64 ops (as PyTorch's autocast leaves float64 alone).
enum class Precision : uint8_t { Float32, BFloat16 };
constexpr const char* precision_name(Precision p) {
  return p == Precision::BFloat16 ? "bf16" : "float32";
}

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::Float32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::Float64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::Int64;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::UInt8;
};
template <class T>
inline constexpr DType dtype_v = dtype_of<T>::value;

}  // namespace okd

// OKD_DISPATCH_ALL(dtype, "op", [&]<class scalar_t>() { ... }) calls the lambda with scalar_t
// bound to the C++ type of dtype. OKD_DISPATCH_FLOAT does the same for float32/float64 only and
// throws for integer dtypes, naming the op.
#define OKD_DISPATCH_ALL(DT, OPNAME, ...)                      \
  [&] {                                                        \
    auto okd_fn_ = __VA_ARGS__;                                \
    switch (DT) {                                              \
      case ::okd::DType::Float32:                              \
        return okd_fn_.template operator()<float>();           \
      case ::okd::DType::Float64:                              \
        return okd_fn_.template operator()<double>();          \
      case ::okd::DType::Int64:                                \
        return okd_fn_.template operator()<int64_t>();         \
      case ::okd::DType::UInt8:                                \
        return okd_fn_.template operator()<uint8_t>();         \
    }                                                          \
    throw ::okd::Error(::okd::str(OPNAME, ": unknown dtype")); \
  }()

#define OKD_DISPATCH_FLOAT(DT, OPNAME, ...)                                               \
  [&] {                                                                                   \
    auto okd_fn_ = __VA_ARGS__;                                                           \
    switch (DT) {                                                                         \
      case ::okd::DType::Float32:                                                         \
        return okd_fn_.template operator()<float>();                                      \
      case ::okd::DType::Float64:                                                         \
        return okd_fn_.template operator()<double>();                                     \
      default:                                                                            \
        break;                                                                            \
    }                                                                                     \
    throw ::okd::Error(::okd::str(OPNAME, ": expected a float32 or float64 tensor, got ", \
                                  ::okd::dtype_name(DT)));                                \
  }()
