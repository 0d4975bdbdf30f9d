// The SIMT simulator's kernel engine (simt.h): grids run block by block under one lock; within a
// block, simulated threads run on fibers (ucontext) scheduled cooperatively. A fiber runs threads
// back to back until one of them waits (barrier, shuffle); the scheduler then starts the next
// threads on other fibers, and releases a wait once every thread it needs has arrived.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/cuda/sim/sim.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define OKD_SIM_ASAN 1
#else
#define OKD_SIM_ASAN 0
#endif

namespace okd::sim {

thread_local ThreadState* t_thread = nullptr;

namespace {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = size_t{256} << 10;  // per fiber, plus a guard page below it

enum class Wait : uint8_t { None, Barrier, Shuffle, Syncwarp };

struct SimThread {
  ThreadState state;
  int linear = 0;
  bool done = false;
  Wait wait = Wait::None;
  unsigned mask = 0;  // shuffle / syncwarp
  ShuffleKind kind = ShuffleKind::Down;
  int arg = 0, width = kWarp;
  uint64_t in = 0, out = 0;
};

struct Fiber {
  ucontext_t context{};
  char* stack = nullptr;  // usable bytes [stack, stack + kStackBytes)
  SimThread* running = nullptr;
  bool idle = true;
  void* asan_fake_stack = nullptr;
};

struct Engine {
  std::mutex mu;  // one grid at a time, process-wide
  std::vector<std::unique_ptr<Fiber>> fibers;
  ucontext_t scheduler{};
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  Fiber* current = nullptr;  // the fiber running now (null: the scheduler)
  // The block being run.
  const LaunchConfig* config = nullptr;
  const std::function<void()>* body = nullptr;
  BlockState block{};
  std::vector<SimThread> threads;
  int next = 0;  // next thread to start
};
Engine& engine() {
  static Engine* e = new Engine();  // never destroyed: fibers may outlive static destruction
  return *e;
}

[[noreturn]] void fault(const std::string& what) {
  Engine& e = engine();
  std::fprintf(stderr,
               "okd SIMT simulator: kernel launched at %s:%d, block (%u,%u,%u) of grid "
               "(%u,%u,%u), block (%u,%u,%u) threads: %s\n",
               e.config ? e.config->file : "?", e.config ? e.config->line : 0, e.block.block_idx.x,
               e.block.block_idx.y, e.block.block_idx.z, e.block.grid_dim.x, e.block.grid_dim.y,
               e.block.grid_dim.z, e.block.block_dim.x, e.block.block_dim.y, e.block.block_dim.z,
               what.c_str());
  std::fflush(stderr);
  std::abort();
}

// ---- context switches, with AddressSanitizer told about each change of stack -----------------
void switch_to_fiber(Engine& e, Fiber* f) {
  e.current = f;
  t_thread = f->running ? &f->running->state : nullptr;
#if OKD_SIM_ASAN
  __sanitizer_start_switch_fiber(&e.scheduler_fake_stack, f->stack, kStackBytes);
#endif
  if (swapcontext(&e.scheduler, &f->context) != 0) fault("swapcontext failed");
#if OKD_SIM_ASAN
  __sanitizer_finish_switch_fiber(e.scheduler_fake_stack, nullptr, nullptr);
#endif
  e.current = nullptr;
  t_thread = nullptr;
}

void switch_to_scheduler(Engine& e, Fiber* f) {
#if OKD_SIM_ASAN
  __sanitizer_start_switch_fiber(&f->asan_fake_stack, e.scheduler_stack_bottom,
                                 e.scheduler_stack_size);
#endif
  if (swapcontext(&f->context, &e.scheduler) != 0) fault("swapcontext failed");
#if OKD_SIM_ASAN
  __sanitizer_finish_switch_fiber(f->asan_fake_stack, &e.scheduler_stack_bottom,
                                  &e.scheduler_stack_size);
#endif
}

// A fiber's life: run the block's unstarted threads one after another; when there are none left,
// go idle until the scheduler hands it the next block's.
thread_local Fiber* t_starting = nullptr;
void fiber_main() {
  Engine& e = engine();
  Fiber* f = t_starting;
#if OKD_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &e.scheduler_stack_bottom, &e.scheduler_stack_size);
#endif
  for (;;) {
    while (e.next < static_cast<int>(e.threads.size())) {
      SimThread& th = e.threads[e.next++];
      f->running = &th;
      t_thread = &th.state;
      (*e.body)();
      th.done = true;
      f->running = nullptr;
    }
    f->idle = true;
    switch_to_scheduler(e, f);
  }
}

Fiber* idle_fiber(Engine& e) {
  for (auto& f : e.fibers)
    if (f->idle) return f.get();
  auto f = std::make_unique<Fiber>();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) fault("out of memory for fiber stacks");
  mprotect(mem, page, PROT_NONE);  // a stack overflow faults instead of corrupting memory
  f->stack = static_cast<char*>(mem) + page;
  if (getcontext(&f->context) != 0) fault("getcontext failed");
  f->context.uc_stack.ss_sp = f->stack;
  f->context.uc_stack.ss_size = kStackBytes;
  f->context.uc_link = nullptr;
  makecontext(&f->context, fiber_main, 0);
  t_starting = f.get();
  e.fibers.push_back(std::move(f));
  return e.fibers.back().get();
}

// The thread calling a barrier or shuffle: suspends its fiber until the scheduler releases it.
SimThread& waiting_thread(Wait w) {
  Engine& e = engine();
  if (e.current == nullptr || e.current->running == nullptr)
    fault("a barrier or shuffle was called outside a kernel");
  SimThread& th = *e.current->running;
  th.wait = w;
  return th;
}
void suspend() {
  Engine& e = engine();
  Fiber* f = e.current;
  switch_to_scheduler(e, f);
}

std::string lane_list(unsigned bits) {
  std::string s;
  for (int l = 0; l < kWarp; ++l)
    if (bits >> l & 1u) s += (s.empty() ? "" : ",") + std::to_string(l);
  return s;
}

// Releases the shuffles and syncwarps of every warp whose participants have all arrived; faults
// on a mask that names an absent or exited lane or that the lanes disagree on.
bool release_warps(Engine& e) {
  bool released = false;
  const int n = static_cast<int>(e.threads.size());
  for (int base = 0; base < n; base += kWarp) {
    const int lanes = std::min(kWarp, n - base);
    unsigned waiting = 0, exited = 0;
    for (int l = 0; l < lanes; ++l) {
      const SimThread& th = e.threads[base + l];
      if (th.done) exited |= 1u << l;
      if (th.wait == Wait::Shuffle || th.wait == Wait::Syncwarp) waiting |= 1u << l;
    }
    if (waiting == 0) continue;
    const unsigned present = lanes == kWarp ? 0xffffffffu : (1u << lanes) - 1;
    for (int l = 0; l < lanes; ++l) {
      const SimThread& th = e.threads[base + l];
      if (!(waiting >> l & 1u)) continue;
      if (th.mask & ~present)
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": the mask of its shuffle/syncwarp names lanes " + lane_list(th.mask & ~present) +
              " that the block does not have");
      if (th.mask & exited)
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": the mask of its shuffle/syncwarp names lanes " + lane_list(th.mask & exited) +
              " that have exited");
      if (!(th.mask >> l & 1u))
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": a shuffle/syncwarp whose mask leaves out the calling lane");
    }
    // Release each group whose mask is fully waiting (lanes of one group must agree on the mask).
    for (int l = 0; l < lanes; ++l) {
      SimThread& first = e.threads[base + l];
      if (!(waiting >> l & 1u)) continue;
      const unsigned mask = first.mask;
      if ((mask & waiting) != mask) continue;  // others still to arrive
      for (int k = 0; k < lanes; ++k)
        if (mask >> k & 1u) {
          const SimThread& o = e.threads[base + k];
          if (o.mask != mask || o.wait != first.wait)
            fault("warp " + std::to_string(base / kWarp) + ": lanes " + std::to_string(l) +
                  " and " + std::to_string(k) + " meet at different warp operations (masks " +
                  std::to_string(mask) + " and " + std::to_string(o.mask) + ")");
        }
      if (first.wait == Wait::Shuffle) {
        for (int k = 0; k < lanes; ++k) {
          if (!(mask >> k & 1u)) continue;
          SimThread& th = e.threads[base + k];
          const int w = th.width;
          const int seg = k & ~(w - 1), in_seg = k & (w - 1);
          int src = k;
          switch (th.kind) {
            case ShuffleKind::Down:
              src = in_seg + th.arg < w ? k + th.arg : k;
              break;
            case ShuffleKind::Up:
              src = in_seg - th.arg >= 0 ? k - th.arg : k;
              break;
            case ShuffleKind::Xor:
              src = k ^ th.arg;
              if ((src & ~(w - 1)) != seg) src = k;
              break;
            case ShuffleKind::Index:
              src = seg + (th.arg & (w - 1));
              break;
          }
          if (src >= lanes || !(mask >> src & 1u))
            fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(k) +
                  " reads lane " + std::to_string(src) +
                  ", which does not take part in the shuffle (undefined value)");
          th.out = e.threads[base + src].in;
        }
      }
      for (int k = 0; k < lanes; ++k)
        if (mask >> k & 1u) e.threads[base + k].wait = Wait::None;
      waiting &= ~mask;
      released = true;
    }
  }
  return released;
}

