// The built-in methods, registered by name for --method.
#include "distill/methods/builtin.h"

#include "distill/method.h"
#include "distill/methods/baseline.h"
#include "distill/methods/dkel.h"
#include "distill/methods/ekd_fws.h"
#include "distill/methods/ffl.h"
#include "distill/methods/ffsd.h"
#include "distill/methods/mate.h"

namespace okd::distill {

void register_builtin_methods() {
  register_method("baseline", [] { return std::make_unique<BaselineMethod>(); });
  register_method("ekd-fws", [] { return std::make_unique<EkdFwsMethod>(); });
  register_method("ffl", [] { return std::make_unique<FflMethod>(); });
  register_method("dkel", [] { return std::make_unique<DkelMethod>(); });
  register_method("ffsd", [] { return std::make_unique<FfsdMethod>(); });
  register_method("mate", [] { return std::make_unique<MateMethod>(); });
}

}  // namespace okd::distill
