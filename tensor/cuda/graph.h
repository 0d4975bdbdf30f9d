// Whole-step capture (issue 9): a step's device work recorded once and replayed without the host
// code that queued it. On a GPU a CapturedGraph is a CUDA graph (stream capture of okd's stream,
// with its memory in a private pool of the caching allocator); under emulation (no GPU) it is the
// recorded list of kernel entry points with their operands and scalars, replayed in order on the
// same memory, so the capture logic and a step's fitness for capture are tested on the CPU.
//
// What a step must be to be captured (docs/cuda.md, "Whole-step capture"):
//   * no host synchronisation (item(), to(kCPU), uploads): SyncFreeScope enforces it during
//   capture;
//   * static: every scalar the host passes to a kernel (learning rate, loss weights, a random
//     draw's offset, SGD's "first step" flag) is frozen into the graph, so the caller recaptures
//     when one changes, and steps whose scalars change every time (Adam's bias correction, a
//     per-step ramp-up, dropout) are not captured;
//   * fixed memory: replay reads and writes the tensors the capture used. Inputs are copied into
//     the same tensors before each replay; outputs are read from the captured result tensors.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "tensor/tensor.h"

namespace okd::cuda {

class CapturedGraph {
 public:
  CapturedGraph();
  ~CapturedGraph();
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;

  // Runs fn with its device work captured, then runs that work once, so the device state after
  // capture() is what an eager fn would have left. Inside fn every host synchronisation is an
  // error naming `what`. If fn throws, nothing is kept and the error propagates. Captures once.
  void capture(const std::function<void()>& fn, const char* what = "a captured step");
  // Runs the captured work again, on the same tensors.
  void replay();
  bool ready() const;
  // Kernel launches recorded (emulation) or nodes of the CUDA graph.
  int64_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether the calling thread is inside CapturedGraph::capture.
bool capturing();

// Host bookkeeping that a captured step's host code does (an optimizer's step counters) and that
// every replay must repeat, since a replay runs no host code: inside capture() f is kept with the
// graph and run after each replay's device work is queued. Outside a capture it does nothing (the
// caller has done the work itself, as it does during the capture).
void on_replay(std::function<void()> f);

// A host count mirrored in an int64 scalar on a device and advanced there, for a value that a
// kernel must read at run time rather than take as a host scalar, so that a captured step replays
// with it advanced: a generator's Philox offset, Adam's step, the EMA's step. The owner keeps the
// count itself; this keeps the device copy and what the host knows it holds.
class DeviceCounter {
 public:
  DeviceCounter() = default;
  // A copy shares nothing: it makes its own device copy when first used.
  DeviceCounter(const DeviceCounter&) {}
  DeviceCounter& operator=(const DeviceCounter&) {
    reset();
    return *this;
  }
  // The device copy on `device`, holding `value`: made or refilled when it does not (a first
  // use, a load, a draw on another device), which must not happen inside a capture (the refill
  // would be frozen into the graph): then it throws naming `who`.
  const Tensor& holding(Device device, int64_t value, const char* who);
  // Adds n on the device (a kernel: captured, so every replay adds it again).
  void advance(int64_t n);
  // What a replay's host hook calls for each advance() it repeated.
  void replayed(int64_t n) { value_ += n; }
  void reset() { tensor_ = Tensor(); }

 private:
  Tensor tensor_;
  int64_t value_ = 0;  // what tensor_ holds, as far as the host knows
};

}  // namespace okd::cuda
