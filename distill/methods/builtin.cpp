// The built-in methods, registered by name for --method.
#include "distill/methods/builtin.h"

#include "distill/method.h"
#include "distill/methods/baseline.h"

namespace okd::distill {

void register_builtin_methods() {
  register_method("baseline", [] { return std::make_unique<BaselineMethod>(); });
}

}  // namespace okd::distill
