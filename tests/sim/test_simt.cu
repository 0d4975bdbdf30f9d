// Tests of the SIMT simulator itself (tensor/cuda/sim): kernels written as CUDA, run by its
// engine, against host arithmetic; its runtime's rules (launch errors, copies, capture and
// replay); and its faults, which end the process with a message (death tests).
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "tensor/cuda/launch.cuh"

namespace {

// A device buffer of n elements, freed at scope exit.
template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    void* q = nullptr;
    EXPECT_EQ(cudaMalloc(&q, n * sizeof(T)), cudaSuccess);
    p = static_cast<T*>(q);
  }
  ~DeviceBuffer() { cudaFree(p); }
  std::vector<T> read() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
  void write(const std::vector<T>& h) {
    EXPECT_EQ(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
};

// Every thread of a 3-D grid of 3-D blocks writes its coordinates at its global linear index.
__global__ void coordinates_kernel(int64_t* out) {
  const int64_t block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const int64_t thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  const int64_t per_block = blockDim.x * blockDim.y * blockDim.z;
  out[block * per_block + thread] =
      ((((blockIdx.z * 10 + blockIdx.y) * 10 + blockIdx.x) * 10 + threadIdx.z) * 10 + threadIdx.y) *
          10 +
      threadIdx.x;
}

TEST(Simt, EveryThreadOfA3dGridRunsOnceWithItsCoordinates) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  DeviceBuffer<int64_t> out(3 * 2 * 2 * 4 * 3 * 2);
  coordinates_kernel<<<grid, block, 0, nullptr>>>(out.p);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int64_t> h = out.read();
  size_t i = 0;
  for (int64_t bz = 0; bz < 2; ++bz)
    for (int64_t by = 0; by < 2; ++by)
      for (int64_t bx = 0; bx < 3; ++bx)
        for (int64_t tz = 0; tz < 2; ++tz)
          for (int64_t ty = 0; ty < 3; ++ty)
            for (int64_t tx = 0; tx < 4; ++tx, ++i)
              ASSERT_EQ(h[i], ((((bz * 10 + by) * 10 + bx) * 10 + tz) * 10 + ty) * 10 + tx) << i;
}

