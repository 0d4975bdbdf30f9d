// Name table of the op inventory.
#include "autograd/inventory.h"

namespace okd {

const char* op_name(Op op) {
  static const char* names[] = {
#define OKD_OP(name) #name,
#include "autograd/ops.def"
#undef OKD_OP
  };
  auto i = static_cast<size_t>(op);
  return i < static_cast<size_t>(Op::kCount) ? names[i] : "?";
}

const std::vector<Op>& all_ops() {
  static const std::vector<Op> ops = [] {
    std::vector<Op> v;
    for (uint16_t i = 0; i < static_cast<uint16_t>(Op::kCount); ++i)
      v.push_back(static_cast<Op>(i));
    return v;
  }();
  return ops;
}

}  // namespace okd
