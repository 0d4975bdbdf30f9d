// The built-in methods, registered by name for --method.
#include "distill/methods/builtin.h"

#include "distill/method.h"
#include "distill/methods/adversarial.h"
#include "distill/methods/baseline.h"
#include "distill/methods/cl_ilr.h"
#include "distill/methods/dkel.h"
#include "distill/methods/dml.h"
#include "distill/methods/ekd_fws.h"
#include "distill/methods/ffl.h"
#include "distill/methods/ffsd.h"
#include "distill/methods/kd.h"
#include "distill/methods/kdcl.h"
#include "distill/methods/mate.h"
#include "distill/methods/mcl.h"
#include "distill/methods/multi_exit.h"
#include "distill/methods/okddip.h"
#include "distill/methods/one.h"
#include "distill/methods/pcl.h"

namespace okd::distill {

void register_builtin_methods() {
  register_method("baseline", [] { return std::make_unique<BaselineMethod>(); });
  register_method("ekd-fws", [] { return std::make_unique<EkdFwsMethod>(); });
  register_method("ffl", [] { return std::make_unique<FflMethod>(); });
  register_method("dkel", [] { return std::make_unique<DkelMethod>(); });
  register_method("ffsd", [] { return std::make_unique<FfsdMethod>(); });
  register_method("mate", [] { return std::make_unique<MateMethod>(); });
  register_method("dml", [] { return std::make_unique<DmlMethod>(); });
  register_method("kd", [] { return std::make_unique<KdMethod>(); });
  register_method("at", [] { return std::make_unique<AtMethod>(); });
  register_method("one", [] { return std::make_unique<OneMethod>(); });
  register_method("okddip", [] { return std::make_unique<OkddipMethod>(); });
  register_method("kdcl", [] { return std::make_unique<KdclMethod>(); });
  register_method("cl-ilr", [] { return std::make_unique<ClIlrMethod>(); });
  register_method("pcl", [] { return std::make_unique<PclMethod>(); });
  register_method("mcl", [] { return std::make_unique<MclMethod>(); });
  register_method("byot", [] { return std::make_unique<ByotMethod>(); });
  register_method("eed", [] { return std::make_unique<EedMethod>(); });
  register_method("phuong", [] { return std::make_unique<PhuongMethod>(); });
  register_method("afd", [] { return std::make_unique<AfdMethod>(); });
  register_method("amln", [] { return std::make_unique<AmlnMethod>(); });
}

}  // namespace okd::distill
