// The tape, grad mode and the backward walk. See tape.h for the contract and docs/autograd.md
// for a worked example.
#include "autograd/tape.h"

#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"

namespace okd {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

const Tensor& Saved::get(Op op) const {
  if (tensor.defined() && tensor.impl()->storage->version() != version) {
    OKD_FAIL("backward of ", op_name(op), ": a tensor it saved (", tensor.desc(),
             ") was modified in place after the forward (version ", version, " -> ",
             tensor.impl()->storage->version(),
             "); clone it before modifying, or modify after backward");
  }
  return tensor;
}

Tape& Tape::current() {
  thread_local Tape tape;
  return tape;
}

void Tape::clear() {
  entries_.clear();
  ++generation_;
}

size_t Tape::saved_bytes() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.saved_bytes;
  return n;
}

bool needs_record(const TensorList& inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void Tape::record(Op op, const TensorList& inputs, const TensorList& outputs, BackwardFn backward,
                  const TensorList& saved) {
  append(op, inputs, outputs, saved).backward = std::move(backward);
}

void Tape::record_into(Op op, const TensorList& inputs, const TensorList& outputs,
                       BackwardIntoFn backward, const TensorList& saved) {
  append(op, inputs, outputs, saved).backward_into = std::move(backward);
}

TapeEntry& Tape::append(Op op, const TensorList& inputs, const TensorList& outputs,
                        const TensorList& saved) {
  TapeEntry e;
  e.op = op;
  e.inputs.reserve(inputs.size());
  for (const auto& t : inputs) {
    TapeEntry::Input in;
    if (t.defined()) {
      in.shape = t.shape();
      const AutogradMeta& m = t.impl()->autograd;
      in.needs_grad = m.requires_grad;
      in.name = m.name;
      if (m.requires_grad && m.producer >= 0) {
        OKD_CHECK(m.generation == generation_ && m.producer < static_cast<int64_t>(entries_.size()),
                  op_name(op), ": an input (", t.desc(),
                  ") was produced by a graph that backward() "
                  "has already consumed and freed; detach() it, or pass retain_graph to backward");
        in.producer = m.producer;
        in.slot = m.slot;
      } else if (m.requires_grad) {
        in.leaf = t.impl_ptr();
      }
    }
    e.inputs.push_back(std::move(in));
  }
  const int64_t index = static_cast<int64_t>(entries_.size());
  for (size_t k = 0; k < outputs.size(); ++k) {
    const Tensor& t = outputs[k];
    AutogradMeta& m = t.impl()->autograd;
    m.requires_grad = true;
    m.producer = index;
    m.slot = static_cast<int>(k);
    m.generation = generation_;
    e.outputs.push_back({t.shape(), t.dtype(), t.device(), t.impl_ptr()});
  }
  for (const auto& s : saved)
    if (s.defined()) e.saved_bytes += s.nbytes();
  entries_.push_back(std::move(e));
  return entries_.back();
}

namespace {
// Whether nothing but this handle can see t's memory: its TensorImpl and its storage have no
// other owner, and it covers the storage exactly (contiguous, from the start). Such a gradient
// can become a leaf's .grad as it is, without a copy (PyTorch's AccumulateGrad does the same);
// any other could alias a tensor that a later in-place update of .grad (add_, clipping, weight
// decay) would then write into.
bool exclusively_owned(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1 && t.is_contiguous() &&
         t.offset() == 0 && t.nbytes() == t.impl()->storage->nbytes();
}

// a += b where a may be undefined (then a = b). Never writes into b's storage.
void accumulate(Tensor& a, const Tensor& b) {
  if (!a.defined())
    a = b;
  else
    a = ops::add(a, b);
}

// For an entry recorded with record_into: into[j] is the gradient input j has already received
// when the op may add its own into it in place, else undefined. That needs a producer (a leaf's
// .grad is the user's and is accumulated as before) whose slot holds a tensor that nothing but the
// slot sees (exclusively_owned: no other handle, no view, no retained or saved copy, so the write
// is observable through the slot alone) of the producer output's shape, dtype and device; and an
// input whose producer slot appears once among the entry's inputs (op(x, x) would write it twice).
TensorList accumulation_buffers(std::vector<TapeEntry>& entries, const TapeEntry& e) {
  TensorList into(e.inputs.size());
  for (size_t j = 0; j < e.inputs.size(); ++j) {
    const TapeEntry::Input& in = e.inputs[j];
    if (!in.needs_grad || in.producer < 0) continue;
    TapeEntry& p = entries[in.producer];
    if (static_cast<size_t>(in.slot) >= p.grads.size() || !p.grads[in.slot].defined()) continue;
    bool repeated = false;
    for (size_t k = 0; k < e.inputs.size(); ++k)
      repeated |= k != j && e.inputs[k].needs_grad && e.inputs[k].producer == in.producer &&
                  e.inputs[k].slot == in.slot;
    const Tensor& g = p.grads[in.slot];
    const TapeEntry::Output& out = p.outputs[in.slot];
    if (repeated || !exclusively_owned(g) || g.shape() != out.shape || g.dtype() != out.dtype ||
        g.device() != out.device)
      continue;
    into[j] = g;
  }
  return into;
}
}  // namespace

void backward(const Tensor& loss, const Tensor& grad_output, bool retain_graph) {
  OKD_CHECK(loss.defined(), "backward: the loss is an undefined tensor");
  OKD_CHECK(loss.requires_grad(), "backward: the loss ", loss.desc(),
            " does not require grad "
            "(nothing on its path requires grad, or it was computed under NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    OKD_CHECK(loss.numel() == 1, "backward: the loss has shape ", shape_str(loss.shape()),
              "; a non-scalar output needs an explicit grad_output");
    seed = ones_like(loss);
  }
  OKD_CHECK(seed.shape() == loss.shape(), "backward: grad_output shape ", shape_str(seed.shape()),
            " differs from the output shape ", shape_str(loss.shape()));
  NoGradGuard no_grad;
  if (loss.is_leaf()) {
    Tensor g = loss.grad();
    accumulate(g, ops::clone(seed));
    loss.impl()->autograd.grad = g.impl_ptr();
    return;
  }
  Tape& tape = Tape::current();
  const AutogradMeta& lm = loss.impl()->autograd;
  OKD_CHECK(lm.generation == tape.generation_ && lm.producer < static_cast<int64_t>(tape.size()),
            "backward: the graph of this loss was already freed by an earlier backward(); pass "
            "retain_graph=true to the first backward to run it twice");
  auto& entries = tape.entries_;
  entries[lm.producer].grads.resize(entries[lm.producer].outputs.size());
  accumulate(entries[lm.producer].grads[lm.slot], seed);

  for (int64_t i = lm.producer; i >= 0; --i) {
    TapeEntry& e = entries[i];
    bool any = false;
    for (const auto& g : e.grads) any |= g.defined();
    if (!any) continue;
    OKD_CHECK(e.backward || e.backward_into, "backward: the graph through ", op_name(e.op),
              " (entry ", i,
              ") was already consumed; pass retain_graph=true to the first backward");
    e.grads.resize(e.outputs.size());
    for (size_t k = 0; k < e.outputs.size(); ++k) {
      if (!e.grads[k].defined())
        e.grads[k] = zeros(e.outputs[k].shape, e.outputs[k].dtype, e.outputs[k].device);
      if (auto out = e.outputs[k].tensor.lock(); out && out->autograd.retains_grad)
        out->autograd.grad = ops::clone(e.grads[k]).impl_ptr();
    }
    std::vector<bool> needs(e.inputs.size());
    for (size_t j = 0; j < e.inputs.size(); ++j) needs[j] = e.inputs[j].needs_grad;
    TensorList into;  // record_into's buffers, held until the gradients have been routed
    TensorList in_grads;
    if (e.backward_into) {
      into = accumulation_buffers(entries, e);
      in_grads = e.backward_into(e.grads, needs, into);
    } else {
      in_grads = e.backward(e.grads, needs);
    }
    OKD_CHECK(in_grads.size() == e.inputs.size(), "backward of ", op_name(e.op), " returned ",
              in_grads.size(), " gradients for ", e.inputs.size(), " inputs");
    for (size_t j = 0; j < e.inputs.size(); ++j) {
      const auto& in = e.inputs[j];
      if (!in.needs_grad || !in_grads[j].defined()) continue;
      OKD_CHECK(in_grads[j].shape() == in.shape, "backward of ", op_name(e.op),
                ": gradient for input ", j, " has shape ", shape_str(in_grads[j].shape()),
                " but the input has shape ", shape_str(in.shape));
      if (in.producer >= 0) {
        TapeEntry& p = entries[in.producer];
        p.grads.resize(p.outputs.size());
        // Gradient j returned as into[j] is that slot's tensor, already holding the sum.
        if (j >= into.size() || !into[j].defined() || in_grads[j].impl() != into[j].impl())
          accumulate(p.grads[in.slot], in_grads[j]);
      } else {
        AutogradMeta& m = in.leaf->autograd;
        if (!m.grad) {
          m.grad = exclusively_owned(in_grads[j]) ? in_grads[j].impl_ptr()
                                                  : ops::clone(in_grads[j]).impl_ptr();
        } else {
          Tensor g(m.grad);
          ops::add_(g, in_grads[j]);
        }
      }
    }
    e.grads.clear();
    if (!retain_graph) {  // frees the saved tensors now, not at clear()
      e.backward = nullptr;
      e.backward_into = nullptr;
    }
  }
  if (!retain_graph) tape.clear();
}

