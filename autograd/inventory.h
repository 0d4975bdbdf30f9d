// The op inventory as an enum and a name table, generated from the X-macro list in ops.def.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace okd {

enum class Op : uint16_t {
#define OKD_OP(name) name,
#include "autograd/ops.def"
#undef OKD_OP
  kCount
};

const char* op_name(Op op);
// Every op in the inventory, in list order.
const std::vector<Op>& all_ops();

}  // namespace okd
