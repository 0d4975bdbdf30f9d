// The SIMT simulator's kernel engine (simt.h): grids run block by block under one lock; within a
// block, simulated threads run on fibers scheduled cooperatively (a few lines of assembly switch
// stacks on x86-64; elsewhere ucontext, whose swapcontext also makes a system call). A fiber runs
// threads back to back until one of them waits (barrier, shuffle); the scheduler then starts the
// next threads on other fibers, and releases a wait once every thread it needs has arrived.
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

// ---- stack switching ---------------------------------------------------------------------------
#if defined(__x86_64__)
// okd_sim_switch(&from->sp, to->sp): saves the callee-saved registers on the current stack,
// stores the stack pointer in *from_sp, and resumes the context whose stack pointer is to_sp
// (System V AMD64 ABI). The SSE and x87 control words, also callee-saved, are left alone: no
// fiber changes them (the kernels never change rounding modes), and saving them costs a third of
// the switch.
extern "C" void okd_sim_switch(void** from_sp, void* to_sp);
asm(R"(
  .text
  .globl okd_sim_switch
  .type okd_sim_switch, @function
okd_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size okd_sim_switch, .-okd_sim_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

struct Context {
  void* sp = nullptr;
};
void context_switch(Context* from, Context* to) { okd_sim_switch(&from->sp, to->sp); }
// A context that starts entry() on [stack, stack + bytes): the frame okd_sim_switch pops, whose
// return address is entry, placed so that entry starts with the stack aligned as after a call.
void context_make(Context* c, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top - 16);  // the return address lands 16-aligned
  frame[0] = reinterpret_cast<uint64_t>(entry);
  frame[1] = 0;
  uint64_t* regs = frame - 6;  // r15, r14, r13, r12, rbx, rbp
  for (int i = 0; i < 6; ++i) regs[i] = 0;
  c->sp = regs;
}
#else
struct Context {
  ucontext_t uc{};
};
void context_switch(Context* from, Context* to) {
  if (swapcontext(&from->uc, &to->uc) != 0) std::abort();
}
void context_make(Context* c, char* stack, size_t bytes, void (*entry)()) {
  if (getcontext(&c->uc) != 0) std::abort();
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif

enum class Wait : uint8_t { None, Barrier, Shuffle };

struct SimThread {
  ThreadState state;
  bool done = false;
  Wait wait = Wait::None;
  unsigned mask = 0;  // shuffle
  ShuffleKind kind = ShuffleKind::Down;
  int arg = 0, width = kWarp;
  uint64_t in = 0, out = 0;
  struct Fiber* fiber = nullptr;  // the fiber running it
};

struct Fiber {
  Context context;
  char* stack = nullptr;  // usable bytes [stack, stack + kStackBytes)
  SimThread* running = nullptr;
  void* asan_fake_stack = nullptr;
};

struct Engine {
  std::mutex mu;  // one grid at a time, process-wide
  std::vector<std::unique_ptr<Fiber>> fibers;
  Context scheduler;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
  Fiber* current = nullptr;  // the fiber running now (null: the scheduler)
  // The block being run.
  const LaunchConfig* config = nullptr;
  const std::function<void()>* body = nullptr;
  BlockState block{};
  std::vector<SimThread> threads;
  int next = 0;               // next thread to start
  int done = 0;               // threads that have returned
  int at_barrier = 0;         // threads waiting at __syncthreads
  std::vector<Fiber*> ready;  // fibers whose thread was released from a wait
  std::vector<Fiber*> idle;   // fibers with no thread
  // OKD_SIM_ORDER=reverse runs blocks, and starts threads, from the last to the first: a kernel
  // whose result changes with the order has a race (a missing barrier, a read of another
  // thread's or block's output).
  bool reverse = [] {
    const char* v = std::getenv("OKD_SIM_ORDER");
    return v != nullptr && std::string(v) == "reverse";
  }();
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
  context_switch(&e.scheduler, &f->context);
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
  context_switch(&f->context, &e.scheduler);
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
      const int t = e.next++;
      SimThread& th = e.threads[e.reverse ? e.threads.size() - 1 - t : t];
      f->running = &th;
      th.fiber = f;
      t_thread = &th.state;
      (*e.body)();
      th.done = true;
      ++e.done;
      f->running = nullptr;
    }
    e.idle.push_back(f);
    switch_to_scheduler(e, f);
  }
}

