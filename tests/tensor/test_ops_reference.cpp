// Forward values of the raw tensor ops against PyTorch (tests/reference/make_op_refs.py wrote the
// inputs and outputs), plus the edge cases: empty tensors, size-1 dims, non-contiguous inputs,
// broadcasting both ways, long float32 sums, thread-count independence and error messages.
#include <cmath>

#include "tensor/npy.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/test_support.h"

using namespace okd;
using okd::test::load_ref;

namespace {
Tensor ref(const std::string& c, const std::string& k) {
  return load_ref("tensor_ops/" + c + "_" + k);
}
double tol(const std::string& tag) { return tag == "f32" ? 2e-6 : 1e-12; }
}  // namespace

TEST(OpsReference, ElementwiseBroadcastingAndMath) {
  for (std::string tag : {"f32", "f64"}) {
    SCOPED_TRACE(tag);
    const double t = tol(tag);
    EXPECT_ALLCLOSE(ops::add(ref("add_bcast_" + tag, "in0"), ref("add_bcast_" + tag, "in1")),
                    ref("add_bcast_" + tag, "out"), t, t);
    // Broadcasting the other way round gives the same values.
    EXPECT_ALLCLOSE(ops::mul(ref("mul_bcast_" + tag, "in1"), ref("mul_bcast_" + tag, "in0")),
                    ref("mul_bcast_" + tag, "out"), t, t);
    EXPECT_ALLCLOSE(ops::div(ref("div_" + tag, "in0"), ref("div_" + tag, "in1")),
                    ref("div_" + tag, "out"), t, t);
    EXPECT_ALLCLOSE(ops::pow(ref("pow_" + tag, "in0"), ref("pow_" + tag, "in1")),
                    ref("pow_" + tag, "out"), 4 * t, t);
    Tensor x = ref("unary_" + tag, "in0");
    EXPECT_ALLCLOSE(ops::exp(ops::mul(x, 0.1)), ref("unary_" + tag, "exp"), 4 * t, t);
    EXPECT_ALLCLOSE(ops::sigmoid(x), ref("unary_" + tag, "sigmoid"), t, t);
    EXPECT_ALLCLOSE(ops::tanh(x), ref("unary_" + tag, "tanh"), t, t);
    EXPECT_ALLCLOSE(ops::relu(x), ref("unary_" + tag, "relu"), 0, 0);
    EXPECT_ALLCLOSE(ops::abs(x), ref("unary_" + tag, "abs"), 0, 0);
    EXPECT_ALLCLOSE(ops::clamp(x, -5, 7), ref("unary_" + tag, "clamp"), 0, 0);
    Tensor p = ref("unary_pos_" + tag, "in0");
    EXPECT_ALLCLOSE(ops::log(p), ref("unary_pos_" + tag, "log"), t, t);
    EXPECT_ALLCLOSE(ops::sqrt(p), ref("unary_pos_" + tag, "sqrt"), t, t);
    EXPECT_ALLCLOSE(ops::rsqrt(p), ref("unary_pos_" + tag, "rsqrt"), t, t);
    EXPECT_ALLCLOSE(ops::pow(p, 3.0), ref("unary_pos_" + tag, "pow3"), t, t);
  }
}

TEST(OpsReference, Reductions) {
  for (std::string tag : {"f32", "f64"}) {
    SCOPED_TRACE(tag);
    const double t = tol(tag);
    Tensor r = ref("reduce_" + tag, "in0");
    auto R = [&](const std::string& k) { return ref("reduce_" + tag, k); };
    EXPECT_ALLCLOSE(ops::sum(r, {1}), R("sum_1"), t, t);
    EXPECT_ALLCLOSE(ops::sum(r, {0, -1}, true), R("sum_02_keep"), t, t);
    EXPECT_ALLCLOSE(ops::mean(r), R("mean_all"), t, t);
    EXPECT_ALLCLOSE(ops::var(r, {2}), R("var_2"), t, t);
    EXPECT_ALLCLOSE(ops::var(r, {1}, false), R("var_1_biased"), t, t);
    EXPECT_ALLCLOSE(ops::std(r, {0}), R("std_0"), t, t);
    EXPECT_ALLCLOSE(ops::amax(r, {1, 2}), R("amax_12"), 0, 0);
    EXPECT_ALLCLOSE(ops::amin(r, {0}), R("amin_0"), 0, 0);
    EXPECT_ALLCLOSE(ops::logsumexp(r, {2}), R("lse_2"), t, t);
    EXPECT_ALLCLOSE(ops::norm(r), R("norm_all"), t, t);
    EXPECT_ALLCLOSE(ops::norm(r, 1.0, {1}), R("norm1_1"), t, t);
    auto [v, i] = ops::max(r, 1);
    EXPECT_ALLCLOSE(v, R("max_1_val"), 0, 0);
    EXPECT_ALLCLOSE(i, R("max_1_idx"), 0, 0);
    EXPECT_ALLCLOSE(ops::argmin(r, 2), R("argmin_2"), 0, 0);
    // A non-contiguous view reduces to the same values as its contiguous copy.
    Tensor tr = ops::transpose(r, 0, 2);
    EXPECT_ALLCLOSE(ops::sum(tr, {1}), ops::sum(ops::contiguous(tr), {1}), 0, 0);
  }
}

