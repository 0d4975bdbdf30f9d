// The SIMT simulator's kernel engine: runs a kernel's grid on the CPU, one block at a time, every
// thread of the block as a fiber (its own stack) so that __syncthreads and warp shuffles suspend
// it until the threads they wait for arrive. Threads that never wait run back to back on one
// fiber, so a barrier-free kernel costs a function call per thread. What the engine checks, and
// reports by aborting with the launch site (as a GPU fault would end the process's CUDA context):
// a barrier or shuffle that can never complete (divergent __syncthreads, a shuffle whose mask
// names an exited or absent lane or whose lanes disagree on the mask). See README.md.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

// Included by the simulator's cuda_runtime.h after dim3 and uint3 are defined.
struct CUstream_st;

namespace okd::sim {

struct BlockState {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
struct ThreadState {
  uint3 thread_idx;
  const BlockState* block = nullptr;
};

// The simulated thread running on this host thread (only inside a kernel).
extern thread_local ThreadState* t_thread;
inline const ThreadState& current_thread() { return *t_thread; }

// Blocks run, and threads start, from the last to the first when reversed (the environment
// variable OKD_SIM_ORDER=reverse sets it at start-up): a kernel whose results change with the
// order has a race, such as a missing __syncthreads.
void set_reverse_order(bool reverse);

void syncthreads();

enum class ShuffleKind : uint8_t { Down, Up, Xor, Index };
uint64_t shuffle_bits(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, int width);
template <class T>
T shuffle(unsigned mask, T v, ShuffleKind kind, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a <= 8-byte value");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle_bits(mask, bits, kind, arg, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

// ---- launches ----------------------------------------------------------------------------------
// `kernel<<<grid, block, smem, stream>>>(args)` is rewritten (rewrite_launches.cmake) to
// `kernel | LaunchConfig(__FILE__, __LINE__, grid, block, smem, stream) | launch_args(args)`.
struct LaunchConfig {
  const char* file;
  int line;
  unsigned grid[3];
  unsigned block[3];
  size_t shared_bytes;
  CUstream_st* stream;
  template <class G, class B>
  LaunchConfig(const char* f, int l, G g, B b, size_t smem = 0, CUstream_st* s = nullptr)
      : file(f), line(l), shared_bytes(smem), stream(s) {
    const dim3 gd(g), bd(b);
    grid[0] = gd.x, grid[1] = gd.y, grid[2] = gd.z;
    block[0] = bd.x, block[1] = bd.y, block[2] = bd.z;
  }
};

// Checks the configuration (an invalid one sets cudaErrorInvalidConfiguration, which
// cudaGetLastError then returns, and runs nothing), then runs thread() once per simulated thread
// of the grid on the configuration's stream (or records it, while that stream is captured).
void launch(const LaunchConfig& config, std::function<void()> thread);

template <class... P>
struct PendingLaunch {
  void (*kernel)(P...);
  LaunchConfig config;
};
template <class... A>
struct LaunchArgs {
  std::tuple<A...> values;
};

template <class... P>
PendingLaunch<P...> operator|(void (*kernel)(P...), const LaunchConfig& config) {
  return {kernel, config};
}
template <class... A>
LaunchArgs<std::decay_t<A>...> launch_args(A&&... a) {
  return {std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}
// The arguments are converted to the parameter types and copied now, as a launch does.
template <class... P, class... A>
void operator|(const PendingLaunch<P...>& pending, LaunchArgs<A...>&& args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  auto params =
      std::make_shared<Params>(std::apply([](auto&... v) { return Params(v...); }, args.values));
  launch(pending.config, [kernel = pending.kernel, params] { std::apply(kernel, *params); });
}

}  // namespace okd::sim
