// The CUDA backend against the CPU ops: every CUDA kernel runs on random inputs (never zeros) and
// must match the CPU result (float32 within 1e-5 relative for elementwise ops, reductions, batch
// norm and the losses, 1e-4 for matmul and convolution; float64 tighter), plus the caching
// allocator's reuse and host<->device round trips. Tests that need a GPU skip, saying so, when okd
// is built without CUDA or the machine has no GPU; the few that need none (size classes, the no-GPU
// error) run everywhere.
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "okd/build_config.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/activation.h"
#include "tensor/ops/conv.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/loss.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/norm.h"
#include "tensor/ops/pool.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/update.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck_on_device.h"
#include "tests/support/test_support.h"
#if OKD_HAVE_CUDA
#include "tensor/cuda/allocator.h"
#endif

using namespace okd;

namespace {

using test::kCuda;

Tensor gpu(const Tensor& t) { return ops::to(t, kCuda); }
Tensor cpu(const Tensor& t) { return ops::to(t, kCPU); }

using test::randn_t;
// Uniform in [lo, hi): positive inputs for log, sqrt, rsqrt and fractional powers.
Tensor uniform_t(const Shape& s, double lo, double hi, DType dt, uint64_t seed) {
  Generator g(seed);
  return uniform(s, lo, hi, g, dt);
}

double rtol_for(DType dt, double f32) { return dt == DType::Float32 ? f32 : 1e-12; }

::testing::AssertionResult matches(const Tensor& on_gpu, const Tensor& ref, double rtol,
                                   double atol = 1e-6) {
  return test::matches_on_gpu(on_gpu, ref, rtol, atol);
}

using ::okd::test::error_of;

const DType kFloats[] = {DType::Float32, DType::Float64};

}  // namespace

// ---- runs everywhere ---------------------------------------------------------------------------

TEST(CudaBackend, AskingForCudaWithoutAGpuIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA GPU is present: covered by the GPU tests";
  if (cuda::emulating()) GTEST_SKIP() << "cuda:0 is emulated (OKD_CUDA_EMULATE)";
  Tensor t = randn_t({3, 4}, DType::Float32, 1);
  const std::string to_err = error_of([&] { ops::to(t, kCuda); });
  EXPECT_NE(to_err.find("cuda:0"), std::string::npos) << to_err;
  EXPECT_NE(to_err.find(cuda_built() ? "no CUDA GPU" : "no CUDA backend"), std::string::npos)
      << to_err;
  const std::string empty_err = error_of([&] { empty({2}, DType::Float32, kCuda); });
  EXPECT_NE(empty_err.find("not available"), std::string::npos) << empty_err;
  EXPECT_EQ(cuda::allocator_stats().device_mallocs, 0);
  EXPECT_FALSE(cuda::allow_tf32());
}

#if OKD_HAVE_CUDA
// Host arithmetic of the allocator, no GPU needed: classes cover the request, waste is <= 25%.
TEST(CudaBackend, AllocatorSizeClassesBoundTheWaste) {
  EXPECT_EQ(cuda::size_class(0), 512u);
  EXPECT_EQ(cuda::size_class(512), 512u);
  EXPECT_EQ(cuda::size_class(513), 640u);
  EXPECT_EQ(cuda::size_class(1024), 1024u);
  EXPECT_EQ(cuda::size_class(1025), 1280u);
  EXPECT_EQ(cuda::size_class(size_t{1} << 20), size_t{1} << 20);
  for (size_t n = 1; n < (size_t{1} << 26); n = n * 3 / 2 + 7) {
    const size_t c = cuda::size_class(n);
    EXPECT_GE(c, n);
    if (n > 512) {
      EXPECT_LE(c, n + n / 4 + 1) << n;
    }
    EXPECT_EQ(cuda::size_class(c), c) << "a class maps to itself";
  }
}
#endif

// ---- device memory -----------------------------------------------------------------------------

TEST(CudaBackend, FreedBlocksAreReusedWithoutCudaMalloc) {
  OKD_REQUIRE_GPU();
  { Tensor warm = empty({1000, 257}, DType::Float32, kCuda); }
  const cuda::AllocatorStats before = cuda::allocator_stats();
  // a and b share a size class (1 MiB), so the step needs a second block once, then no more
  for (int step = 0; step < 5; ++step) {
    Tensor a = empty({1000, 257}, DType::Float32, kCuda);
    Tensor b = empty({1000, 250}, DType::Float32, kCuda);
  }
  const cuda::AllocatorStats warm = cuda::allocator_stats();
  for (int step = 0; step < 20; ++step) {
    Tensor a = empty({1000, 257}, DType::Float32, kCuda);
    Tensor b = empty({1000, 250}, DType::Float32, kCuda);
  }
  const cuda::AllocatorStats after = cuda::allocator_stats();
  EXPECT_LE(warm.device_mallocs - before.device_mallocs, 1);
  EXPECT_EQ(after.device_mallocs, warm.device_mallocs) << "steady state must not call cudaMalloc";
  EXPECT_EQ(after.device_frees, warm.device_frees);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_GT(after.cached_bytes, 0);
  cuda::empty_cache();
  EXPECT_EQ(cuda::allocator_stats().cached_bytes, 0);
}

TEST(CudaBackend, RoundTripsKeepEveryDtypeBitExact) {
  OKD_REQUIRE_GPU();
  Generator g(7);
  const std::vector<Tensor> cases = {
      randn({3, 5}, g, DType::Float32),
      randn({2, 3, 4}, g, DType::Float64),
      randint(-1000, 1000, {17}, g, DType::Int64),
      randint(0, 256, {4, 9}, g, DType::UInt8),
      scalar_tensor(3.25),
      empty({0, 4}),
      randn({3 << 20}, g, DType::Float32),                     // 12 MiB: three staging chunks
      ops::transpose(randn({6, 7}, g, DType::Float32), 0, 1),  // non-contiguous source
  };
  for (const Tensor& t : cases) {
    SCOPED_TRACE(t.desc());
    Tensor d = gpu(t);
    EXPECT_TRUE(d.device().is_cuda());
    EXPECT_EQ(d.shape(), t.shape());
    Tensor back = cpu(d);
    EXPECT_TRUE(back.device().is_cpu());
    EXPECT_TRUE(test::allclose(back, t, 0, 0));
    EXPECT_TRUE(test::allclose(cpu(ops::clone(d)), t, 0, 0)) << "device-to-device copy";
  }
}

TEST(CudaBackend, CopyFillAndContiguousMatchCpu) {
  OKD_REQUIRE_GPU();
  Tensor src = randn_t({4, 1, 6}, DType::Float64, 11);
  Tensor dst_cpu = zeros({4, 5, 6}, DType::Float32);
  ops::copy_(dst_cpu, src);  // broadcast and float64 -> float32
  Tensor dst_gpu = zeros({4, 5, 6}, DType::Float32, kCuda);
  ops::copy_(dst_gpu, gpu(src));
  EXPECT_TRUE(matches(dst_gpu, dst_cpu, 0, 0));
  Tensor from_host = zeros({4, 5, 6}, DType::Float32, kCuda);
  ops::copy_(from_host, src);  // host source, device destination
  EXPECT_TRUE(matches(from_host, dst_cpu, 0, 0));
  Tensor to_host = zeros({4, 5, 6}, DType::Float32);
  ops::copy_(to_host, dst_gpu);  // device source, host destination
  EXPECT_TRUE(test::allclose(to_host, dst_cpu, 0, 0));

  Tensor x = randn_t({5, 6, 7}, DType::Float32, 12);
  Tensor p = ops::permute(gpu(x), {2, 0, 1});
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_TRUE(matches(ops::contiguous(p), ops::contiguous(ops::permute(x, {2, 0, 1})), 0, 0));
  EXPECT_TRUE(matches(ops::to(gpu(x), DType::Float64), ops::to(x, DType::Float64), 0, 0));
  EXPECT_TRUE(matches(ops::to(gpu(x), DType::Int64), ops::to(x, DType::Int64), 0, 0));

  Tensor f = empty({3, 8}, DType::Float64, kCuda);
  ops::fill_(ops::slice(f, 1, 0, 8, 2), 2.5);  // strided fill
  ops::fill_(ops::slice(f, 1, 1, 8, 2), -1.0);
  Tensor fr = empty({3, 8}, DType::Float64);
  ops::fill_(ops::slice(fr, 1, 0, 8, 2), 2.5);
  ops::fill_(ops::slice(fr, 1, 1, 8, 2), -1.0);
  EXPECT_TRUE(matches(f, fr, 0, 0));
  EXPECT_TRUE(matches(zeros({7}, DType::Int64, kCuda), zeros({7}, DType::Int64), 0, 0));
  EXPECT_TRUE(matches(ones({2, 2}, DType::UInt8, kCuda), ones({2, 2}, DType::UInt8), 0, 0));
}