TEST(OpsReference, MatmulAndIndexing) {
  for (std::string tag : {"f32", "f64"}) {
    SCOPED_TRACE(tag);
    const double t = tag == "f32" ? 1e-5 : 1e-12;
    EXPECT_ALLCLOSE(
        ops::matmul(ref("matmul_bcast_" + tag, "in0"), ref("matmul_bcast_" + tag, "in1")),
        ref("matmul_bcast_" + tag, "out"), t, t);
    // Transposed views go to the GEMM as transpose flags.
    EXPECT_ALLCLOSE(ops::matmul(ops::transpose(ref("matmul_t_" + tag, "in0"), 0, 1),
                                ops::transpose(ref("matmul_t_" + tag, "in1"), 0, 1)),
                    ref("matmul_t_" + tag, "out"), t, t);
  }
  Tensor s = ref("index", "in0"), idx = ref("index", "idx"), src = ref("index", "src");
  EXPECT_ALLCLOSE(ops::gather(s, 1, idx), ref("index", "gather_1"), 0, 0);
  EXPECT_ALLCLOSE(ops::scatter_add(zeros({3, 6}), 1, idx, src), ref("index", "scatter_add_1"), 1e-6,
                  1e-7);
  EXPECT_ALLCLOSE(ops::index_select(s, 1, tensor<int64_t>({4, 0, 4})),
                  ref("index", "index_select_1"), 0, 0);
  auto [tv, ti] = ops::topk(s, 3, 1);
  EXPECT_ALLCLOSE(tv, ref("index", "topk3_vals"), 0, 0);
  EXPECT_ALLCLOSE(ti, ref("index", "topk3_idx"), 0, 0);
  EXPECT_ALLCLOSE(ops::kthvalue(s, 2, 1).first, ref("index", "kth2_vals"), 0, 0);
  EXPECT_ALLCLOSE(ops::cat({s, src}, 0), ref("index", "cat_0"), 0, 0);
  EXPECT_ALLCLOSE(ops::stack({s, src}, 1), ref("index", "stack_1"), 0, 0);
}