Fiber* idle_fiber(Engine& e) {
  if (!e.idle.empty()) {
    Fiber* f = e.idle.back();
    e.idle.pop_back();
    return f;
  }
  auto f = std::make_unique<Fiber>();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) fault("out of memory for fiber stacks");
  mprotect(mem, page, PROT_NONE);  // a stack overflow faults instead of corrupting memory
  f->stack = static_cast<char*>(mem) + page;
  context_make(&f->context, f->stack, kStackBytes, fiber_main);
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

// Releases the shuffles of every warp whose participants have all arrived; faults
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
      if (th.wait == Wait::Shuffle) waiting |= 1u << l;
    }
    if (waiting == 0) continue;
    const unsigned present = lanes == kWarp ? 0xffffffffu : (1u << lanes) - 1;
    for (int l = 0; l < lanes; ++l) {
      const SimThread& th = e.threads[base + l];
      if (!(waiting >> l & 1u)) continue;
      if (th.mask & ~present)
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": the mask of its shuffle names lanes " + lane_list(th.mask & ~present) +
              " that the block does not have");
      if (th.mask & exited)
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": the mask of its shuffle names lanes " + lane_list(th.mask & exited) +
              " that have exited");
      if (!(th.mask >> l & 1u))
        fault("warp " + std::to_string(base / kWarp) + " lane " + std::to_string(l) +
              ": a shuffle whose mask leaves out the calling lane");
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
          if (o.mask != mask)
            fault("warp " + std::to_string(base / kWarp) + ": lanes " + std::to_string(l) +
                  " and " + std::to_string(k) + " meet in shuffles with different masks (" +
                  std::to_string(mask) + " and " + std::to_string(o.mask) + ")");
        }
      {
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
        if (mask >> k & 1u) {
          e.threads[base + k].wait = Wait::None;
          e.ready.push_back(e.threads[base + k].fiber);
        }
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
    shuffle += th.wait == Wait::Shuffle;
    done += th.done;
  }
  return std::to_string(barrier) + " threads wait at __syncthreads, " + std::to_string(shuffle) +
         " at a warp shuffle, " + std::to_string(done) + " have exited";
}

void run_block(Engine& e) {
  const int n = static_cast<int>(e.threads.size());
  e.next = e.done = e.at_barrier = 0;
  e.ready.clear();
  for (;;) {
    if (!e.ready.empty()) {  // a thread released from a wait
      Fiber* f = e.ready.back();
      e.ready.pop_back();
      switch_to_fiber(e, f);
      continue;
    }
    if (e.next < n) {  // threads not started yet
      switch_to_fiber(e, idle_fiber(e));
      continue;
    }
    // Every thread has started and is either done or waiting.
    if (e.done == n) return;
    if (release_warps(e)) continue;
    if (e.at_barrier == n - e.done) {
      for (SimThread& th : e.threads)
        if (th.wait == Wait::Barrier) {
          th.wait = Wait::None;
          e.ready.push_back(th.fiber);
        }
      e.at_barrier = 0;
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
  e.threads.resize(n);
  const uint64_t blocks = uint64_t{c.grid[0]} * c.grid[1] * c.grid[2];
  for (uint64_t i = 0; i < blocks; ++i) {
    const uint64_t b = e.reverse ? blocks - 1 - i : i;
    e.block.block_idx = uint3{static_cast<unsigned>(b % c.grid[0]),
                              static_cast<unsigned>(b / c.grid[0] % c.grid[1]),
                              static_cast<unsigned>(b / (uint64_t{c.grid[0]} * c.grid[1]))};
    for (int t = 0; t < n; ++t) {
      SimThread& th = e.threads[t];
      th = SimThread{};
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

void set_reverse_order(bool reverse) {
  Engine& e = engine();
  std::lock_guard<std::mutex> lock(e.mu);
  e.reverse = reverse;
}

void syncthreads() {
  waiting_thread(Wait::Barrier);
  ++engine().at_barrier;
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
