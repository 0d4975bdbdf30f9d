// ops::sample_distinct (index.h): K positions per row drawn without replacement by Floyd's
// algorithm from given uniforms, independent draws only when K exceeds the row's count. Checked
// by hand-worked rows, distinctness and range over many random rows, a chi-square test that
// every K-subset is equally likely, the with-replacement fallback, errors, and (CUDA tests) the
// device kernel against the CPU, bit for bit, and its deferred error.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"
#include "tensor/random.h"
#include "tests/support/cuda_test.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

using test::error_of;

Tensor rows_of(const std::vector<std::vector<double>>& u) {
  std::vector<double> flat;
  for (const auto& r : u) flat.insert(flat.end(), r.begin(), r.end());
  return from_vector<double>(
      flat, {static_cast<int64_t>(u.size()), static_cast<int64_t>(u.at(0).size())});
}

TEST(SampleDistinct, FloydRowsWorkedByHand) {
  // M = 5, K = 3: n = 2, 3, 4 and t = floor(u (n + 1)).
  //   u = (0.5, 0.9, 0.1):  t = 1, 3, 0 -> 1, 3, 0 (no repeat)
  //   u = (0.5, 0.3, 0.99): t = 1, 1 (taken -> n = 3), 4 -> 1, 3, 4
  //   u = (0.0, 0.0, 0.0):  t = 0, 0 (-> 3), 0 (-> 4) -> 0, 3, 4
  Tensor u = rows_of({{0.5, 0.9, 0.1}, {0.5, 0.3, 0.99}, {0.0, 0.0, 0.0}});
  Tensor counts = from_vector<int64_t>({5, 5, 5});
  EXPECT_EQ(to_vector<int64_t>(ops::sample_distinct(u, counts, 5)),
            (std::vector<int64_t>{1, 3, 0, 1, 3, 4, 0, 3, 4}));
  // K = M takes every position; K > M (here 4 > 3) draws floor(u M) independently.
  Tensor all = ops::sample_distinct(rows_of({{0.7, 0.7, 0.7}}), from_vector<int64_t>({3}), 8);
  auto v = to_vector<int64_t>(all);
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(to_vector<int64_t>(ops::sample_distinct(rows_of({{0.1, 0.5, 0.5, 0.99}}),
                                                    from_vector<int64_t>({3}), 3)),
            (std::vector<int64_t>{0, 1, 1, 2}));
}

TEST(SampleDistinct, RowsAreDistinctAndInRange) {
  Generator g(5);
  const int64_t B = 200, K = 16;
  Tensor u = uniform({B, K}, 0.0, 1.0, g, DType::Float64);
  std::vector<int64_t> counts(B);
  for (int64_t b = 0; b < B; ++b) counts[b] = K + (b * 37) % 500;  // from K (every position) up
  auto out = to_vector<int64_t>(ops::sample_distinct(u, from_vector<int64_t>(counts), 600));
  for (int64_t b = 0; b < B; ++b) {
    std::set<int64_t> seen;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t t = out[b * K + j];
      ASSERT_TRUE(t >= 0 && t < counts[b]) << "row " << b << ": " << t;
      ASSERT_TRUE(seen.insert(t).second) << "row " << b << " repeats " << t;
    }
  }
}

// Every 2-subset of 6 positions (15 of them) equally likely: 30,000 rows, chi-square with 14
// degrees of freedom below 36.1 (p = 0.001; fixed seed, so the test is deterministic). Drawing
// with replacement (the bug this op replaced in MCL) also produces pairs like {3, 3}, which fail
// the subset check first.
TEST(SampleDistinct, EveryKSubsetIsEquallyLikely) {
  Generator g(11);
  const int64_t B = 30000, K = 2, M = 6;
  Tensor u = uniform({B, K}, 0.0, 1.0, g, DType::Float64);
  auto out = to_vector<int64_t>(
      ops::sample_distinct(u, from_vector<int64_t>(std::vector<int64_t>(B, M)), M));
  std::map<std::pair<int64_t, int64_t>, int64_t> freq;
  for (int64_t b = 0; b < B; ++b) {
    int64_t x = out[2 * b], y = out[2 * b + 1];
    ASSERT_NE(x, y);
    freq[{std::min(x, y), std::max(x, y)}]++;
  }
  ASSERT_EQ(freq.size(), 15u);
  const double expected = static_cast<double>(B) / 15.0;
  double chi2 = 0;
  for (const auto& [pair, n] : freq) chi2 += (n - expected) * (n - expected) / expected;
  EXPECT_LT(chi2, 36.1);
}

TEST(SampleDistinct, BadInputsAreErrors) {
  Tensor u = rows_of({{0.5, 0.5}});
  EXPECT_NE(error_of([&] {
              ops::sample_distinct(u, from_vector<int64_t>({0}), 4);
            }).find("sample_distinct: count 0 of row 0 is outside [1, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::sample_distinct(u, from_vector<int64_t>({9}), 4);
            }).find("count 9 of row 0 is outside [1, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::sample_distinct(ops::to(u, DType::Float32), from_vector<int64_t>({2}), 4);
            }).find("u must be float64 [B, K]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ops::sample_distinct(u, from_vector<int64_t>({2, 2}), 4);
            }).find("counts must be int64 [1]"),
            std::string::npos);
}

TEST(CudaSampleDistinct, MatchesCpuBitForBitAndDefersABadCount) {
  OKD_REQUIRE_GPU();
  Generator g(3);
  const int64_t B = 64, K = 40;
  Tensor u = uniform({B, K}, 0.0, 1.0, g, DType::Float64);
  std::vector<int64_t> counts(B);
  for (int64_t b = 0; b < B; ++b) counts[b] = 1 + (b * 13) % 300;  // some below K: replacement
  Tensor c = from_vector<int64_t>(counts);
  Tensor on_cpu = ops::sample_distinct(u, c, 300);
  Tensor on_gpu = ops::sample_distinct(ops::to(u, test::kCuda), ops::to(c, test::kCuda), 300);
  EXPECT_EQ(to_vector<int64_t>(ops::to(on_gpu, kCPU)), to_vector<int64_t>(on_cpu));
  const std::string err = error_of([&] {
    to_vector<int64_t>(ops::sample_distinct(
        ops::to(u, test::kCuda),
        ops::to(from_vector<int64_t>(std::vector<int64_t>(B, 301)), test::kCuda), 300));
  });
  EXPECT_NE(err.find("sample_distinct: count 301 of row 0 is outside [1, 300]"), std::string::npos)
      << err;
}

}  // namespace
