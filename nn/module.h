// Module: the base of every layer and network. It owns named parameters (leaves that require
// grad), buffers (state that is saved but not trained, e.g. BN running statistics) and child
// modules, and gives them PyTorch-style dotted names (layer1.0.conv1.weight) in the state_dict.
//
// Shared-weight blocks: a module (or a parameter) may be registered under one parent and *called*
// from several places in a forward; gradients from every call are summed by the tape, and the
// parameter appears once in parameters() and the state_dict because it is registered once.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace okd::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registration returns what it registered so a constructor can write w_ =
  // register_parameter(...).
  Tensor register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // Recursive views, in registration order, each parameter/buffer object listed once even when
  // it is reachable through several names (shared blocks).
  std::vector<Tensor> parameters() const;
  NamedTensors named_parameters() const;
  std::vector<Tensor> buffers() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  std::shared_ptr<Module> child(const std::string& name) const;

  // Parameter and buffer own (non-recursive) lookup; throw naming the module when missing.
  Tensor& param(const std::string& name);
  Tensor& buffer(const std::string& name);

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Calls fn on this module and every descendant (pre-order).
  void apply(const std::function<void(Module&)>& fn);
  // Drops every parameter's gradient (PyTorch's set_to_none default).
  void zero_grad();
  int64_t num_parameters() const;
  const std::string& type_name() const { return type_name_; }

  // Parameters then buffers, dotted names, in registration order.
  NamedTensors state_dict() const;
  struct LoadReport {
    std::vector<std::string> missing, unexpected, mismatched;
  };
  // Copies values into the existing tensors (so optimizers keep their references). strict: any
  // missing key, unexpected key or shape mismatch is an error listing all of them; non-strict
  // loads what matches and reports the rest.
  LoadReport load_state_dict(const NamedTensors& state, bool strict = true);

  // Converts every floating parameter and buffer to dtype (integer buffers such as
  // num_batches_tracked stay), or moves every parameter and buffer to device, in place: the
  // tensors keep their identity, so layers and later optimizers see the new data. Gradients are
  // dropped; build optimizers after calling these.
  void to(DType dtype);
  void to(Device device);

  // A multi-line tree of the module with parameter shapes (like PyTorch's repr).
  std::string to_string() const;

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void convert_tensors(const std::function<Tensor(const Tensor&)>& fn);

 private:
  void collect(const std::string& prefix, NamedTensors& out, bool params, bool dedupe,
               std::vector<const TensorImpl*>& seen) const;
  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

// safetensors: 8-byte little-endian header length, a JSON header mapping each name to dtype,
// shape and data_offsets, then the raw little-endian data. PyTorch's safetensors reads it.
// Writes atomically (a temporary file, then rename).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata = nullptr);

}  // namespace okd::nn
