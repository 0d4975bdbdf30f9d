// Optimizer base: parameter groups, the step loop (skip parameters without a gradient, count
// steps, bump versions, no tape) and the flat state_dict described in optimizer.h.
#include "optim/optimizer.h"

#include <algorithm>
#include <set>

#include "autograd/tape.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/copy.h"

namespace okd::optim {

namespace detail {

Tensor checked_grad(const char* op, const std::string& where, const Tensor& param,
                    const Tensor& grad) {
  OKD_CHECK(is_floating(param.dtype()), op, ": ", where, " must be float32 or float64, got ",
            param.desc());
  OKD_CHECK(param.is_contiguous(), op, ": ", where,
            " must be contiguous to be updated in place, got strides ", shape_str(param.strides()),
            " for shape ", shape_str(param.shape()));
  OKD_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype(), op,
            ": the gradient of ", where, " is ", grad.desc(), " but the parameter is ",
            param.desc());
  OKD_CHECK(grad.device() == param.device(), op, ": the gradient of ", where, " is on ",
            grad.device(), " but the parameter is on ", param.device());
  return grad.is_contiguous() ? grad : ops::contiguous(grad);
}

}  // namespace detail

namespace {

std::string param_where(const ParamGroup& g, size_t gi, size_t pi, const Tensor& p) {
  std::string s = str("group ", gi, g.name.empty() ? "" : " (" + g.name + ")", " parameter ", pi);
  if (p.defined() && !p.name().empty()) s += " '" + p.name() + "'";
  return s;
}

std::string param_prefix(size_t g, size_t i) { return str("group", g, ".param", i, "."); }

// Parses "group<g>.<rest>" into g and rest; false when the key has another form.
bool parse_group_key(const std::string& key, size_t& g, std::string& rest) {
  if (key.rfind("group", 0) != 0) return false;
  size_t dot = key.find('.', 5);
  if (dot == std::string::npos || dot == 5) return false;
  for (size_t k = 5; k < dot; ++k)
    if (key[k] < '0' || key[k] > '9') return false;
  g = std::stoul(key.substr(5, dot - 5));
  rest = key.substr(dot + 1);
  return true;
}

bool parse_param_key(const std::string& rest, size_t& i, std::string& field) {
  if (rest.rfind("param", 0) != 0) return false;
  size_t dot = rest.find('.', 5);
  if (dot == std::string::npos || dot == 5) return false;
  for (size_t k = 5; k < dot; ++k)
    if (rest[k] < '0' || rest[k] > '9') return false;
  i = std::stoul(rest.substr(5, dot - 5));
  field = rest.substr(dot + 1);
  return true;
}

double scalar_value(const std::string& key, const Tensor& t) {
  OKD_CHECK(t.numel() == 1, "Optimizer::load_state_dict: '", key, "' must hold one value, got ",
            t.desc());
  return t.item();
}

}  // namespace

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, double default_lr,
                     double default_weight_decay)
    : name_(std::move(name)), groups_(std::move(groups)) {
  OKD_CHECK(!groups_.empty(), name_, ": no parameter groups given");
  std::set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (g.lr == ParamGroup::kUseDefault) g.lr = default_lr;
    if (g.weight_decay == ParamGroup::kUseDefault) g.weight_decay = default_weight_decay;
    OKD_CHECK(g.lr >= 0, name_, ": group ", gi, " has lr ", g.lr, "; expected lr >= 0");
    OKD_CHECK(g.weight_decay >= 0, name_, ": group ", gi, " has weight_decay ", g.weight_decay,
              "; expected >= 0");
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      const Tensor& p = g.params[pi];
      OKD_CHECK(p.defined(), name_, ": ", param_where(g, gi, pi, p), " is an undefined tensor");
      OKD_CHECK(is_floating(p.dtype()), name_, ": ", param_where(g, gi, pi, p),
                " must be float32 or float64, got ", p.desc());
      // PyTorch refuses a parameter in two groups: it would be updated twice per step.
      OKD_CHECK(seen.insert(p.impl()).second, name_, ": ", param_where(g, gi, pi, p),
                " appears more than once in the parameter groups");
    }
    state_.emplace_back(g.params.size());
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  std::vector<std::pair<size_t, size_t>> updated;  // (group, param): counts a replay advances
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    std::vector<Tensor> params, grads;
    std::vector<ParamState*> states;
    for (size_t pi = 0; pi < g.params.size(); ++pi) {
      const Tensor& p = g.params[pi];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      grads.push_back(detail::checked_grad(name_.c_str(), param_where(g, gi, pi, p), p, grad));
      params.push_back(p);
      ParamState& s = state_[gi][pi];
      ++s.step;
      states.push_back(&s);
      updated.emplace_back(gi, pi);
    }
    update_group(g, params, grads, states);
    for (const Tensor& p : params) p.impl()->storage->bump_version();
  }
  ++steps_;
  if (cuda::capturing())
    cuda::on_replay([this, updated] {
      for (const auto& [gi, pi] : updated) {
        ParamState& s = state_[gi][pi];
        ++s.step;
        s.device_step.replayed(1);  // its device copy advanced in the replay (Adam)
      }
      ++steps_;
    });
}

