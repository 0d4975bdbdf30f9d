// Joining, splitting, indexing and selection ops against PyTorch
// (tests/reference/make_matmul_index_refs.py): cat, stack, index_select, gather, scatter_add,
// one_hot, topk, kthvalue; split/split_sizes/chunk as views; ties and NaN in topk; integer
// dtypes; non-contiguous inputs; misuse errors that name the op, the index and the size.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/ops/copy.h"
#include "tensor/ops/index.h"
#include "tensor/ops/view.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

Tensor iref(const std::string& name) { return test::load_ref("matmul_index/" + name); }

using ::okd::test::error_of;

// A tensor with the values and shape of t whose memory is laid out transposed (dims 0 and 1
// swapped), so kernels see a non-contiguous input.
Tensor non_contiguous(const Tensor& t) {
  Tensor v = ops::transpose(ops::contiguous(ops::transpose(t, 0, 1)), 0, 1);
  EXPECT_FALSE(v.is_contiguous());
  return v;
}

Tensor i64(std::vector<int64_t> v, const Shape& shape) { return from_vector(v, shape); }

// x scaled by s, built from its values (no dependence on the elementwise kernels).
Tensor scaled(const Tensor& x, double s) {
  std::vector<double> v = to_vector<double>(x);
  for (double& e : v) e *= s;
  return from_vector(v, x.shape());
}

}  // namespace

// ---- cat / stack ------------------------------------------------------------------------------

TEST(Cat, MatchesTorch) {
  Tensor x = iref("x"), y = iref("y");
  EXPECT_ALLCLOSE(ops::cat({x, y}, 1), iref("cat_dim1"), 0, 0);
  EXPECT_ALLCLOSE(ops::cat({non_contiguous(x), non_contiguous(y)}, 1), iref("cat_dim1"), 0, 0);
  Tensor expected = iref("cat_dim_neg1");  // [3, 4, 7]: x then 2 more columns
  Tensor tail = ops::narrow(expected, 2, 5, 2);
  EXPECT_ALLCLOSE(ops::cat({x, tail}, -1), expected, 0, 0);
  EXPECT_ALLCLOSE(ops::cat({ops::narrow(x, 2, 0, 0), x}, -1), iref("cat_dim_neg1_in1"), 0, 0);
}

