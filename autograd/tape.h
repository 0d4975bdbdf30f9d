// The tape: a thread-local list, in execution order, of one entry per differentiable op whose
// inputs require grad. backward(loss) walks it once in reverse, from the entry that produced the
// loss down to the first, handing each entry the gradient of its outputs and routing the
// gradients it returns to the entries that produced its inputs, or into .grad for leaves.
//
// Gradient-accumulation contract (llm.c style, stated once): a leaf's .grad is *accumulated*
// (+=) across backward calls until the caller resets it (Module::zero_grad, or set_grad({}));
// gradients of non-leaves live only during one backward unless retain_grad() was called.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/inventory.h"
#include "tensor/tensor.h"

namespace okd {

using TensorList = std::vector<Tensor>;

// ---- grad mode ---------------------------------------------------------------------------------
bool grad_enabled();
void set_grad_enabled(bool enabled);
// Ops run under a NoGradGuard are not recorded and their outputs do not require grad.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// A tensor saved for the backward, with the storage version it had when saved: reading it back
// after an in-place change is an error naming the op, not a silently wrong gradient.
struct Saved {
  Tensor tensor;
  uint64_t version = 0;
  Saved() = default;
  explicit Saved(const Tensor& t)
      : tensor(t), version(t.defined() ? t.impl()->storage->version() : 0) {}
  const Tensor& get(Op op) const;
};

// Receives the gradient of every output (zeros for outputs that got none) and which inputs need
// one; returns one gradient per input (undefined where not needed). Runs under NoGradGuard.
using BackwardFn = std::function<TensorList(const TensorList& grad_outputs,
                                            const std::vector<bool>& needs_input_grad)>;

// A BackwardFn that may add its gradient for input j into into[j] instead of returning a new
// tensor (the opt-in of record_into). backward() sets into[j] only where input j already has a
// gradient from another consumer that nothing else can see (its only handle is the tape's slot;
// same shape, dtype and device as the input); elsewhere into[j] is undefined. Returning into[j]
// itself as gradient j means "into[j] + my gradient, computed in place": the tape takes it as
// the accumulated gradient instead of adding. Returning any other tensor (or ignoring into[j],
// which must then be left unmodified) is accumulated as for a BackwardFn.
using BackwardIntoFn =
    std::function<TensorList(const TensorList& grad_outputs,
                             const std::vector<bool>& needs_input_grad, const TensorList& into)>;

struct TapeEntry {
  struct Input {
    bool needs_grad = false;
    int64_t producer = -1;             // entry that made it; -1 for a leaf
    int slot = 0;                      // which output of that entry
    std::shared_ptr<TensorImpl> leaf;  // held only for leaves that require grad
    Shape shape;
    std::string name;
  };
  struct Output {
    Shape shape;
    DType dtype;
    Device device;
    std::weak_ptr<TensorImpl> tensor;  // weak: the tape never keeps activations alive itself
  };
  Op op;
  std::vector<Input> inputs;
  std::vector<Output> outputs;
  BackwardFn backward;
  BackwardIntoFn backward_into;  // set instead of backward by record_into
  size_t saved_bytes = 0;
  TensorList grads;  // filled during backward
};

class Tape {
 public:
  // The calling thread's tape.
  static Tape& current();

  const std::vector<TapeEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  uint64_t generation() const { return generation_; }
  // Drops every entry; tensors produced by them can no longer be differentiated through.
  void clear();
  size_t saved_bytes() const;

  // Appends an entry for op and marks outputs as produced by it (they then require grad).
  void record(Op op, const TensorList& inputs, const TensorList& outputs, BackwardFn backward,
              const TensorList& saved = {});
  // The same with a BackwardIntoFn: the op can add an input's gradient into the one it has already
  // received (conv2d: cuDNN's beta = 1), saving the separate add and its kernel launch.
  void record_into(Op op, const TensorList& inputs, const TensorList& outputs,
                   BackwardIntoFn backward, const TensorList& saved = {});

 private:
  TapeEntry& append(Op op, const TensorList& inputs, const TensorList& outputs,
                    const TensorList& saved);
  friend void backward(const Tensor&, const Tensor&, bool);
  std::vector<TapeEntry> entries_;
  uint64_t generation_ = 1;
};

// True when grad mode is on and any input requires grad: the op must be recorded.
bool needs_record(const TensorList& inputs);
inline bool needs_record(const Tensor& a) { return needs_record(TensorList{a}); }

// Shorthand used by every differentiable function.
inline void record(Op op, const TensorList& inputs, const TensorList& outputs, BackwardFn fn,
                   const TensorList& saved = {}) {
  Tape::current().record(op, inputs, outputs, std::move(fn), saved);
}
inline void record_into(Op op, const TensorList& inputs, const TensorList& outputs,
                        BackwardIntoFn fn, const TensorList& saved = {}) {
  Tape::current().record_into(op, inputs, outputs, std::move(fn), saved);
}

// Backpropagates from loss. grad_output seeds it (required unless loss has one element).
// Without retain_graph the tape is cleared afterwards, and a second backward through the same
// graph is an error.
void backward(const Tensor& loss, const Tensor& grad_output = {}, bool retain_graph = false);

// A view of t sharing storage that does not require grad and has no producer.
Tensor detach(const Tensor& t);

// ---- audit
// --------------------------------------------------------------------------------------- One line
// per entry: index, op, input shapes (leaf names where set), output shapes, saved bytes.
std::string tape_dump();
// Graphviz DOT of the entries and leaves the loss depends on.
std::string tape_dot(const Tensor& loss);

}  // namespace okd