// ---- elementwise -------------------------------------------------------------------------------

TEST(CudaOps, UnaryMatchesCpu) {
  OKD_REQUIRE_GPU();
  using F = std::function<Tensor(const Tensor&)>;
  struct Case {
    const char* name;
    F f;
    bool positive;  // needs inputs > 0
  };
  const std::vector<Case> cases = {
      {"neg", [](const Tensor& x) { return ops::neg(x); }, false},
      {"exp", [](const Tensor& x) { return ops::exp(x); }, false},
      {"log", [](const Tensor& x) { return ops::log(x); }, true},
      {"sqrt", [](const Tensor& x) { return ops::sqrt(x); }, true},
      {"rsqrt", [](const Tensor& x) { return ops::rsqrt(x); }, true},
      {"abs", [](const Tensor& x) { return ops::abs(x); }, false},
      {"sign", [](const Tensor& x) { return ops::sign(x); }, false},
      {"relu", [](const Tensor& x) { return ops::relu(x); }, false},
      {"sigmoid", [](const Tensor& x) { return ops::sigmoid(x); }, false},
      {"tanh", [](const Tensor& x) { return ops::tanh(x); }, false},
      {"pow2", [](const Tensor& x) { return ops::pow(x, 2.0); }, false},
      {"pow1.7", [](const Tensor& x) { return ops::pow(x, 1.7); }, true},
      {"clamp", [](const Tensor& x) { return ops::clamp(x, -0.5, 0.7); }, false},
      {"add_s", [](const Tensor& x) { return ops::add(x, 0.3); }, false},
      {"mul_s", [](const Tensor& x) { return ops::mul(x, -1.5); }, false},
      {"rsub", [](const Tensor& x) { return ops::rsub(2.0, x); }, false},
      {"rdiv", [](const Tensor& x) { return ops::rdiv(2.0, x); }, true},
  };
  for (DType dt : kFloats) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dt));
      Tensor x = c.positive ? uniform_t({33, 65}, 0.1, 3.0, dt, 21) : randn_t({33, 65}, dt, 21);
      EXPECT_TRUE(matches(c.f(gpu(x)), c.f(x), rtol_for(dt, 1e-5)));
      // a transposed (non-contiguous) input takes the strided path
      Tensor xt = ops::transpose(x, 0, 1);
      EXPECT_TRUE(matches(c.f(ops::transpose(gpu(x), 0, 1)), c.f(xt), rtol_for(dt, 1e-5)));
    }
  }
}

TEST(CudaOps, BinaryBroadcastingMatchesCpu) {
  OKD_REQUIRE_GPU();
  using F = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<std::pair<const char*, F>> ops_list = {
      {"add", [](const Tensor& a, const Tensor& b) { return ops::add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return ops::sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return ops::mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return ops::div(a, b); }},
      {"pow", [](const Tensor& a, const Tensor& b) { return ops::pow(ops::abs(a), b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return ops::maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return ops::minimum(a, b); }},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{8, 9}, {8, 9}}, {{4, 1, 5}, {3, 1}}, {{7}, {2, 3, 7}}, {{}, {5, 4}}, {{6, 1}, {1, 6}}};
  for (DType dt : kFloats) {
    for (const auto& [name, f] : ops_list) {
      for (const auto& [sa, sb] : shapes) {
        SCOPED_TRACE(std::string(name) + " " + shape_str(sa) + " " + shape_str(sb) + " " +
                     dtype_name(dt));
        Tensor a = randn_t(sa, dt, 31), b = uniform_t(sb, 0.5, 2.0, dt, 32);
        EXPECT_TRUE(matches(f(gpu(a), gpu(b)), f(a, b), rtol_for(dt, 1e-5)));
      }
    }
  }
  // a sliced operand (stride 2) against a transposed one
  Tensor a = randn_t({10, 12}, DType::Float32, 33), b = randn_t({6, 10}, DType::Float32, 34);
  Tensor ref = ops::mul(ops::slice(a, 1, 0, 12, 2), ops::transpose(b, 0, 1));
  Tensor got = ops::mul(ops::slice(gpu(a), 1, 0, 12, 2), ops::transpose(gpu(b), 0, 1));
  EXPECT_TRUE(matches(got, ref, 1e-6));
}

TEST(CudaOps, ComparisonsAndWhereMatchCpu) {
  OKD_REQUIRE_GPU();
  using F = std::function<Tensor(const Tensor&, const Tensor&)>;
  const std::vector<F> cmp = {
      [](const Tensor& a, const Tensor& b) { return ops::eq(a, b); },
      [](const Tensor& a, const Tensor& b) { return ops::ne(a, b); },
      [](const Tensor& a, const Tensor& b) { return ops::lt(a, b); },
      [](const Tensor& a, const Tensor& b) { return ops::le(a, b); },
      [](const Tensor& a, const Tensor& b) { return ops::gt(a, b); },
      [](const Tensor& a, const Tensor& b) { return ops::ge(a, b); },
  };
  Generator g(41);
  // integers in a small range so that equality happens often; float copies of the same values
  Tensor ai = randint(-3, 4, {5, 6}, g), bi = randint(-3, 4, {6}, g);
  for (DType dt : {DType::Int64, DType::Float32, DType::Float64, DType::UInt8}) {
    Tensor a = ops::to(dt == DType::UInt8 ? ops::add(ai, 3.0) : ai, dt);
    Tensor b = ops::to(dt == DType::UInt8 ? ops::add(bi, 3.0) : bi, dt);
    for (size_t k = 0; k < cmp.size(); ++k) {
      SCOPED_TRACE(std::to_string(k) + " " + dtype_name(dt));
      EXPECT_TRUE(matches(cmp[k](gpu(a), gpu(b)), cmp[k](a, b), 0, 0));
    }
    EXPECT_TRUE(matches(ops::gt(gpu(a), 0.5), ops::gt(a, 0.5), 0, 0));
    EXPECT_TRUE(matches(ops::lt(gpu(a), 1.0), ops::lt(a, 1.0), 0, 0));
    EXPECT_TRUE(matches(ops::ge(gpu(a), 1.0), ops::ge(a, 1.0), 0, 0));
    EXPECT_TRUE(matches(ops::le(gpu(a), -1.0), ops::le(a, -1.0), 0, 0));
    EXPECT_TRUE(matches(ops::eq(gpu(a), 2.0), ops::eq(a, 2.0), 0, 0));
    Tensor cond = ops::gt(a, b);
    EXPECT_TRUE(matches(ops::where(gpu(cond), gpu(a), gpu(b)), ops::where(cond, a, b), 0, 0));
  }
}