void Optimizer::update_group(const ParamGroup& group, const std::vector<Tensor>& params,
                             const std::vector<Tensor>& grads,
                             const std::vector<ParamState*>& states) {
  for (size_t i = 0; i < params.size(); ++i) update(group, params[i], grads[i], *states[i]);
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& g : groups_)
    for (auto& p : g.params) {
      if (set_to_none) {
        p.set_grad(Tensor());
      } else if (Tensor grad = p.grad(); grad.defined()) {
        ops::fill_(grad, 0.0);
        grad.impl()->storage->bump_version();
      }
    }
}

void Optimizer::set_lr(double lr) {
  OKD_CHECK(lr >= 0, name_, "::set_lr: expected lr >= 0, got ", lr);
  for (auto& g : groups_) g.lr = lr;
}

const ParamState& Optimizer::state(size_t group, size_t index) const {
  OKD_CHECK(group < state_.size() && index < state_[group].size(), name_, "::state: no parameter ",
            index, " in group ", group, " (", state_.size(), " groups)");
  return state_[group][index];
}

nn::NamedTensors Optimizer::state_dict() const {
  nn::NamedTensors out;
  out.emplace_back("step", scalar_tensor(static_cast<double>(steps_), DType::Int64));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string gp = str("group", gi, ".");
    out.emplace_back(gp + "lr", scalar_tensor(groups_[gi].lr, DType::Float64));
    out.emplace_back(gp + "weight_decay", scalar_tensor(groups_[gi].weight_decay, DType::Float64));
    out.emplace_back(gp + "num_params",
                     scalar_tensor(static_cast<double>(groups_[gi].params.size()), DType::Int64));
    for (size_t pi = 0; pi < state_[gi].size(); ++pi) {
      const ParamState& s = state_[gi][pi];
      if (s.step == 0 && s.buffers.empty()) continue;
      const std::string pp = param_prefix(gi, pi);
      out.emplace_back(pp + "step", scalar_tensor(static_cast<double>(s.step), DType::Int64));
      // Copies, so a checkpoint written later is not changed by further steps.
      for (const auto& [name, buf] : s.buffers) out.emplace_back(pp + name, ops::clone(buf));
    }
  }
  return out;
}

void Optimizer::load_state_dict(const nn::NamedTensors& state) {
  const std::string op = name_ + "::load_state_dict";
  const std::vector<std::string> allowed = buffer_names();
  std::vector<std::vector<ParamState>> fresh(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) fresh[gi].resize(groups_[gi].params.size());
  std::vector<double> lrs, wds;
  for (const auto& g : groups_) {
    lrs.push_back(g.lr);
    wds.push_back(g.weight_decay);
  }
  int64_t steps = 0;
  bool have_steps = false;
  std::vector<std::string> problems;

  for (const auto& [key, t] : state) {
    if (key == "step") {
      steps = static_cast<int64_t>(scalar_value(key, t));
      have_steps = true;
      continue;
    }
    size_t gi = 0, pi = 0;
    std::string rest, field;
    if (!parse_group_key(key, gi, rest)) {
      problems.push_back("unexpected key '" + key + "'");
      continue;
    }
    if (gi >= groups_.size()) {
      problems.push_back(str("'", key, "' names group ", gi, " but the optimizer has ",
                             groups_.size(), " groups"));
      continue;
    }
    if (rest == "lr") {
      lrs[gi] = scalar_value(key, t);
    } else if (rest == "weight_decay") {
      wds[gi] = scalar_value(key, t);
    } else if (rest == "num_params") {
      auto n = static_cast<size_t>(scalar_value(key, t));
      if (n != groups_[gi].params.size())
        problems.push_back(str("group ", gi, " had ", n, " parameters when saved but has ",
                               groups_[gi].params.size(), " now"));
    } else if (parse_param_key(rest, pi, field)) {
      if (pi >= groups_[gi].params.size()) {
        problems.push_back(str("'", key, "' names parameter ", pi, " but group ", gi, " has ",
                               groups_[gi].params.size()));
        continue;
      }
      const Tensor& p = groups_[gi].params[pi];
      if (field == "step") {
        fresh[gi][pi].step = static_cast<int64_t>(scalar_value(key, t));
      } else if (std::find(allowed.begin(), allowed.end(), field) != allowed.end()) {
        if (t.shape() != p.shape()) {
          problems.push_back(str("'", key, "' has shape ", shape_str(t.shape()),
                                 " but the parameter has ", shape_str(p.shape())));
          continue;
        }
        // A fresh contiguous tensor of the parameter's dtype: the loaded dict stays independent.
        Tensor copy = empty(p.shape(), p.dtype(), p.device());
        ops::copy_(copy, t);
        fresh[gi][pi].buffers[field] = copy;
      } else {
        problems.push_back("unexpected key '" + key + "' (" + name_ + " keeps no '" + field + "')");
      }
    } else {
      problems.push_back("unexpected key '" + key + "'");
    }
  }
  if (!have_steps) problems.push_back("missing key 'step'");
  if (!problems.empty()) {
    std::string msg = op + ": the state does not fit this optimizer:";
    for (const auto& p : problems) msg += "\n  " + p;
    OKD_FAIL(msg);
  }
  state_ = std::move(fresh);
  steps_ = steps;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].lr = lrs[gi];
    groups_[gi].weight_decay = wds[gi];
  }
}

}  // namespace okd::optim
