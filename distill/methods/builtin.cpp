// The built-in methods, registered by name for --method.
#include "distill/methods/builtin.h"

#include "distill/method.h"
#include "distill/methods/baseline.h"
#include "distill/methods/ekd_fws.h"

namespace okd::distill {

void register_builtin_methods() {
  register_method("baseline", [] { return std::make_unique<BaselineMethod>(); });
  register_method("ekd-fws", [] { return std::make_unique<EkdFwsMethod>(); });
}

}  // namespace okd::distill