TEST(CudaOps, InPlaceUpdatesMatchCpuAndBumpTheVersion) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = randn_t({16, 10}, dt, 51), row = randn_t({10}, dt, 52);
    Tensor xc = ops::clone(x), xg = gpu(x);
    const uint64_t v0 = xg.impl()->storage->version();
    ops::add_(xc, row);
    ops::add_(xg, gpu(row));
    ops::add_(xc, row, -0.37);
    ops::add_(xg, gpu(row), -0.37);
    ops::mul_(xc, row);
    ops::mul_(xg, gpu(row));
    ops::mul_(xc, 1.7);
    ops::mul_(xg, 1.7);
    EXPECT_EQ(xg.impl()->storage->version(), v0 + 4);
    EXPECT_TRUE(matches(xg, xc, rtol_for(dt, 1e-6)));
    // through a strided view: only the even columns change
    Tensor vc = ops::slice(xc, 1, 0, 10, 2), vg = ops::slice(xg, 1, 0, 10, 2);
    ops::add_(vc, ops::slice(row, 0, 0, 10, 2));
    ops::add_(vg, ops::slice(gpu(row), 0, 0, 10, 2));
    EXPECT_TRUE(matches(xg, xc, rtol_for(dt, 1e-6)));
  }
}

TEST(CudaOps, ReluBackwardMatchesCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    Tensor y = ops::relu(randn_t({64, 33}, dt, 61)), dy = randn_t({64, 33}, dt, 62);
    EXPECT_TRUE(matches(ops::relu_backward(gpu(dy), gpu(y)), ops::relu_backward(dy, y), 0, 0));
  }
}

// ---- reductions --------------------------------------------------------------------------------

TEST(CudaOps, ReductionsMatchCpu) {
  OKD_REQUIRE_GPU();
  const std::vector<std::vector<int64_t>> dims_list = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}};
  for (DType dt : kFloats) {
    Tensor x = randn_t({6, 37, 129}, dt, 71);
    Tensor xg = gpu(x);
    for (const auto& dims : dims_list) {
      for (bool keep : {false, true}) {
        SCOPED_TRACE(shape_str(dims) + (keep ? " keepdim " : " ") + dtype_name(dt));
        const double r = rtol_for(dt, 1e-5);
        EXPECT_TRUE(matches(ops::sum(xg, dims, keep), ops::sum(x, dims, keep), r, 1e-5));
        EXPECT_TRUE(matches(ops::mean(xg, dims, keep), ops::mean(x, dims, keep), r));
        EXPECT_TRUE(matches(ops::var(xg, dims, true, keep), ops::var(x, dims, true, keep), r));
        EXPECT_TRUE(matches(ops::var(xg, dims, false, keep), ops::var(x, dims, false, keep), r));
        EXPECT_TRUE(matches(ops::std(xg, dims, true, keep), ops::std(x, dims, true, keep), r));
        EXPECT_TRUE(matches(ops::amax(xg, dims, keep), ops::amax(x, dims, keep), 0, 0));
        EXPECT_TRUE(matches(ops::amin(xg, dims, keep), ops::amin(x, dims, keep), 0, 0));
      }
    }
    // a transposed input, and sum_to (the reverse of broadcasting) built on sum
    Tensor t = ops::transpose(x, 0, 2);
    EXPECT_TRUE(matches(ops::sum(ops::transpose(xg, 0, 2), {1}), ops::sum(t, {1}),
                        rtol_for(dt, 1e-5), 1e-5));
    EXPECT_TRUE(
        matches(ops::sum_to(xg, {37, 1}), ops::sum_to(x, {37, 1}), rtol_for(dt, 1e-5), 1e-5));
  }
}

TEST(CudaOps, LongReductionsUseTwoPassesAndMatchCpu) {
  OKD_REQUIRE_GPU();
  // 2^21 elements in one row (split into chunks), and 3 rows of 300k (fewer rows than blocks)
  for (const Shape& s : {Shape{1 << 21}, Shape{3, 300001}}) {
    SCOPED_TRACE(shape_str(s));
    Tensor x = uniform_t(s, -1.0, 3.0, DType::Float32, 81);  // a nonzero mean
    Tensor xg = gpu(x);
    EXPECT_TRUE(matches(ops::sum(xg, {-1}), ops::sum(x, {-1}), 1e-5));
    EXPECT_TRUE(matches(ops::mean(xg, {-1}), ops::mean(x, {-1}), 1e-5));
    EXPECT_TRUE(matches(ops::var(xg, {-1}), ops::var(x, {-1}), 1e-5));
    EXPECT_TRUE(matches(ops::amax(xg, {-1}), ops::amax(x, {-1}), 0, 0));
    EXPECT_TRUE(matches(ops::amin(xg, {-1}), ops::amin(x, {-1}), 0, 0));
  }
}

TEST(CudaOps, MaxMinIntegerReductionsLogsumexpNormMatchCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
    SCOPED_TRACE(dtype_name(dt));
    Generator g(171);
    // small integers, so ties happen and the first occurrence must win
    Tensor x = ops::to(randint(0, 6, {7, 33, 5}, g), dt);
    for (int64_t dim : {0, 1, -1}) {
      for (bool keep : {false, true}) {
        auto [v, i] = ops::max(x, dim, keep);
        auto [vg, ig] = ops::max(gpu(x), dim, keep);
        EXPECT_TRUE(matches(vg, v, 0, 0));
        EXPECT_TRUE(matches(ig, i, 0, 0));
        auto [mv, mi] = ops::min(x, dim, keep);
        auto [mvg, mig] = ops::min(gpu(x), dim, keep);
        EXPECT_TRUE(matches(mvg, mv, 0, 0));
        EXPECT_TRUE(matches(mig, mi, 0, 0));
      }
    }
    EXPECT_TRUE(matches(ops::argmax(gpu(x), 1), ops::argmax(x, 1), 0, 0));
    if (!is_floating(dt)) {  // integer sum (an int64 result), amax and amin
      for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {1}, {0, 2}}) {
        EXPECT_TRUE(matches(ops::sum(gpu(x), dims), ops::sum(x, dims), 0, 0));
        EXPECT_TRUE(matches(ops::amax(gpu(x), dims, true), ops::amax(x, dims, true), 0, 0));
        EXPECT_TRUE(matches(ops::amin(gpu(x), dims), ops::amin(x, dims), 0, 0));
      }
    }
  }
  // a NaN wins max and min, the first one when there are several
  Tensor n = from_vector<float>({1.f, NAN, 3.f, NAN, 0.f, 2.f}, {2, 3});
  EXPECT_TRUE(matches(ops::max(gpu(n), 1).second, ops::max(n, 1).second, 0, 0));
  EXPECT_TRUE(matches(ops::min(gpu(n), 0).second, ops::min(n, 0).second, 0, 0));
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor x = ops::mul(randn_t({6, 40, 9}, dt, 172), 5.0);
    const double r = rtol_for(dt, 1e-5);
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{1}, {0, 2}, {}}) {
      for (bool keep : {false, true}) {
        EXPECT_TRUE(matches(ops::logsumexp(gpu(x), dims, keep), ops::logsumexp(x, dims, keep), r));
        for (double p : {1.0, 2.0, 3.0, static_cast<double>(INFINITY)})
          EXPECT_TRUE(matches(ops::norm(gpu(x), p, dims, keep), ops::norm(x, p, dims, keep), r));
      }
    }
    // rows of -inf give -inf, as on the CPU
    Tensor ninf = full({2, 3}, -INFINITY, dt);
    EXPECT_TRUE(matches(ops::logsumexp(gpu(ninf), {1}), ops::logsumexp(ninf, {1}), 0, 0));
  }
}

