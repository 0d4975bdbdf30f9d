// Method defaults, option parsing and the registry.
#include "distill/method.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

#include "autograd/tape.h"
#include "distill/methods/builtin.h"
#include "optim/optimizer.h"

namespace okd::distill {

// ---- Options -------------------------------------------------------------------------------
void Options::declare(const std::string& key, const std::string& def, const std::string& help) {
  OKD_CHECK(!has(key), "option '", key, "' declared twice");
  specs_.push_back({key, def, help, def});
}

bool Options::has(const std::string& key) const {
  return std::any_of(specs_.begin(), specs_.end(), [&](const Spec& s) { return s.key == key; });
}

const Options::Spec& Options::find(const std::string& key) const {
  for (const auto& s : specs_)
    if (s.key == key) return s;
  std::string known;
  for (const auto& s : specs_) known += (known.empty() ? "" : ", ") + s.key;
  OKD_FAIL("unknown option '", key, "' (known: ", known.empty() ? "none" : known, ")");
}

void Options::set(const std::string& key, const std::string& value) {
  find(key);
  for (auto& s : specs_)
    if (s.key == key) s.value = value;
}

const std::string& Options::get(const std::string& key) const { return find(key).value; }

double Options::get_double(const std::string& key) const {
  const std::string& v = get(key);
  try {
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (...) {
  }
  OKD_FAIL("option '", key, "': expected a number, got '", v, "'");
}

int64_t Options::get_int(const std::string& key) const {
  const std::string& v = get(key);
  try {
    size_t used = 0;
    long long d = std::stoll(v, &used);
    if (used == v.size()) return d;
  } catch (...) {
  }
  OKD_FAIL("option '", key, "': expected an integer, got '", v, "'");
}

bool Options::get_bool(const std::string& key) const {
  const std::string& v = get(key);
  if (v == "true" || v == "1" || v == "on" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "off" || v == "no") return false;
  OKD_FAIL("option '", key, "': expected true or false, got '", v, "'");
}

// ---- Method defaults -------------------------------------------------------------------------
std::vector<ParamGroup> Method::param_groups() const {
  ParamGroup g;
  g.name = "all";
  std::vector<const TensorImpl*> seen;
  for (const auto& [n, net] : networks())
    for (const auto& p : net->parameters()) {
      if (std::find(seen.begin(), seen.end(), p.impl()) != seen.end()) continue;
      seen.push_back(p.impl());
      g.params.push_back(p);
    }
  return {g};
}

void Method::update(StepResult& result, optim::Optimizer& main, const TrainClock&) {
  main.zero_grad();
  backward(result.loss);
  main.step();
}

Recipe Method::reference_recipe(const std::string&, const std::string&) const {
  Recipe r;
  r.source = "classic.md §1.5, the common online-KD protocol";
  r.epochs = 300;
  r.batch_size = 128;
  r.lr = 0.1;
  r.momentum = 0.9;
  r.nesterov = true;
  r.weight_decay = 5e-4;
  r.milestones = std::vector<double>{150, 225};
  r.gamma = 0.1;
  r.augment = "standard";
  r.padding = "zero";
  r.normalize = "dataset";
  return r;
}

void Method::set_training(bool on) const {
  for (const auto& [n, net] : networks()) net->train(on);
}

int64_t Method::num_parameters() const {
  int64_t total = 0;
  for (const auto& g : param_groups())
    for (const auto& p : g.params) total += p.numel();
  return total;
}

// ---- registry --------------------------------------------------------------------------------
namespace {
std::map<std::string, MethodFactory>& raw_registry() {
  static std::map<std::string, MethodFactory> r;
  return r;
}
// The registry with the built-in methods added on first use (explicitly, not by static
// initialisers, which a static library's linker may drop).
std::map<std::string, MethodFactory>& registry() {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_methods(); });
  return raw_registry();
}
}  // namespace

void register_method(const std::string& name, MethodFactory factory) {
  raw_registry()[name] = std::move(factory);
}

std::vector<std::string> method_names() {
  std::vector<std::string> v;
  for (const auto& [n, f] : registry()) v.push_back(n);
  return v;
}

std::unique_ptr<Method> make_method(const std::string& name) {
  auto& r = registry();
  auto it = r.find(name);
  if (it == r.end()) {
    std::string known;
    for (const auto& [n, f] : r) known += (known.empty() ? "" : ", ") + n;
    OKD_FAIL("unknown method '", name, "' (known: ", known, ")");
  }
  return it->second();
}

std::vector<optim::ParamGroup> optimizer_groups(const Method& m, double lr, double weight_decay) {
  std::vector<optim::ParamGroup> groups;
  for (const auto& g : m.param_groups()) {
    optim::ParamGroup og;
    og.params = g.params;
    og.name = g.name;
    og.lr = lr * g.lr_scale.value_or(1.0);
    og.weight_decay = g.weight_decay.value_or(weight_decay);
    groups.push_back(std::move(og));
  }
  return groups;
}

std::unique_ptr<Method> make_method_from_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  auto m = make_method(spec.substr(0, colon));
  if (colon == std::string::npos) return m;
  std::stringstream options(spec.substr(colon + 1));
  for (std::string kv; std::getline(options, kv, ',');) {
    const size_t eq = kv.find('=');
    OKD_CHECK(eq != std::string::npos && eq > 0, "method spec '", spec, "': '", kv,
              "' is not KEY=VALUE");
    m->options().set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return m;
}

}  // namespace okd::distill