// A shared-memory tree sum: correct only if every __syncthreads holds all threads back.
__global__ void tree_sum_kernel(const int* in, int* out) {
  __shared__ int buf[256];
  const unsigned t = threadIdx.x;
  buf[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

TEST(Simt, SyncthreadsOrdersSharedMemoryAcrossTheBlock) {
  const int blocks = 5, threads = 256;
  std::vector<int> h(blocks * threads);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<int>(i * 7 % 101);
  DeviceBuffer<int> in(h.size()), out(blocks);
  in.write(h);
  tree_sum_kernel<<<blocks, threads, 0, nullptr>>>(in.p, out.p);
  const std::vector<int> sums = out.read();
  for (int b = 0; b < blocks; ++b)
    EXPECT_EQ(sums[b], std::accumulate(h.begin() + b * threads, h.begin() + (b + 1) * threads, 0));
}

// Each lane shuffles its lane number with every variant and width.
__global__ void shuffle_kernel(int* out, int width) {
  const int lane = threadIdx.x & 31;
  const int base = threadIdx.x * 4;
  out[base + 0] = __shfl_down_sync(0xffffffffu, lane, 3, width);
  out[base + 1] = __shfl_up_sync(0xffffffffu, lane, 2, width);
  out[base + 2] = __shfl_xor_sync(0xffffffffu, lane, 5, width);
  out[base + 3] = __shfl_sync(0xffffffffu, lane, 6, width);
}

TEST(Simt, WarpShufflesFollowCudaLaneRules) {
  for (int width : {32, 8}) {
    DeviceBuffer<int> out(64 * 4);
    shuffle_kernel<<<1, 64, 0, nullptr>>>(out.p, width);
    const std::vector<int> h = out.read();
    for (int t = 0; t < 64; ++t) {
      const int lane = t & 31, seg = lane & ~(width - 1), in_seg = lane & (width - 1);
      EXPECT_EQ(h[t * 4 + 0], in_seg + 3 < width ? lane + 3 : lane) << t << " w" << width;
      EXPECT_EQ(h[t * 4 + 1], in_seg - 2 >= 0 ? lane - 2 : lane) << t << " w" << width;
      const int x = lane ^ 5;
      EXPECT_EQ(h[t * 4 + 2], (x & ~(width - 1)) == seg ? x : lane) << t << " w" << width;
      EXPECT_EQ(h[t * 4 + 3], seg + (6 & (width - 1))) << t << " w" << width;
    }
  }
}

// Reads a neighbour's shared-memory slot without a barrier: a race.
__global__ void racy_kernel(int* out) {
  __shared__ int buf[64];
  buf[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  out[threadIdx.x] = buf[(threadIdx.x + 1) % blockDim.x];  // needs a __syncthreads before it
}

TEST(Simt, ReversingTheThreadOrderExposesAMissingBarrier) {
  auto run = [](bool reverse, bool racy) {
    okd::sim::set_reverse_order(reverse);
    DeviceBuffer<int> out(64);
    std::vector<int> in(64 * 3, 1);
    DeviceBuffer<int> sums(3), data(in.size());
    data.write(in);
    if (racy)
      racy_kernel<<<1, 64, 0, nullptr>>>(out.p);
    else
      tree_sum_kernel<<<3, 64, 0, nullptr>>>(data.p, sums.p);
    okd::sim::set_reverse_order(false);
    return racy ? out.read() : sums.read();
  };
  EXPECT_NE(run(false, true), run(true, true));    // the race shows
  EXPECT_EQ(run(false, false), run(true, false));  // a correct kernel does not care
  EXPECT_EQ(run(true, false), std::vector<int>(3, 64));
}

// okd's own block reduction (launch.cuh), as the loss and norm kernels use it.
__global__ void block_reduce_kernel(const double* in, double* out, int n) {
  __shared__ double smem[32];
  double v = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += in[i];
  const double total = okd::cuda::block_reduce(v, okd::cuda::SumOp{}, smem);
  out[threadIdx.x] = total;  // every thread gets the total
}

TEST(Simt, OkdBlockReduceGivesEveryThreadTheTotal) {
  for (int threads : {32, 96, 256, 1024}) {
    const int n = 1000;
    std::vector<double> h(n);
    for (int i = 0; i < n; ++i) h[i] = 0.25 * (i % 17) - 1.0;
    DeviceBuffer<double> in(n), out(threads);
    in.write(h);
    block_reduce_kernel<<<1, threads, 0, nullptr>>>(in.p, out.p, n);
    double expected = 0;
    for (double v : h) expected += v;
    for (double v : out.read()) ASSERT_DOUBLE_EQ(v, expected) << threads << " threads";
  }
}

__global__ void add_one_kernel(int* x, int n) { OKD_GRID_STRIDE(i, n) x[i] += 1; }

TEST(SimtRuntime, AnInvalidLaunchConfigurationIsReportedAndRunsNothing) {
  DeviceBuffer<int> x(4);
  x.write({0, 0, 0, 0});
  add_one_kernel<<<1, 2048, 0, nullptr>>>(x.p, 4);  // more than 1024 threads per block
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // reading it clears it
  add_one_kernel<<<0, 32, 0, nullptr>>>(x.p, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(x.read(), (std::vector<int>{0, 0, 0, 0}));
}

TEST(SimtRuntime, NewDeviceMemoryIsPoisonedAndCopiesStayInsideTheirBlock) {
  DeviceBuffer<float> x(3);
  for (float v : x.read()) EXPECT_TRUE(std::isnan(v));
  std::vector<float> h(4);
  EXPECT_EQ(cudaMemcpy(h.data(), x.p, 4 * sizeof(float), cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);  // one element past the end
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  int on_stack = 0;
  EXPECT_EQ(cudaMemcpy(x.p, &on_stack, 4, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(&on_stack), cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST(SimtRuntime, ACapturedGraphRecordsItsWorkAndReplaysIt) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<int> x(8), y(8);
  x.write(std::vector<int>(8, 5));
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  add_one_kernel<<<2, 32, 0, s>>>(x.p, 8);
  ASSERT_EQ(cudaMemcpyAsync(y.p, x.p, 8 * sizeof(int), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(x.read(), std::vector<int>(8, 5));  // capturing runs nothing
  size_t nodes = 0;
  ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &nodes), cudaSuccess);
  EXPECT_EQ(nodes, 2u);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_EQ(x.read(), std::vector<int>(8, 7));
  EXPECT_EQ(y.read(), std::vector<int>(8, 7));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

TEST(SimtRuntime, ASynchronisingCallInvalidatesTheCapture) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);  // global mode
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  cudaGetLastError();
  cudaStreamDestroy(s);
}

// ---- faults: a kernel that would hang or read undefined values on a GPU ends the process -----
__global__ void diverged_kernel(int* out) {
  if (threadIdx.x < 16)
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
  else
    __syncthreads();
}
__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x == 31) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}
__global__ void partial_warp_kernel(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

TEST(SimtDeathTest, DivergedBarriersAndBadShuffleMasksAreFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DeviceBuffer<int> out(64);
  EXPECT_DEATH(diverged_kernel<<<1, 32, 0, nullptr>>>(out.p), "deadlock");
  EXPECT_DEATH(exited_lane_kernel<<<1, 32, 0, nullptr>>>(out.p), "lanes 31 that have exited");
  EXPECT_DEATH(partial_warp_kernel<<<1, 16, 0, nullptr>>>(out.p), "that the block does not have");
}

}  // namespace