TEST(CudaOps, ReductionsAreBitIdenticalFromRunToRun) {
  OKD_REQUIRE_GPU();
  Tensor xg = gpu(randn_t({5, 400000}, DType::Float32, 91));
  Tensor first = cpu(ops::sum(xg, {1})), first_all = cpu(ops::var(xg));
  for (int run = 0; run < 5; ++run) {
    EXPECT_TRUE(test::allclose(cpu(ops::sum(xg, {1})), first, 0, 0));
    EXPECT_TRUE(test::allclose(cpu(ops::var(xg)), first_all, 0, 0));
  }
}

// ---- matmul ------------------------------------------------------------------------------------

TEST(CudaOps, MatmulMatchesCpu) {
  OKD_REQUIRE_GPU();
  EXPECT_FALSE(cuda::allow_tf32()) << "TF32 must be off by default";
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{37, 29}, {29, 41}},   {{29}, {29, 41}},          {{37, 29}, {29}},    {{29}, {29}},
      {{4, 7, 9}, {4, 9, 5}}, {{3, 1, 7, 9}, {2, 9, 5}}, {{7, 9}, {6, 9, 5}}, {{1, 64}, {64, 1}}};
  for (DType dt : kFloats) {
    for (const auto& [sa, sb] : shapes) {
      SCOPED_TRACE(shape_str(sa) + " @ " + shape_str(sb) + " " + dtype_name(dt));
      Tensor a = randn_t(sa, dt, 101), b = randn_t(sb, dt, 102);
      EXPECT_TRUE(matches(ops::matmul(gpu(a), gpu(b)), ops::matmul(a, b), rtol_for(dt, 1e-4),
                          dt == DType::Float32 ? 1e-4 : 1e-10));
    }
    // transposed and sliced operands are read in place or copied, never wrong
    Tensor a = randn_t({30, 20}, dt, 103), b = randn_t({40, 30}, dt, 104);
    Tensor at = ops::transpose(a, 0, 1), bt = ops::transpose(b, 0, 1);
    EXPECT_TRUE(matches(ops::matmul(ops::transpose(gpu(a), 0, 1), ops::transpose(gpu(b), 0, 1)),
                        ops::matmul(at, bt), rtol_for(dt, 1e-4), 1e-4));
    Tensor as = ops::slice(a, 1, 0, 20, 2);
    EXPECT_TRUE(matches(ops::matmul(ops::slice(gpu(a), 1, 0, 20, 2), gpu(randn_t({10, 3}, dt, 5))),
                        ops::matmul(as, randn_t({10, 3}, dt, 5)), rtol_for(dt, 1e-4), 1e-4));
  }
  // K = 0 is a product of empty sums: zeros
  EXPECT_TRUE(matches(
      ops::matmul(empty({3, 0}, DType::Float32, kCuda), empty({0, 4}, DType::Float32, kCuda)),
      zeros({3, 4}), 0, 0));
}

// ---- softmax family and cross-entropy ----------------------------------------------------------

TEST(CudaOps, LogSoftmaxForwardBackwardMatchCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    for (const Shape& s : {Shape{8, 10}, Shape{3, 5, 1000}, Shape{7}}) {
      SCOPED_TRACE(shape_str(s) + " " + dtype_name(dt));
      Tensor x = ops::mul(randn_t(s, dt, 111), 4.0), dy = randn_t(s, dt, 112);
      Tensor y = ops::log_softmax_lastdim(x);
      Tensor yg = ops::log_softmax_lastdim(gpu(x));
      EXPECT_TRUE(matches(yg, y, rtol_for(dt, 1e-5)));
      EXPECT_TRUE(matches(ops::log_softmax_lastdim_backward(gpu(dy), yg),
                          ops::log_softmax_lastdim_backward(dy, y), rtol_for(dt, 1e-5), 1e-5));
    }
  }
}

TEST(CudaOps, CrossEntropyForwardBackwardMatchCpu) {
  OKD_REQUIRE_GPU();
  Generator g(121);
  for (DType dt : kFloats) {
    const int64_t N = 37, C = 100;
    Tensor logits = ops::mul(randn({N, C}, g, dt), 3.0);
    Tensor targets = randint(0, C, {N}, g);
    Tensor weights = uniform({C}, 0.5, 2.0, g, dt);
    for (double eps : {0.0, 0.1}) {
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " eps " + std::to_string(eps) +
                     (weighted ? " weighted" : ""));
        const Tensor w = weighted ? weights : Tensor();
        const Tensor wg = weighted ? gpu(weights) : Tensor();
        EXPECT_TRUE(matches(ops::cross_entropy_forward(gpu(logits), gpu(targets), eps, wg),
                            ops::cross_entropy_forward(logits, targets, eps, w),
                            rtol_for(dt, 1e-5)));
        const Tensor g07 = full({}, 0.7, dt);
        EXPECT_TRUE(matches(
            ops::cross_entropy_backward(gpu(g07), gpu(logits), gpu(targets), eps, wg),
            ops::cross_entropy_backward(g07, logits, targets, eps, w), rtol_for(dt, 1e-5), 1e-7));
      }
    }
  }
  // A bad target is found by the kernel and raised at the next host synchronisation (the call
  // itself returns), with the CPU's message; the record is cleared after it was raised.
  Tensor bad = from_vector<int64_t>({0, 100});
  Tensor loss = ops::cross_entropy_forward(gpu(randn_t({2, 100}, DType::Float32, 1)), gpu(bad), 0.0,
                                           Tensor());
  std::string err = error_of([&] { loss.item(); });
  EXPECT_NE(err.find("cross_entropy: target 100 at position 1 is outside [0, 100)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("next host synchronisation"), std::string::npos) << err;
  EXPECT_NO_THROW(cuda::synchronize());
  ops::cross_entropy_backward(gpu(full({}, 1.0)), gpu(randn_t({2, 100}, DType::Float32, 1)),
                              gpu(from_vector<int64_t>({-1, 3})), 0.0, Tensor());
  err = error_of([&] { cuda::synchronize(); });
  EXPECT_NE(err.find("cross_entropy: target -1 at position 0"), std::string::npos) << err;
}

// The multi-tensor SGD step (tensor/ops/update.h): 100 parameters of assorted sizes (three
// launches of up to 48) against sgd_step_ on the CPU, one parameter at a time, over three steps.
// Tolerance: the 1e-5 relative, and 1e-6 absolute for float32: nvcc contracts the update
// buf = m buf + (g + wd p) into fused multiply-adds, so each step can differ from the CPU's by an
// ulp of its terms (about 1, unit-normal gradients) while the buffer cancels down to ~0.02 (the
// SIMT simulator with OKD_SIM_FMA=ON showed 1.2e-7 absolute, 7e-6 relative, after three steps).
TEST(CudaOps, SgdForeachMatchesPerTensorSteps) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<Tensor> pc, pd, bc, bd;
    for (int i = 0; i < 100; ++i) {
      const Shape shape{1 + (i * 37) % 300, 1 + i % 7};
      Tensor p = randn_t(shape, dt, 300 + i);
      pc.push_back(ops::clone(p));
      pd.push_back(gpu(p));
      bc.push_back(zeros(shape, dt));
      bd.push_back(zeros(shape, dt, kCuda));
    }
    cuda::SgdStep s;
    s.lr = 0.1;
    s.weight_decay = 5e-4;
    s.momentum = 0.9;
    s.nesterov = true;
    for (int step = 0; step < 3; ++step) {
      s.first = step == 0;
      std::vector<Tensor> gc, gd;
      for (int i = 0; i < 100; ++i) {
        gc.push_back(randn_t(pc[i].shape(), dt, 1000 * step + i));
        gd.push_back(gpu(gc.back()));
        ops::sgd_step_(pc[i], gc[i], bc[i], s);
      }
      ops::sgd_step_foreach_(pd, gd, bd, s);
    }
    for (int i = 0; i < 100; ++i) {
      const double atol = dt == DType::Float32 ? 1e-6 : 1e-12;
      EXPECT_TRUE(matches(pd[i], pc[i], rtol_for(dt, 1e-5), atol)) << i;
      EXPECT_TRUE(matches(bd[i], bc[i], rtol_for(dt, 1e-5), atol)) << i;
    }
  }
}