Tensor detach(const Tensor& t) { return make_view(t, t.shape(), t.strides(), t.offset()); }

std::string tape_dump() {
  const Tape& tape = Tape::current();
  std::ostringstream os;
  os << "tape: " << tape.size() << " entries, " << tape.saved_bytes() << " bytes saved\n";
  for (size_t i = 0; i < tape.size(); ++i) {
    const TapeEntry& e = tape.entries()[i];
    os << "#" << i << " " << op_name(e.op) << "(";
    for (size_t j = 0; j < e.inputs.size(); ++j) {
      const auto& in = e.inputs[j];
      if (j) os << ", ";
      if (in.producer >= 0)
        os << "#" << in.producer << "." << in.slot;
      else if (!in.name.empty())
        os << in.name;
      else
        os << (in.needs_grad ? "leaf" : "const");
      os << shape_str(in.shape);
    }
    os << ") -> ";
    for (size_t k = 0; k < e.outputs.size(); ++k)
      os << (k ? ", " : "") << shape_str(e.outputs[k].shape);
    os << "  saved " << e.saved_bytes << " B\n";
  }
  return os.str();
}

std::string tape_dot(const Tensor& loss) {
  const Tape& tape = Tape::current();
  std::ostringstream os;
  os << "digraph tape {\n  rankdir=BT;\n  node [fontname=\"monospace\"];\n";
  if (!loss.defined() || loss.is_leaf()) return os.str() + "}\n";
  std::vector<int64_t> stack{loss.impl()->autograd.producer};
  std::unordered_set<int64_t> seen;
  std::unordered_set<const TensorImpl*> leaves;
  while (!stack.empty()) {
    int64_t i = stack.back();
    stack.pop_back();
    if (i < 0 || i >= static_cast<int64_t>(tape.size()) || !seen.insert(i).second) continue;
    const TapeEntry& e = tape.entries()[i];
    os << "  e" << i << " [shape=box,label=\"#" << i << " " << op_name(e.op) << "\\n";
    for (const auto& o : e.outputs) os << shape_str(o.shape);
    os << "\"];\n";
    for (const auto& in : e.inputs) {
      if (!in.needs_grad) continue;
      if (in.producer >= 0) {
        os << "  e" << in.producer << " -> e" << i << ";\n";
        stack.push_back(in.producer);
      } else {
        const TensorImpl* p = in.leaf.get();
        if (leaves.insert(p).second)
          os << "  l" << reinterpret_cast<uintptr_t>(p) << " [shape=ellipse,label=\""
             << (in.name.empty() ? "leaf" : in.name) << "\\n"
             << shape_str(in.shape) << "\"];\n";
        os << "  l" << reinterpret_cast<uintptr_t>(p) << " -> e" << i << ";\n";
      }
    }
  }
  os << "  loss [shape=doubleoctagon,label=\"loss\"];\n  e" << loss.impl()->autograd.producer
     << " -> loss;\n}\n";
  return os.str();
}

}  // namespace okd
