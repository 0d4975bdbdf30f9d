// Module registration, recursive traversal, train/eval, state_dict and loading.
#include "nn/module.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "autograd/tape.h"
#include "tensor/ops/copy.h"

namespace okd::nn {

namespace {
void check_name(const std::string& owner, const std::string& name) {
  OKD_CHECK(!name.empty() && name.find('.') == std::string::npos, owner, ": invalid name '", name,
            "' (must be non-empty and contain no '.')");
}
template <class V>
bool has_name(const V& v, const std::string& name) {
  return std::any_of(v.begin(), v.end(), [&](const auto& p) { return p.first == name; });
}
}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_name(type_name_, name);
  OKD_CHECK(!has_name(params_, name) && !has_name(buffers_, name) && !has_name(children_, name),
            type_name_, ": '", name, "' is already registered");
  OKD_CHECK(value.defined(), type_name_, ": parameter '", name, "' is undefined");
  if (requires_grad) value.requires_grad_(true);
  if (value.name().empty()) value.set_name(name);
  params_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_name(type_name_, name);
  OKD_CHECK(!has_name(params_, name) && !has_name(buffers_, name) && !has_name(children_, name),
            type_name_, ": '", name, "' is already registered");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_name(type_name_, name);
  OKD_CHECK(module != nullptr, type_name_, ": child module '", name, "' is null");
  OKD_CHECK(!has_name(params_, name) && !has_name(buffers_, name) && !has_name(children_, name),
            type_name_, ": '", name, "' is already registered");
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool params, bool dedupe,
                     std::vector<const TensorImpl*>& seen) const {
  for (const auto& [n, t] : params ? params_ : buffers_) {
    if (!t.defined()) continue;
    if (dedupe) {
      if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) continue;
      seen.push_back(t.impl());
    }
    out.emplace_back(prefix + n, t);
  }
  for (const auto& [n, c] : children_) c->collect(prefix + n + ".", out, params, dedupe, seen);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect("", out, true, true, seen);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect("", out, false, true, seen);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> v;
  for (auto& p : named_parameters()) v.push_back(p.second);
  return v;
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> v;
  for (auto& p : named_buffers()) v.push_back(p.second);
  return v;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  std::function<void(const std::string&, const Module&)> walk = [&](const std::string& prefix,
                                                                    const Module& m) {
    for (const auto& [n, c] : m.children_) {
      out.emplace_back(prefix + n, c);
      walk(prefix + n + ".", *c);
    }
  };
  walk("", *this);
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  OKD_FAIL(type_name_, ": no child module named '", name, "'");
}

Tensor& Module::param(const std::string& name) {
  for (auto& [n, t] : params_)
    if (n == name) return t;
  OKD_FAIL(type_name_, ": no parameter named '", name, "'");
}

Tensor& Module::buffer(const std::string& name) {
  for (auto& [n, t] : buffers_)
    if (n == name) return t;
  OKD_FAIL(type_name_, ": no buffer named '", name, "'");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& [n, c] : children_) c->apply(fn);
}

void Module::zero_grad() {
  for (auto& p : parameters()) p.set_grad(Tensor());
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  NamedTensors b = named_buffers();
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Module::LoadReport Module::load_state_dict(const NamedTensors& state, bool strict) {
  LoadReport report;
  NamedTensors mine = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [n, t] : state) given[n] = &t;
  std::set<std::string> used;
  std::vector<std::pair<Tensor, const Tensor*>> to_copy;
  for (auto& [n, t] : mine) {
    auto it = given.find(n);
    if (it == given.end()) {
      report.missing.push_back(n);
      continue;
    }
    used.insert(n);
    if (it->second->shape() != t.shape()) {
      report.mismatched.push_back(n + ": checkpoint " + shape_str(it->second->shape()) +
                                  ", model " + shape_str(t.shape()));
      continue;
    }
    to_copy.emplace_back(t, it->second);
  }
  for (const auto& [n, t] : state)
    if (!used.count(n)) report.unexpected.push_back(n);
  bool bad = !report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty();
  if (strict && bad) {
    std::ostringstream os;
    os << "load_state_dict (" << type_name_ << "):";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << what << " (" << v.size() << "):";
      for (const auto& s : v) os << "\n    " << s;
    };
    list("missing keys", report.missing);
    list("unexpected keys", report.unexpected);
    list("shape mismatches", report.mismatched);
    throw Error(os.str());
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : to_copy) ops::copy_(dst, ops::to(*src, dst.device()));
  return report;
}

std::string Module::to_string() const {
  std::ostringstream os;
  std::function<void(const Module&, int)> walk = [&](const Module& m, int depth) {
    os << m.type_name_;
    if (!m.params_.empty()) {
      os << " (";
      for (size_t i = 0; i < m.params_.size(); ++i)
        os << (i ? ", " : "") << m.params_[i].first << shape_str(m.params_[i].second.shape());
      os << ")";
    }
    os << "\n";
    for (const auto& [n, c] : m.children_) {
      os << std::string(2 * (depth + 1), ' ') << n << ": ";
      walk(*c, depth + 1);
    }
  };
  walk(*this, 0);
  return os.str();
}

void Module::to(DType dtype) {
  OKD_CHECK(is_floating(dtype), type_name_, ".to: expected a floating dtype, got ",
            dtype_name(dtype));
  convert_tensors([dtype](const Tensor& t) {
    return is_floating(t.dtype()) && t.dtype() != dtype ? ops::to(t, dtype) : Tensor();
  });
}

void Module::to(Device device) {
  convert_tensors(
      [device](const Tensor& t) { return t.device() != device ? ops::to(t, device) : Tensor(); });
}

// Every parameter and buffer of the tree, once per tensor (a shared one converts on its first
// visit, after which fn returns undefined for it): replaced in place by fn's result if defined.
void Module::convert_tensors(const std::function<Tensor(const Tensor&)>& fn) {
  for (auto* list : {&params_, &buffers_})
    for (auto& [n, t] : *list)
      if (t.defined())
        if (Tensor converted = fn(t); converted.defined()) t.set_data(converted);
  for (auto& [n, c] : children_) c->convert_tensors(fn);
}

}  // namespace okd::nn