// The multi-tensor Adam step (tensor/ops/update.h): 100 parameters of assorted sizes (three
// launches of up to 48) at different t, read from device step counters, over three steps, Adam
// and AdamW with amsgrad: equal to adam_step_ on the device one parameter at a time (the same
// element code, so exactly) and to the CPU's per-tensor steps within tolerance.
TEST(CudaOps, AdamForeachMatchesPerTensorSteps) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats)
    for (bool decoupled : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (decoupled ? " AdamW" : " Adam"));
      const int n = 100;
      // [c]pu and [d]evice one tensor at a time, [f]oreach on the device.
      std::vector<Tensor> pc, mc, vc, xc, pd, md, vd, xd, pf, mf, vf, xf, cnt_d, cnt_f;
      for (int i = 0; i < n; ++i) {
        const Shape shape{1 + (i * 37) % 300, 1 + i % 7};
        const Tensor p = randn_t(shape, dt, 400 + i);
        pc.push_back(ops::clone(p));
        pd.push_back(gpu(p));
        pf.push_back(gpu(p));
        for (auto* l : {&mc, &vc, &xc}) l->push_back(zeros(shape, dt));
        for (auto* l : {&md, &vd, &xd, &mf, &vf, &xf}) l->push_back(zeros(shape, dt, kCuda));
        cnt_d.push_back(full({}, 1 + i % 3, DType::Int64, kCuda));  // t starts at 1, 2 or 3
        cnt_f.push_back(full({}, 1 + i % 3, DType::Int64, kCuda));
      }
      cuda::AdamStep s;
      s.lr = 1e-2;
      s.weight_decay = 1e-2;
      s.decoupled = decoupled;
      s.amsgrad = true;
      for (int step = 0; step < 3; ++step) {
        std::vector<Tensor> gd;
        for (int i = 0; i < n; ++i) {
          const Tensor g = randn_t(pc[i].shape(), dt, 2000 + 1000 * step + i);
          gd.push_back(gpu(g));
          cuda::AdamStep si = s;
          si.step = 1 + i % 3 + step;
          ops::adam_step_(pc[i], g, mc[i], vc[i], xc[i], si);
          si.step = 1000;  // ignored: the counter holds t
          si.step_counter = cnt_d[i];
          ops::adam_step_(pd[i], gd[i], md[i], vd[i], xd[i], si);
          ops::counter_add_(cnt_d[i], 1);
        }
        ops::adam_step_foreach_(pf, gd, mf, vf, xf, std::vector<int64_t>(n, 1000), cnt_f, s);
        for (int i = 0; i < n; ++i) ops::counter_add_(cnt_f[i], 1);
      }
      for (int i = 0; i < n; ++i) {
        EXPECT_TRUE(matches(pf[i], pc[i], rtol_for(dt, 1e-5), 1e-6)) << i;
        EXPECT_TRUE(matches(mf[i], mc[i], rtol_for(dt, 1e-5), 1e-6)) << i;
        EXPECT_TRUE(matches(vf[i], vc[i], rtol_for(dt, 1e-5), 1e-6)) << i;
        EXPECT_EQ(to_vector<double>(pf[i]), to_vector<double>(pd[i])) << i;
        EXPECT_EQ(to_vector<double>(mf[i]), to_vector<double>(md[i])) << i;
        EXPECT_EQ(to_vector<double>(vf[i]), to_vector<double>(vd[i])) << i;
        EXPECT_EQ(to_vector<double>(xf[i]), to_vector<double>(xd[i])) << i;
      }
    }
}

// ---- convolution (cuDNN), batch norm, pooling -------------------------------------------------

TEST(CudaOps, Conv2dForwardAndBothGradientsMatchCpu) {
  OKD_REQUIRE_GPU();
  struct Case {
    Shape x, w;
    ops::Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{4, 3, 12, 11}, {8, 3, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},  // 3x3, pad 1
      {{2, 8, 9, 9}, {6, 8, 1, 1}, {1, 1, 0, 0, 1, 1, 1}},    // pointwise
      {{3, 4, 13, 10}, {6, 2, 3, 2}, {2, 1, 1, 0, 1, 2, 2}},  // stride, dilation, 2 groups
      {{2, 6, 8, 8}, {6, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 6}},    // depthwise
  };
  for (DType dt : kFloats) {
    for (bool det : {false, true}) {
      cuda::set_deterministic(det);
      for (const Case& c : cases) {
        SCOPED_TRACE(shape_str(c.x) + " * " + shape_str(c.w) + " " + dtype_name(dt) +
                     (det ? " deterministic" : ""));
        Tensor x = randn_t(c.x, dt, 131), w = randn_t(c.w, dt, 132), b = randn_t({c.w[0]}, dt, 133);
        Tensor y = ops::conv2d_forward(x, w, b, c.p);
        Tensor yg = ops::conv2d_forward(gpu(x), gpu(w), gpu(b), c.p);
        const double r = rtol_for(dt, 1e-4), at = dt == DType::Float32 ? 1e-4 : 1e-10;
        EXPECT_TRUE(matches(yg, y, r, at));
        Tensor dy = randn_t(y.shape(), dt, 134);
        EXPECT_TRUE(matches(ops::conv2d_backward_input(gpu(dy), gpu(w), c.x, c.p),
                            ops::conv2d_backward_input(dy, w, c.x, c.p), r, at));
        EXPECT_TRUE(matches(ops::conv2d_backward_weight(gpu(dy), gpu(x), c.w, c.p),
                            ops::conv2d_backward_weight(dy, x, c.w, c.p), r, at));
        EXPECT_TRUE(matches(ops::conv2d_backward_bias(gpu(dy)), ops::conv2d_backward_bias(dy),
                            rtol_for(dt, 1e-5), 1e-5));
      }
    }
  }
  cuda::set_deterministic(false);
  // the transposed convolution, with output padding and a bias
  Tensor x = randn_t({2, 4, 5, 6}, DType::Float32, 135),
         w = randn_t({4, 3, 3, 3}, DType::Float32, 136);
  Tensor b = randn_t({3}, DType::Float32, 137);
  const ops::Conv2dParams p{2, 2, 1, 1, 1, 1, 1};
  EXPECT_TRUE(matches(ops::conv_transpose2d_forward(gpu(x), gpu(w), gpu(b), p, 1, 0),
                      ops::conv_transpose2d_forward(x, w, b, p, 1, 0), 1e-4, 1e-4));
  // output_padding >= stride (dilation 2): cropped from the unpadded output, as on the CPU
  const ops::Conv2dParams q{1, 1, 1, 1, 2, 2, 1};
  EXPECT_TRUE(matches(ops::conv_transpose2d_forward(gpu(x), gpu(w), gpu(b), q, 1, 1),
                      ops::conv_transpose2d_forward(x, w, b, q, 1, 1), 1e-4, 1e-4));
}

TEST(CudaOps, DeterministicConvolutionsAreBitIdenticalFromRunToRun) {
  OKD_REQUIRE_GPU();
  cuda::set_deterministic(true);
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Tensor x = gpu(randn_t({16, 16, 16, 16}, DType::Float32, 141));
  Tensor dy = gpu(randn_t({16, 32, 16, 16}, DType::Float32, 142));
  Tensor first = cpu(ops::conv2d_backward_weight(dy, x, {32, 16, 3, 3}, p));
  for (int run = 0; run < 3; ++run)
    EXPECT_TRUE(
        test::allclose(cpu(ops::conv2d_backward_weight(dy, x, {32, 16, 3, 3}, p)), first, 0, 0));
  cuda::set_deterministic(false);
}