TEST(OpsEdgeCases, EmptyAndSizeOneDims) {
  Tensor e = zeros({0, 3});
  EXPECT_EQ(ops::add(e, ones({1, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(ops::sum(e, {0}).shape(), (Shape{3}));
  EXPECT_DOUBLE_EQ(ops::sum(e).item(), 0.0);
  EXPECT_TRUE(std::isnan(ops::mean(e).item()));
  EXPECT_THROW(ops::amax(e, {0}), Error);
  Tensor a = tensor<float>({1.f, 2.f, 3.f}, {3, 1});
  Tensor b = tensor<float>({10.f, 20.f}, {1, 2});
  Tensor c = ops::add(a, b);  // broadcasting both ways: [3,1] + [1,2] -> [3,2]
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  EXPECT_EQ(to_vector<float>(c), (std::vector<float>{11, 21, 12, 22, 13, 23}));
  EXPECT_EQ(to_vector<float>(ops::sum_to(c, {1, 2})), (std::vector<float>{36, 66}));
}

TEST(OpsEdgeCases, NonContiguousInputs) {
  Tensor base = arange(0.0, 24.0, 1.0, DType::Float64);
  Tensor m = ops::reshape(base, {4, 6});
  Tensor strided = ops::slice(m, 1, 0, 6, 2);  // [4, 3], stride 2
  Tensor tr = ops::transpose(strided, 0, 1);   // [3, 4]
  Tensor sum = ops::add(tr, ops::contiguous(tr));
  EXPECT_DOUBLE_EQ(sum.at({2, 1}), 2 * m.at({1, 4}));
  EXPECT_DOUBLE_EQ(ops::exp(tr).at({1, 3}), std::exp(m.at({3, 2})));
}

TEST(OpsEdgeCases, Float32SumOfTenMillionIsAccurateAndThreadIndependent) {
  Generator gen(11);
  Tensor x = rand({10'000'000}, gen);
  const double exact = ops::sum(ops::to(x, DType::Float64)).item();
  set_num_threads(1);
  const float one = ops::sum(x).item<float>();
  set_num_threads(2);
  const float two = ops::sum(x).item<float>();
  set_num_threads(0);
  EXPECT_NEAR(one, exact, 1e-5 * exact);
  EXPECT_EQ(one, two);  // bit-identical for any thread count
}

TEST(OpsEdgeCases, ErrorsNameTheOpAndShapes) {
  try {
    ops::add(zeros({2, 3}), zeros({4, 3}));
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
  }
  EXPECT_THROW(ops::add(zeros({2}), zeros({2}, DType::Float64)), Error);
  try {
    ops::matmul(zeros({2, 3}), zeros({4, 5}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions 3 and 4"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ops::view(ops::transpose(zeros({2, 3}), 0, 1), {6}), Error);  // needs reshape
  EXPECT_THROW(ops::gather(zeros({2, 2}), 1, tensor<int64_t>({0, 5, 1, 1}, {2, 2})), Error);
}

TEST(OpsEdgeCases, GemmPathsAgreeWithTheReferenceLoop) {
  Generator gen(5);
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 13, 5}, {65, 33, 129}}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        Tensor A = rand({ta ? K : M, ta ? M : K}, gen, DType::Float64);
        Tensor B = rand({tb ? N : K, tb ? K : N}, gen, DType::Float64);
        Tensor ref64 = zeros({M, N}, DType::Float64);
        ops::gemm_reference(ta, tb, M, N, K, 1.0, A.data<double>(), A.size(1), B.data<double>(),
                            B.size(1), 0.0, ref64.data<double>(), N);
        Tensor Af = ops::to(A, DType::Float32), Bf = ops::to(B, DType::Float32);
        Tensor blas = zeros({M, N}), builtin = zeros({M, N});
        ops::gemm(ta, tb, M, N, K, 1.f, Af.data<float>(), Af.size(1), Bf.data<float>(), Bf.size(1),
                  0.f, blas.data<float>(), N);
        ops::gemm_builtin(ta, tb, M, N, K, 1.f, Af.data<float>(), Af.size(1), Bf.data<float>(),
                          Bf.size(1), 0.f, builtin.data<float>(), N);
        EXPECT_ALLCLOSE(blas, ref64, 1e-4, 1e-5)
            << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb;
        EXPECT_ALLCLOSE(builtin, ref64, 1e-4, 1e-5)
            << M << "x" << N << "x" << K << " ta " << ta << " tb " << tb;
      }
  }
}

TEST(Npy, RoundTripEveryDtype) {
  const std::string dir = std::string(OKD_BINARY_DIR) + "/";
  Tensor f = tensor<float>({1.5f, -2.f, 3.f, 4.f}, {2, 2});
  Tensor d = tensor<double>({1e-300, 2.0});
  Tensor i = tensor<int64_t>({-5, 1LL << 40});
  Tensor u = tensor<uint8_t>({0, 255, 7}, {3, 1});
  for (auto& t : {f, d, i, u}) {
    save_npy(dir + "rt.npy", t);
    Tensor back = load_npy(dir + "rt.npy");
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_ALLCLOSE(back, t, 0, 0);
  }
  Tensor s = scalar_tensor(3.25, DType::Float64);
  save_npy(dir + "rt0.npy", s);
  EXPECT_EQ(load_npy(dir + "rt0.npy").dim(), 0);
  EXPECT_THROW(load_npy(dir + "missing.npy"), Error);
}