TEST(Cat, IntegerDtypesAndOneInput) {
  Tensor a = i64({1, 2, 3, 4}, {2, 2}), b = i64({5, 6}, {1, 2});
  Tensor c = ops::cat({a, b}, 0);
  EXPECT_EQ(c.dtype(), DType::Int64);
  EXPECT_EQ(to_vector<int64_t>(c), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  Tensor u = from_vector(std::vector<uint8_t>{7, 8, 9}, {3});
  EXPECT_EQ(to_vector<uint8_t>(ops::cat({u, u}, 0)), (std::vector<uint8_t>{7, 8, 9, 7, 8, 9}));
  Tensor alone = ops::cat({a}, 1);
  EXPECT_FALSE(alone.shares_storage(a));  // always a new tensor
  EXPECT_EQ(to_vector<int64_t>(alone), to_vector<int64_t>(a));
}

TEST(Cat, MisuseNamesTheShapes) {
  std::string e = error_of([] { ops::cat({zeros({2, 3}), zeros({2, 4})}, 0); });
  EXPECT_NE(e.find("cat: tensor 1 has shape [2, 4] but tensor 0 has [2, 3]"), std::string::npos)
      << e;
  e = error_of([] { ops::cat({zeros({2, 3}), zeros({2, 3}, DType::Float64)}, 0); });
  EXPECT_NE(e.find("float64"), std::string::npos) << e;
  e = error_of([] { ops::cat({}, 0); });
  EXPECT_NE(e.find("cat: expected at least one tensor"), std::string::npos) << e;
  e = error_of([] { ops::cat({zeros({2, 3}), zeros({2, 3})}, 2); });
  EXPECT_NE(e.find("cat"), std::string::npos) << e;
}

TEST(Stack, MatchesTorch) {
  Tensor x = iref("x");
  EXPECT_ALLCLOSE(ops::stack({x, scaled(x, 2), scaled(x, 3)}, 1), iref("stack_dim1"), 0, 0);
  Tensor s = ops::stack({i64({1, 2}, {2}), i64({3, 4}, {2})}, -1);  // [2, 2]: pairs
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(to_vector<int64_t>(s), (std::vector<int64_t>{1, 3, 2, 4}));
  std::string e = error_of([] { ops::stack({zeros({2, 3}), zeros({3, 2})}, 0); });
  EXPECT_NE(e.find("stack: tensor 1 has shape [3, 2] but tensor 0 has [2, 3]"), std::string::npos)
      << e;
}

// ---- split / chunk ----------------------------------------------------------------------------

TEST(Split, PiecesAreViewsWithTheRightSizes) {
  Tensor x = iref("x");  // [3, 4, 5]
  std::vector<Tensor> parts = ops::split(x, 2, 2);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(parts[2].shape(), (Shape{3, 4, 1}));
  for (const Tensor& p : parts) EXPECT_TRUE(p.shares_storage(x));
  EXPECT_ALLCLOSE(ops::cat(parts, 2), x, 0, 0);
  EXPECT_EQ(parts[1].at({2, 3, 1}), x.at({2, 3, 3}));

  std::vector<Tensor> sized = ops::split_sizes(x, {1, 0, 3}, 1);
  ASSERT_EQ(sized.size(), 3u);
  EXPECT_EQ(sized[1].shape(), (Shape{3, 0, 5}));
  EXPECT_EQ(sized[2].shape(), (Shape{3, 3, 5}));
  EXPECT_EQ(sized[2].at({1, 0, 4}), x.at({1, 1, 4}));
  std::string e = error_of([&] { ops::split_sizes(x, {1, 2}, 1); });
  EXPECT_NE(e.find("split_sizes: sizes [1, 2] add up to 3 but dim 1 has size 4"), std::string::npos)
      << e;
  e = error_of([&] { ops::split(x, 0, 1); });
  EXPECT_NE(e.find("split: split_size must be positive, got 0"), std::string::npos) << e;
}

TEST(Split, ChunkFollowsTorch) {
  // torch.chunk: pieces of ceil(n / chunks), so 10 in 3 -> 4, 4, 2 and 6 in 4 -> 2, 2, 2.
  auto sizes = [](int64_t n, int64_t chunks) {
    std::vector<int64_t> s;
    for (const Tensor& p : ops::chunk(arange(n), chunks, 0)) s.push_back(p.numel());
    return s;
  };
  EXPECT_EQ(sizes(10, 3), (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(sizes(6, 4), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(sizes(2, 5), (std::vector<int64_t>{1, 1}));
  std::vector<Tensor> c = ops::chunk(arange(10), 3, 0);
  EXPECT_EQ(to_vector<int64_t>(c[2]), (std::vector<int64_t>{8, 9}));
}

// ---- index_select / gather / scatter_add ------------------------------------------------------

TEST(IndexSelect, MatchesTorch) {
  Tensor x = iref("x"), idx = iref("index_select_idx");
  EXPECT_ALLCLOSE(ops::index_select(x, 1, idx), iref("index_select_dim1"), 0, 0);
  EXPECT_ALLCLOSE(ops::index_select(non_contiguous(x), 1, idx), iref("index_select_dim1"), 0, 0);
  Tensor labels = i64({10, 11, 12, 13}, {4});
  EXPECT_EQ(to_vector<int64_t>(ops::index_select(labels, 0, i64({3, 3, 0}, {3}))),
            (std::vector<int64_t>{13, 13, 10}));
  Tensor img = from_vector(std::vector<uint8_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(to_vector<uint8_t>(ops::index_select(img, 1, i64({2, 0}, {2}))),
            (std::vector<uint8_t>{3, 1, 6, 4}));
}

TEST(IndexSelect, OutOfRangeNamesOpIndexAndSize) {
  Tensor x = iref("x");
  EXPECT_EQ(error_of([&] {
              ops::index_select(x, 1, i64({0, 4}, {2}));
            }),
            "index_select: index 4 is out of range for dim 1 of size 4");
  EXPECT_EQ(error_of([&] { ops::index_select(x, 1, i64({-1}, {1})); }),
            "index_select: index -1 is out of range for dim 1 of size 4");
  std::string e = error_of([&] { ops::index_select(x, 1, zeros({2})); });
  EXPECT_NE(e.find("index_select: indices must be int64, got float32"), std::string::npos) << e;
}

TEST(Gather, MatchesTorch) {
  Tensor x = iref("x");
  EXPECT_ALLCLOSE(ops::gather(x, 1, iref("gather_idx")), iref("gather_dim1"), 0, 0);
  EXPECT_ALLCLOSE(ops::gather(non_contiguous(x), 1, iref("gather_idx")), iref("gather_dim1"), 0, 0);
  EXPECT_ALLCLOSE(ops::gather(x, 2, iref("gather_small_idx")), iref("gather_small_dim2"), 0, 0);
  EXPECT_ALLCLOSE(ops::gather(x, -1, iref("gather_small_idx")), iref("gather_small_dim2"), 0, 0);
  // The classic use: pick each row's label column.
  Tensor logits = from_vector(std::vector<float>{0.1f, 0.2f, 0.7f, 0.5f, 0.4f, 0.1f}, {2, 3});
  Tensor picked = ops::gather(logits, 1, i64({2, 0}, {2, 1}));
  EXPECT_EQ(to_vector<float>(picked), (std::vector<float>{0.7f, 0.5f}));
}

TEST(Gather, MisuseNamesOpIndexAndSize) {
  Tensor x = iref("x");  // [3, 4, 5]
  EXPECT_EQ(error_of([&] {
              ops::gather(x, 1, i64({0, 1, 4}, {1, 3, 1}));
            }),
            "gather: index 4 is out of range for dim 1 of size 4");
  std::string e = error_of([&] { ops::gather(x, 1, i64({0, 1}, {2})); });
  EXPECT_NE(e.find("gather: index has rank 1 but input has rank 3"), std::string::npos) << e;
  e = error_of([&] { ops::gather(x, 1, zeros({4, 1, 1}, DType::Int64)); });
  EXPECT_NE(e.find("[4, 1, 1]"), std::string::npos) << e;
}

TEST(ScatterAdd, MatchesTorchAndLeavesTheInputAlone) {
  Tensor x = iref("x");
  const std::vector<double> before = to_vector<double>(x);
  Tensor out = ops::scatter_add(x, 0, iref("scatter_idx"), iref("scatter_src"));
  EXPECT_ALLCLOSE(out, iref("scatter_add_dim0"), 1e-12, 1e-12);
  EXPECT_EQ(to_vector<double>(x), before);
  EXPECT_FALSE(out.shares_storage(x));
  // Non-contiguous src gives the same sums.
  Tensor src_nc = non_contiguous(iref("scatter_src"));
  EXPECT_ALLCLOSE(ops::scatter_add(x, 0, iref("scatter_idx"), src_nc), iref("scatter_add_dim0"),
                  1e-12, 1e-12);
  // Integer counts: a histogram of labels.
  Tensor hist =
      ops::scatter_add(zeros({4}, DType::Int64), 0, i64({1, 3, 1, 1}, {4}), i64({1, 1, 1, 1}, {4}));
  EXPECT_EQ(to_vector<int64_t>(hist), (std::vector<int64_t>{0, 3, 0, 1}));
}

TEST(ScatterAdd, MisuseNamesOpIndexAndSize) {
  EXPECT_EQ(error_of([] { ops::scatter_add(zeros({3}), 0, i64({3}, {1}), ones({1})); }),
            "scatter_add: index 3 is out of range for dim 0 of size 3");
  std::string e =
      error_of([] { ops::scatter_add(zeros({3}), 0, i64({0}, {1}), ones({1}, DType::Float64)); });
  EXPECT_NE(e.find("scatter_add: src dtype float64 differs from input dtype float32"),
            std::string::npos)
      << e;
}

// ---- one_hot ----------------------------------------------------------------------------------

TEST(OneHot, MatchesTorch) {
  Tensor labels = iref("one_hot_labels");
  EXPECT_ALLCLOSE(ops::one_hot(labels, 5), iref("one_hot_5"), 0, 0);
  Tensor as_int = ops::one_hot(i64({1, 0}, {2}), 3, DType::Int64);
  EXPECT_EQ(as_int.dtype(), DType::Int64);
  EXPECT_EQ(to_vector<int64_t>(as_int), (std::vector<int64_t>{0, 1, 0, 1, 0, 0}));
  EXPECT_EQ(error_of([&] { ops::one_hot(labels, 4); }),
            "one_hot: label 4 at position 2 is outside [0, 4)");
}

// ---- topk / kthvalue ------------------------------------------------------------------------

TEST(Topk, MatchesTorch) {
  Tensor d = iref("distinct");  // [4, 7, 3], no ties
  auto [v, i] = ops::topk(d, 3, 1, /*largest=*/true);
  EXPECT_ALLCLOSE(v, iref("topk3_dim1_largest_values"), 0, 0);
  EXPECT_EQ(to_vector<int64_t>(i), to_vector<int64_t>(iref("topk3_dim1_largest_indices")));
  auto [v2, i2] = ops::topk(non_contiguous(d), 2, -1, /*largest=*/false);
  EXPECT_ALLCLOSE(v2, iref("topk2_last_smallest_values"), 0, 0);
  EXPECT_EQ(to_vector<int64_t>(i2), to_vector<int64_t>(iref("topk2_last_smallest_indices")));
}

TEST(Topk, TiesGoLowerIndexFirstAndNaNIsLargest) {
  Tensor t = from_vector(std::vector<float>{1, 3, 3, 2, 3}, {5});
  auto [v, i] = ops::topk(t, 3, 0, true);
  EXPECT_EQ(to_vector<float>(v), (std::vector<float>{3, 3, 3}));
  EXPECT_EQ(to_vector<int64_t>(i), (std::vector<int64_t>{1, 2, 4}));
  auto [vs, is] = ops::topk(t, 2, 0, false);
  EXPECT_EQ(to_vector<float>(vs), (std::vector<float>{1, 2}));
  EXPECT_EQ(to_vector<int64_t>(is), (std::vector<int64_t>{0, 3}));

  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor n = from_vector(std::vector<float>{1, nan, 5, -2}, {4});
  auto [vn, in] = ops::topk(n, 2, 0, true);
  EXPECT_TRUE(std::isnan(to_vector<float>(vn)[0]));
  EXPECT_EQ(to_vector<int64_t>(in), (std::vector<int64_t>{1, 2}));
  auto [vm, im] = ops::topk(n, 4, 0, false);
  EXPECT_EQ(to_vector<int64_t>(im), (std::vector<int64_t>{3, 0, 2, 1}));

  // int64 input, k = 0 and k = all.
  Tensor ints = i64({5, -1, 7, 7}, {1, 4});
  auto [vi, ii] = ops::topk(ints, 4, 1, true);
  EXPECT_EQ(to_vector<int64_t>(vi), (std::vector<int64_t>{7, 7, 5, -1}));
  EXPECT_EQ(to_vector<int64_t>(ii), (std::vector<int64_t>{2, 3, 0, 1}));
  EXPECT_EQ(ops::topk(ints, 0, 1).first.shape(), (Shape{1, 0}));
}

TEST(Topk, KOutOfRangeIsAnError) {
  Tensor d = iref("distinct");
  EXPECT_EQ(error_of([&] { ops::topk(d, 4, 2); }),
            "topk: k = 4 is out of range for dim 2 of size 3 (input [4, 7, 3])");
  EXPECT_EQ(error_of([&] { ops::kthvalue(d, 0, 1); }),
            "kthvalue: k = 0 is out of range for dim 1 of size 7 (input [4, 7, 3])");
}

TEST(Kthvalue, MatchesTorch) {
  Tensor d = iref("distinct");
  auto [v, i] = ops::kthvalue(d, 3, 1);
  EXPECT_EQ(v.shape(), (Shape{4, 3}));
  EXPECT_ALLCLOSE(v, iref("kth3_dim1_values"), 0, 0);
  EXPECT_EQ(to_vector<int64_t>(i), to_vector<int64_t>(iref("kth3_dim1_indices")));
  auto [vk, ik] = ops::kthvalue(d, 2, 0, /*keepdim=*/true);
  EXPECT_EQ(vk.shape(), (Shape{1, 7, 3}));
  EXPECT_ALLCLOSE(vk, iref("kth2_dim0_keep_values"), 0, 0);
  EXPECT_EQ(to_vector<int64_t>(ik), to_vector<int64_t>(iref("kth2_dim0_keep_indices")));
  // Ties: the k-th of the ascending order, equal values lower index first.
  auto [vt, it] = ops::kthvalue(from_vector(std::vector<double>{2, 1, 2, 1}, {4}), 3);
  EXPECT_EQ(vt.item(), 2.0);
  EXPECT_EQ(it.item(), 0.0);
}