// Training batch norm is one kernel each way on the GPU (norm_cuda.cu), the fused ReLU, residual
// and ReLU mask included; eval mode is composed of generic ops.
TEST(CudaOps, BatchNormTrainEvalBackwardMatchCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    for (const Shape& s : {Shape{8, 5, 6, 7}, Shape{16, 3}, Shape{12, 4, 32, 32}}) {
      SCOPED_TRACE(shape_str(s) + " " + dtype_name(dt));
      const int64_t C = s[1];
      Tensor x = ops::add(ops::mul(randn_t(s, dt, 151), 2.0), 0.5);
      Tensor w = uniform_t({C}, 0.5, 1.5, dt, 152), b = randn_t({C}, dt, 153);
      const double r = rtol_for(dt, 1e-5);
      auto [y, st] = ops::batch_norm_train(x, w, b, 1e-5);
      auto [yg, stg] = ops::batch_norm_train(gpu(x), gpu(w), gpu(b), 1e-5);
      EXPECT_TRUE(matches(yg, y, r, 1e-5));
      EXPECT_TRUE(matches(stg.mean, st.mean, r));
      EXPECT_TRUE(matches(stg.invstd, st.invstd, r));
      EXPECT_TRUE(matches(stg.var_unbiased, st.var_unbiased, r));
      EXPECT_TRUE(matches(
          ops::batch_norm_eval(gpu(x), gpu(st.mean), gpu(st.var_unbiased), gpu(w), gpu(b), 1e-5),
          ops::batch_norm_eval(x, st.mean, st.var_unbiased, w, b, 1e-5), r, 1e-5));
      Tensor dy = randn_t(s, dt, 154);
      auto [dx, dw, db] = ops::batch_norm_backward(dy, x, w, st.mean, st.invstd);
      auto [dxg, dwg, dbg] =
          ops::batch_norm_backward(gpu(dy), gpu(x), gpu(w), gpu(st.mean), gpu(st.invstd));
      EXPECT_TRUE(matches(dxg, dx, r, 1e-5));
      EXPECT_TRUE(matches(dwg, dw, r, 1e-5));
      EXPECT_TRUE(matches(dbg, db, r, 1e-5));
      // no affine parameters
      EXPECT_TRUE(matches(ops::batch_norm_train(gpu(x), Tensor(), Tensor(), 1e-3).first,
                          ops::batch_norm_train(x, Tensor(), Tensor(), 1e-3).first, r, 1e-5));
      // the fused forms: relu(y), relu(y + residual), and the backward masked by the output
      Tensor res = randn_t(s, dt, 155);
      for (bool with_residual : {false, true}) {
        SCOPED_TRACE(with_residual ? "relu(bn + residual)" : "relu(bn)");
        const Tensor rc = with_residual ? res : Tensor(), rg = with_residual ? gpu(res) : Tensor();
        auto [z, stz] = ops::batch_norm_train(x, w, b, 1e-5, true, rc);
        auto [zg, stzg] = ops::batch_norm_train(gpu(x), gpu(w), gpu(b), 1e-5, true, rg);
        EXPECT_TRUE(matches(zg, z, r, 1e-5));
        EXPECT_TRUE(matches(stzg.var_unbiased, stz.var_unbiased, r));
        auto [dxz, dwz, dbz] = ops::batch_norm_backward(dy, x, w, stz.mean, stz.invstd, z);
        auto [dxzg, dwzg, dbzg] = ops::batch_norm_backward(gpu(dy), gpu(x), gpu(w), gpu(stz.mean),
                                                           gpu(stz.invstd), gpu(z));
        EXPECT_TRUE(matches(dxzg, dxz, r, 1e-5));
        EXPECT_TRUE(matches(dwzg, dwz, r, 1e-5));
        EXPECT_TRUE(matches(dbzg, dbz, r, 1e-5));
      }
    }
  }
}

TEST(CudaOps, PoolingForwardBackwardMatchCpu) {
  OKD_REQUIRE_GPU();
  struct Case {
    int64_t k, s, p;
  };
  for (DType dt : kFloats) {
    for (const Case& c : {Case{2, 2, 0}, Case{3, 2, 1}, Case{3, 1, 1}, Case{4, 3, 2}}) {
      SCOPED_TRACE(std::to_string(c.k) + "/" + std::to_string(c.s) + "/" + std::to_string(c.p) +
                   " " + dtype_name(dt));
      const Shape s{3, 4, 11, 9};
      Tensor x = randn_t(s, dt, 161);
      auto [y, idx] = ops::max_pool2d_forward(x, c.k, c.s, c.p);
      auto [yg, idxg] = ops::max_pool2d_forward(gpu(x), c.k, c.s, c.p);
      EXPECT_TRUE(matches(yg, y, 0, 0));
      EXPECT_TRUE(matches(idxg, idx, 0, 0));
      Tensor dy = randn_t(y.shape(), dt, 162);
      EXPECT_TRUE(matches(ops::max_pool2d_backward(gpu(dy), idxg, s),
                          ops::max_pool2d_backward(dy, idx, s), 1e-12, 0));
      Tensor a = ops::avg_pool2d_forward(x, c.k, c.s, c.p);
      EXPECT_TRUE(matches(ops::avg_pool2d_forward(gpu(x), c.k, c.s, c.p), a, 1e-6, 1e-7));
      Tensor da = randn_t(a.shape(), dt, 163);
      EXPECT_TRUE(matches(ops::avg_pool2d_backward(gpu(da), s, c.k, c.s, c.p),
                          ops::avg_pool2d_backward(da, s, c.k, c.s, c.p), 1e-6, 1e-7));
    }
    for (const auto& [oh, ow] : {std::pair<int64_t, int64_t>{1, 1}, {3, 4}, {5, 5}}) {
      SCOPED_TRACE("adaptive " + std::to_string(oh) + "x" + std::to_string(ow));
      const Shape s{2, 3, 10, 7};
      Tensor x = randn_t(s, dt, 164), dy = randn_t({2, 3, oh, ow}, dt, 165);
      EXPECT_TRUE(matches(ops::adaptive_avg_pool2d_forward(gpu(x), oh, ow),
                          ops::adaptive_avg_pool2d_forward(x, oh, ow), 1e-6, 1e-7));
      EXPECT_TRUE(matches(ops::adaptive_avg_pool2d_backward(gpu(dy), s),
                          ops::adaptive_avg_pool2d_backward(dy, s), 1e-6, 1e-7));
    }
  }
}

// ---- indexing ----------------------------------------------------------------------------------

