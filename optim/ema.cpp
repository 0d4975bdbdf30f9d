// Temporal-mean (EMA) parameters with PCL/DKEL's warm-up decay (see ema.h).
#include "optim/ema.h"

#include <algorithm>
#include <limits>

#include "autograd/tape.h"
#include "optim/optimizer.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"

namespace okd::optim {

namespace {
using TensorPairs = std::pair<std::vector<Tensor>, std::vector<Tensor>>;

TensorPairs pair_by_name(const nn::Module& averaged, const nn::Module& source) {
  const nn::NamedTensors a = averaged.named_parameters(), s = source.named_parameters();
  OKD_CHECK(a.size() == s.size(), "Ema: the averaged network has ", a.size(),
            " parameters but the source has ", s.size());
  TensorPairs out;
  for (size_t i = 0; i < a.size(); ++i) {
    OKD_CHECK(a[i].first == s[i].first, "Ema: parameter ", i, " is '", a[i].first,
              "' in the averaged network but '", s[i].first, "' in the source");
    out.first.push_back(a[i].second);
    out.second.push_back(s[i].second);
  }
  return out;
}
}  // namespace

Ema::Ema(std::vector<Tensor> averaged, std::vector<Tensor> source, EmaOptions options)
    : averaged_(std::move(averaged)), source_(std::move(source)), options_(options) {
  OKD_CHECK(options_.decay >= 0 && options_.decay <= 1, "Ema: expected decay in [0, 1], got ",
            options_.decay);
  OKD_CHECK(averaged_.size() == source_.size(), "Ema: ", averaged_.size(), " averaged tensors but ",
            source_.size(), " source tensors");
  for (size_t i = 0; i < averaged_.size(); ++i) {
    const Tensor &a = averaged_[i], &s = source_[i];
    OKD_CHECK(a.defined() && s.defined(), "Ema: tensor pair ", i, " has an undefined tensor");
    OKD_CHECK(a.shape() == s.shape() && a.dtype() == s.dtype(), "Ema: pair ", i,
              " differs: averaged ", a.desc(), " vs source ", s.desc());
    OKD_CHECK(a.device() == s.device() && is_floating(a.dtype()), "Ema: pair ", i,
              " must be float tensors on one device, got ", a.desc(), " and ", s.desc());
    OKD_CHECK(!a.shares_storage(s), "Ema: pair ", i, " shares storage with its source");
  }
}

Ema::Ema(const nn::Module& averaged, const nn::Module& source, EmaOptions options)
    : Ema(pair_by_name(averaged, source), options) {}

Ema::Ema(std::pair<std::vector<Tensor>, std::vector<Tensor>> pairs, EmaOptions options)
    : Ema(std::move(pairs.first), std::move(pairs.second), options) {}

double Ema::alpha(int64_t t) const {
  if (!options_.warmup) return options_.decay;
  return std::min(1.0 - 1.0 / static_cast<double>(t + 1), options_.decay);
}

void Ema::update() {
  NoGradGuard no_grad;
  if (options_.warmup) {
    update_counted();
  } else {
    const double a = options_.decay;  // constant: a captured step may freeze it
    for (size_t i = 0; i < averaged_.size(); ++i) {
      // PCL: ema.mul_(alpha).add_(param, alpha=1 - alpha), on the tensors' device.
      ops::mul_(averaged_[i], a);
      ops::add_(averaged_[i], source_[i], 1 - a);
    }
  }
  ++steps_;
  if (cuda::capturing())
    cuda::on_replay([this] {
      ++steps_;
      if (options_.warmup) count_.replayed(1);
    });
}

// alpha_t = min(1 - 1/(t + 1), decay) from the device count t, in float64 as alpha() computes it.
void Ema::update_counted() {
  if (averaged_.empty()) return;
  const Tensor t =
      ops::to(count_.holding(averaged_.front().device(), steps_, "Ema"), DType::Float64);
  const Tensor a = ops::clamp(ops::rsub(1.0, ops::rdiv(1.0, ops::add(t, 1.0))),
                              -std::numeric_limits<double>::infinity(), options_.decay);
  const Tensor b = ops::rsub(1.0, a);
  Tensor a_t, b_t;  // a and b in the tensors' dtype
  for (size_t i = 0; i < averaged_.size(); ++i) {
    const DType dt = averaged_[i].dtype();
    if (!a_t.defined() || a_t.dtype() != dt) {
      a_t = ops::to(a, dt);
      b_t = ops::to(b, dt);
    }
    ops::mul_(averaged_[i], a_t);
    ops::add_(averaged_[i], ops::mul(source_[i], b_t));
  }
  count_.advance(1);
}

nn::NamedTensors Ema::state_dict() const {
  return {{"step", scalar_tensor(static_cast<double>(steps_), DType::Int64)}};
}

void Ema::load_state_dict(const nn::NamedTensors& state) {
  bool found = false;
  for (const auto& [k, t] : state) {
    OKD_CHECK(k == "step", "Ema::load_state_dict: unexpected key '", k, "' (expected only 'step')");
    OKD_CHECK(t.numel() == 1, "Ema::load_state_dict: 'step' must hold one value, got ", t.desc());
    steps_ = static_cast<int64_t>(t.item());
    found = true;
  }
  OKD_CHECK(found, "Ema::load_state_dict: missing key 'step'");
}

}  // namespace okd::optim
