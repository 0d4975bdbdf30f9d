// Registration of the methods that ship with okd (one line per method in builtin.cpp).
#pragma once

namespace okd::distill {

void register_builtin_methods();

}  // namespace okd::distill