TEST(CudaOps, CatStackIndexSelectGatherScatterTopkOneHotMatchCpu) {
  OKD_REQUIRE_GPU();
  Generator g(181);
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor a = ops::to(randint(0, 100, {4, 5, 6}, g), dt);
    Tensor b = ops::to(randint(0, 100, {4, 2, 6}, g), dt);
    EXPECT_TRUE(matches(ops::cat({gpu(a), gpu(b), gpu(a)}, 1), ops::cat({a, b, a}, 1), 0, 0));
    EXPECT_TRUE(matches(ops::stack({gpu(a), gpu(a)}, 0), ops::stack({a, a}, 0), 0, 0));
    Tensor sel = from_vector<int64_t>({4, 0, 0, 2});
    EXPECT_TRUE(
        matches(ops::index_select(gpu(a), 1, gpu(sel)), ops::index_select(a, 1, sel), 0, 0));
    EXPECT_TRUE(matches(ops::index_select(gpu(ops::transpose(a, 0, 2)), 0, gpu(sel)),
                        ops::index_select(ops::transpose(a, 0, 2), 0, sel), 0, 0));
    Tensor gi = randint(0, 5, {4, 3, 6}, g);  // gather along dim 1 (size 5), index smaller
    EXPECT_TRUE(matches(ops::gather(gpu(a), 1, gpu(gi)), ops::gather(a, 1, gi), 0, 0));
    EXPECT_TRUE(matches(ops::gather(ops::transpose(gpu(a), 0, 1), 0, gpu(gi)),
                        ops::gather(ops::transpose(a, 0, 1), 0, gi), 0, 0));
  }
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    // repeated indices: several entries add into one element, in the CPU's order
    Tensor t = randn_t({4, 7}, dt, 182), src = randn_t({6, 7}, dt, 183);
    Tensor idx = randint(0, 4, {6, 7}, g);
    EXPECT_TRUE(matches(ops::scatter_add(gpu(t), 0, gpu(idx), gpu(src)),
                        ops::scatter_add(t, 0, idx, src), 0, 0));
    Tensor idx1 = randint(0, 7, {4, 9}, g), src1 = randn_t({4, 9}, dt, 184);
    EXPECT_TRUE(matches(ops::scatter_add(gpu(t), 1, gpu(idx1), gpu(src1)),
                        ops::scatter_add(t, 1, idx1, src1), 0, 0));
  }
  // topk (ties and NaN in the CPU's order) and kthvalue
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
    SCOPED_TRACE(std::string("topk ") + dtype_name(dt));
    Tensor x = ops::to(randint(0, 9, {5, 20, 3}, g), dt);  // many ties
    for (bool largest : {true, false}) {
      for (int64_t dim : {1, 0, -1}) {
        const int64_t k = std::min<int64_t>(4, x.size(dim));
        auto [v, i] = ops::topk(x, k, dim, largest);
        auto [vg, ig] = ops::topk(gpu(x), k, dim, largest);
        EXPECT_TRUE(matches(vg, v, 0, 0));
        EXPECT_TRUE(matches(ig, i, 0, 0));
      }
    }
    auto [kv, ki] = ops::kthvalue(x, 7, 1, true);
    auto [kvg, kig] = ops::kthvalue(gpu(x), 7, 1, true);
    EXPECT_TRUE(matches(kvg, kv, 0, 0));
    EXPECT_TRUE(matches(kig, ki, 0, 0));
  }
  Tensor nan_row = from_vector<float>({2.f, NAN, 5.f, NAN, -1.f}, {1, 5});
  EXPECT_TRUE(matches(ops::topk(gpu(nan_row), 3).second, ops::topk(nan_row, 3).second, 0, 0));
  EXPECT_TRUE(matches(ops::topk(gpu(nan_row), 3, -1, false).second,
                      ops::topk(nan_row, 3, -1, false).second, 0, 0));

  Tensor labels = randint(0, 10, {3, 5}, g);
  EXPECT_TRUE(matches(ops::one_hot(gpu(labels), 10), ops::one_hot(labels, 10), 0, 0));
  EXPECT_TRUE(matches(ops::one_hot(gpu(labels), 12, DType::Float64),
                      ops::one_hot(labels, 12, DType::Float64), 0, 0));
}

// ---- optimizer updates -------------------------------------------------------------------------

namespace {
// optim/sgd.cpp's loop, the reference of cuda::sgd_step_.
template <class T>
void sgd_reference(std::vector<T>& p, const std::vector<T>& dp, std::vector<T>& buf,
                   const cuda::SgdStep& s) {
  const T wd = static_cast<T>(s.weight_decay), mom = static_cast<T>(s.momentum);
  const T one_minus_damp = static_cast<T>(1 - s.dampening), neg_lr = static_cast<T>(-s.lr);
  for (size_t i = 0; i < p.size(); ++i) {
    T g = dp[i];
    if (s.weight_decay != 0) g = g + wd * p[i];
    if (s.momentum != 0) {
      buf[i] = s.first ? g : buf[i] * mom + one_minus_damp * g;
      g = s.nesterov ? g + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * g;
  }
}
// optim/adam.cpp's loop, the reference of cuda::adam_step_.
template <class T>
void adam_reference(std::vector<T>& p, const std::vector<T>& dp, std::vector<T>& m,
                    std::vector<T>& v, std::vector<T>& vmax, const cuda::AdamStep& s) {
  const double t = static_cast<double>(s.step);
  const double bc1 = 1 - std::pow(s.beta1, t), bc2 = 1 - std::pow(s.beta2, t);
  const T wd = static_cast<T>(s.weight_decay), shrink = static_cast<T>(1 - s.lr * s.weight_decay);
  const T b1 = static_cast<T>(s.beta1), omb1 = static_cast<T>(1 - s.beta1);
  const T b2 = static_cast<T>(s.beta2), omb2 = static_cast<T>(1 - s.beta2);
  const T bc2s = static_cast<T>(std::sqrt(bc2)), eps = static_cast<T>(s.eps);
  const T nss = static_cast<T>(-(s.lr / bc1));
  for (size_t i = 0; i < p.size(); ++i) {
    if (s.decoupled) p[i] = p[i] * shrink;
    T g = dp[i];
    if (!s.decoupled && s.weight_decay != 0) g = g + wd * p[i];
    m[i] = m[i] * b1 + omb1 * g;
    v[i] = v[i] * b2 + omb2 * g * g;
    T second = v[i];
    if (s.amsgrad) second = vmax[i] = std::max(vmax[i], v[i]);
    const T denom = std::sqrt(second) / bc2s + eps;
    p[i] = p[i] + nss * m[i] / denom;
  }
}

// Copies of the reference state (held as double) in the dtype under test, and back.
template <class T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <class T>
std::vector<double> back_to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}
}  // namespace

TEST(CudaOps, SgdAndAdamUpdatesMatchTheOptimLoops) {
  OKD_REQUIRE_GPU();
  auto as_tensor = [](const std::vector<double>& v, const Shape& s, DType dt) {
    return ops::to(from_vector<double>(v, s), dt);
  };
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    const double r = rtol_for(dt, 1e-6);
    const Shape shape{37, 11};
    for (bool nesterov : {false, true}) {
      cuda::SgdStep s;
      s.lr = 0.1;
      s.weight_decay = 5e-4;
      s.momentum = 0.9;
      s.nesterov = nesterov;
      Tensor p = randn_t(shape, dt, 201);
      Tensor pg = gpu(p), bufg = zeros(shape, dt, kCuda);
      std::vector<double> pr = to_vector<double>(p), br(p.numel(), 0.0);
      for (int step = 0; step < 3; ++step) {
        Tensor g = randn_t(shape, dt, 202 + step);
        s.first = step == 0;
        cuda::sgd_step_(pg, gpu(g), bufg, s);
        if (dt == DType::Float32) {
          std::vector<float> pf = as<float>(pr), bf = as<float>(br);
          sgd_reference<float>(pf, to_vector<float>(g), bf, s);
          pr = back_to_double(pf);
          br = back_to_double(bf);
        } else {
          sgd_reference<double>(pr, to_vector<double>(g), br, s);
        }
      }
      EXPECT_TRUE(matches(pg, as_tensor(pr, shape, dt), r, 1e-7));
      EXPECT_TRUE(matches(bufg, as_tensor(br, shape, dt), r, 1e-7));
    }
    // decoupled = AdamW; counter: t read by the kernel from a device step counter (the path
    // optim::Adam takes on a device, so that a captured step replays with t advanced).
    for (auto [decoupled, counter] : {std::pair{false, false}, {true, false}, {false, true}}) {
      SCOPED_TRACE(std::string(decoupled ? "AdamW" : "Adam") + (counter ? " counter" : ""));
      cuda::AdamStep s;
      s.lr = 1e-2;
      s.weight_decay = 1e-2;
      s.decoupled = decoupled;
      s.amsgrad = true;
      Tensor p = randn_t(shape, dt, 211);
      Tensor pg = gpu(p), mg = zeros(shape, dt, kCuda), vg = zeros(shape, dt, kCuda),
             vmaxg = zeros(shape, dt, kCuda);
      std::vector<double> pr = to_vector<double>(p), mr(p.numel(), 0.0), vr(p.numel(), 0.0),
                          vmr(p.numel(), 0.0);
      for (int step = 1; step <= 3; ++step) {
        Tensor g = randn_t(shape, dt, 212 + step);
        s.step = step;
        cuda::AdamStep sd = s;
        if (counter) {
          sd.step = 1000;  // ignored: the counter holds t
          sd.step_counter = full({}, step, DType::Int64, kCuda);
        }
        cuda::adam_step_(pg, gpu(g), mg, vg, vmaxg, sd);
        if (dt == DType::Float32) {
          std::vector<float> pf = as<float>(pr), mf = as<float>(mr), vf = as<float>(vr),
                             vmf = as<float>(vmr);
          adam_reference<float>(pf, to_vector<float>(g), mf, vf, vmf, s);
          pr = back_to_double(pf);
          mr = back_to_double(mf);
          vr = back_to_double(vf);
          vmr = back_to_double(vmf);
        } else {
          adam_reference<double>(pr, to_vector<double>(g), mr, vr, vmr, s);
        }
      }
      EXPECT_TRUE(matches(pg, as_tensor(pr, shape, dt), r, 1e-7));
      EXPECT_TRUE(matches(mg, as_tensor(mr, shape, dt), r, 1e-7));
      EXPECT_TRUE(matches(vg, as_tensor(vr, shape, dt), r, 1e-7));
    }
  }
}