std::string wait_summary(const Engine& e) {
  int barrier = 0, shuffle = 0, done = 0;
  for (const SimThread& th : e.threads) {
    barrier += th.wait == Wait::Barrier;
    shuffle += th.wait == Wait::Shuffle || th.wait == Wait::Syncwarp;
    done += th.done;
  }
  return std::to_string(barrier) + " threads wait at __syncthreads, " + std::to_string(shuffle) +
         " at a warp shuffle or __syncwarp, " + std::to_string(done) + " have exited";
}

void run_block(Engine& e) {
  const int n = static_cast<int>(e.threads.size());
  e.next = 0;
  for (;;) {
    // Resume every fiber whose thread was released.
    bool resumed = false;
    for (size_t i = 0; i < e.fibers.size(); ++i) {
      Fiber* f = e.fibers[i].get();
      if (!f->idle && f->running != nullptr && f->running->wait == Wait::None) {
        switch_to_fiber(e, f);
        resumed = true;
      }
    }
    if (resumed) continue;
    if (e.next < n) {
      Fiber* f = idle_fiber(e);
      f->idle = false;
      switch_to_fiber(e, f);
      continue;
    }
    // Everyone has started and is either done or waiting.
    bool all_done = true;
    for (const SimThread& th : e.threads) all_done = all_done && th.done;
    if (all_done) return;
    if (release_warps(e)) continue;
    bool all_at_barrier = true;
    for (const SimThread& th : e.threads)
      if (!th.done && th.wait != Wait::Barrier) all_at_barrier = false;
    if (all_at_barrier) {
      for (SimThread& th : e.threads) th.wait = Wait::None;
      continue;
    }
    fault("deadlock: " + wait_summary(e) +
          " (a __syncthreads not reached by every thread, or a shuffle whose lanes diverged)");
  }
}