// ---- through autograd --------------------------------------------------------------------------

// A small network's loss, parameter gradients and batch-norm running statistics after one
// forward/backward on the GPU equal the CPU's: the autograd layer runs unchanged on CUDA tensors.
TEST(CudaAutograd, SmallConvNetLossAndGradientsMatchCpu) {
  OKD_REQUIRE_GPU();
  for (DType dt : kFloats) {
    SCOPED_TRACE(dtype_name(dt));
    const std::vector<Tensor> init = {randn_t({8, 3, 3, 3}, dt, 191),    randn_t({8}, dt, 192),
                                      uniform_t({8}, 0.5, 1.5, dt, 193), randn_t({8}, dt, 194),
                                      randn_t({8, 5}, dt, 195),          randn_t({5}, dt, 196)};
    const Tensor x = randn_t({4, 3, 8, 8}, dt, 197);
    Generator g(198);
    const Tensor targets = randint(0, 5, {4}, g);
    struct Run {
      Tensor loss;
      std::vector<Tensor> params;
      Tensor running_mean, running_var;
    };
    auto run = [&](Device dev) {
      Run r;
      for (const Tensor& t : init) {
        Tensor p = ops::clone(ops::to(t, dev));
        p.requires_grad_();
        r.params.push_back(p);
      }
      r.running_mean = zeros({8}, dt, dev);
      r.running_var = ones({8}, dt, dev);
      Tensor h = conv2d(ops::to(x, dev), r.params[0], r.params[1], {1, 1, 1, 1, 1, 1, 1});
      h = batch_norm(h, r.running_mean, r.running_var, r.params[2], r.params[3], true, 0.1, 1e-5);
      h = max_pool2d(relu(h), 2, 2);
      h = reshape(adaptive_avg_pool2d(h, 1, 1), {4, 8});
      Tensor logits = add(matmul(h, r.params[4]), r.params[5]);
      r.loss = cross_entropy(logits, ops::to(targets, dev), 0.1);
      backward(r.loss);
      return r;
    };
    const Run c = run(kCPU), d = run(kCuda);
    const double rt = rtol_for(dt, 1e-4), at = dt == DType::Float32 ? 1e-5 : 1e-10;
    EXPECT_TRUE(matches(d.loss, c.loss, rt, at));
    for (size_t i = 0; i < c.params.size(); ++i) {
      SCOPED_TRACE("parameter " + std::to_string(i));
      ASSERT_TRUE(d.params[i].grad().defined());
      EXPECT_TRUE(matches(d.params[i].grad(), c.params[i].grad(), rt, at));
    }
    EXPECT_TRUE(matches(d.running_mean, c.running_mean, rt, at));
    EXPECT_TRUE(matches(d.running_var, c.running_var, rt, at));
  }
}

// Every gradcheck case of the op inventory with its inputs on the GPU in float64: f, the kernels
// and every backward run there (the skip list is in tests/support/gradcheck_on_device.h).
TEST(CudaAutograd, InventoryGradcheckCasesPassInFloat64) {
  OKD_REQUIRE_GPU();
  const int ran = test::expect_cases_pass_on(kCuda, false);
  EXPECT_EQ(static_cast<size_t>(ran),
            gradcheck_cases().size() - test::device_gradcheck_skips().size());
}

// ---- errors ------------------------------------------------------------------------------------

TEST(CudaOps, RandomDrawsMatchCpuBitForBit) {
  OKD_REQUIRE_GPU();
  Generator gc(3), gd(3);
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
    const Tensor c = bernoulli({1000, 37}, 0.6, gc, dt),
                 d = bernoulli({1000, 37}, 0.6, gd, dt, kCuda);
    EXPECT_TRUE(d.device().is_cuda());
    EXPECT_EQ(to_vector<double>(c), to_vector<double>(d)) << dtype_name(dt);
  }
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor c = uniform({999}, -1.5, 4, gc, dt), d = uniform({999}, -1.5, 4, gd, dt, kCuda);
    EXPECT_EQ(to_vector<double>(c), to_vector<double>(d)) << dtype_name(dt);
  }
  EXPECT_EQ(gc.offset(), gd.offset());
}

TEST(CudaOps, MisuseIsAClearError) {
  OKD_REQUIRE_GPU();
  Tensor a = randn_t({2, 3}, DType::Float32, 1);
  std::string err = error_of([&] { ops::add(a, gpu(a)); });
  EXPECT_NE(err.find("devices differ"), std::string::npos) << err;
  err = error_of([&] { ops::add(gpu(a), gpu(ops::to(a, DType::Float64))); });
  EXPECT_NE(err.find("dtypes differ"), std::string::npos) << err;
  err = error_of([&] { ops::neg(gpu(from_vector<int64_t>({1, 2}))); });
  EXPECT_NE(err.find("op neg has no CUDA kernel for int64 yet"), std::string::npos) << err;
  // Index values are checked by the kernels and raised at the next synchronisation.
  err = error_of([&] {
    ops::gather(gpu(a), 1, gpu(from_vector<int64_t>({0, 3}, {2, 1})));
    cuda::synchronize();
  });
  EXPECT_NE(err.find("gather: index 3 is out of range for dim 1 of size 3"), std::string::npos)
      << err;
  err = error_of(
      [&] { to_vector<float>(ops::index_select(gpu(a), 0, gpu(from_vector<int64_t>({2})))); });
  EXPECT_NE(err.find("index_select: index 2 is out of range for dim 0 of size 2"),
            std::string::npos)
      << err;
  err = error_of([&] {
    ops::scatter_add(gpu(a), 1, gpu(from_vector<int64_t>({5}, {1, 1})), gpu(a));
    cuda::synchronize();
  });
  EXPECT_NE(err.find("scatter_add: index 5 is out of range for dim 1 of size 3"), std::string::npos)
      << err;
  err = error_of([&] { to_vector<float>(ops::one_hot(gpu(from_vector<int64_t>({1, 10})), 10)); });
  EXPECT_NE(err.find("one_hot: label 10 at position 1 is outside [0, 10)"), std::string::npos)
      << err;
  err = error_of([&] { ops::cat({gpu(a), a}, 0); });
  EXPECT_NE(err.find("does not match tensor 0"), std::string::npos) << err;
  err = error_of([&] { gpu(a).at({0, 0}); });
  EXPECT_NE(err.find("move it to the cpu"), std::string::npos) << err;
}