void run_grid(const LaunchConfig& c, const std::function<void()>& body) {
  Engine& e = engine();
  std::lock_guard<std::mutex> lock(e.mu);
  if (t_thread != nullptr) fault("a kernel launched another kernel");
  e.config = &c;
  e.body = &body;
  e.block.grid_dim = dim3(c.grid[0], c.grid[1], c.grid[2]);
  e.block.block_dim = dim3(c.block[0], c.block[1], c.block[2]);
  const int n = static_cast<int>(c.block[0] * c.block[1] * c.block[2]);
  e.threads.assign(n, SimThread{});
  for (unsigned bz = 0; bz < c.grid[2]; ++bz)
    for (unsigned by = 0; by < c.grid[1]; ++by)
      for (unsigned bx = 0; bx < c.grid[0]; ++bx) {
        e.block.block_idx = uint3{bx, by, bz};
        for (int t = 0; t < n; ++t) {
          SimThread& th = e.threads[t];
          th = SimThread{};
          th.linear = t;
          th.state.block = &e.block;
          th.state.thread_idx =
              uint3{t % c.block[0], (t / c.block[0]) % c.block[1], t / (c.block[0] * c.block[1])};
        }
        run_block(e);
      }
  e.config = nullptr;
  e.body = nullptr;
}

}  // namespace

void syncthreads() {
  waiting_thread(Wait::Barrier);
  suspend();
}

void syncwarp(unsigned mask) {
  SimThread& th = waiting_thread(Wait::Syncwarp);
  th.mask = mask;
  suspend();
}

uint64_t shuffle_bits(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, int width) {
  if (width < 1 || width > kWarp || (width & (width - 1)) != 0)
    fault("a shuffle with width " + std::to_string(width) + " (a power of 2 up to 32)");
  SimThread& th = waiting_thread(Wait::Shuffle);
  th.mask = mask;
  th.in = bits;
  th.kind = kind;
  th.arg = arg;
  th.width = width;
  suspend();
  return th.out;
}

void launch(const LaunchConfig& c, std::function<void()> thread) {
  const uint64_t threads = uint64_t{c.block[0]} * c.block[1] * c.block[2];
  const bool ok = c.grid[0] >= 1 && c.grid[1] >= 1 && c.grid[2] >= 1 && c.grid[0] <= 0x7fffffffu &&
                  c.grid[1] <= 65535 && c.grid[2] <= 65535 && c.block[0] >= 1 && c.block[1] >= 1 &&
                  c.block[2] >= 1 && c.block[0] <= 1024 && c.block[1] <= 1024 && c.block[2] <= 64 &&
                  threads <= 1024 && c.shared_bytes <= 48 * 1024;
  if (!ok) {
    set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  const std::string what =
      std::string("kernel launched at ") + c.file + ":" + std::to_string(c.line);
  enqueue(
      c.stream, [c, body = std::move(thread)] { run_grid(c, body); }, what.c_str());
}

}  // namespace okd::sim
