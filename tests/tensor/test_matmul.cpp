// matmul against torch.matmul (tests/reference/make_matmul_index_refs.py): 2-D, 1-D, batched and
// broadcast batches, float32/float64, transposed and strided views. gemm: the BLAS path, the
// built-in blocked kernel and the plain triple loop agree on random non-square sizes for every
// transpose combination, with alpha, beta and padded leading dimensions. Misuse errors.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "tensor/ops/copy.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/view.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/support/test_support.h"

using namespace okd;

namespace {

Tensor mref(const std::string& name) { return test::load_ref("matmul_index/" + name); }

// Restores the thread count a test changed.
struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

using test::error_of;

}  // namespace

// ---- matmul against PyTorch -------------------------------------------------------------------

TEST(Matmul, MatchesTorchOnEveryCase) {
  for (const char* name : {"mm_2d", "mm_2d_f32", "mv", "vm", "dot", "batched", "bcast_left",
                           "bcast_both", "bcast_vec_batch", "batch_mv"}) {
    SCOPED_TRACE(name);
    Tensor a = mref(std::string(name) + "_a"), b = mref(std::string(name) + "_b");
    Tensor expected = mref(std::string(name) + "_out");
    Tensor out = ops::matmul(a, b);
    EXPECT_EQ(out.dtype(), expected.dtype());
    const double tol = a.dtype() == DType::Float32 ? 1e-5 : 1e-12;
    EXPECT_ALLCLOSE(out, expected, tol, tol);
  }
}

TEST(Matmul, ResultShapesFollowNumPy) {
  EXPECT_EQ(ops::matmul(mref("dot_a"), mref("dot_b")).shape(), Shape{});
  EXPECT_EQ(ops::matmul(mref("mv_a"), mref("mv_b")).shape(), (Shape{4}));
  EXPECT_EQ(ops::matmul(mref("vm_a"), mref("vm_b")).shape(), (Shape{5}));
  EXPECT_EQ(ops::matmul(mref("bcast_both_a"), mref("bcast_both_b")).shape(), (Shape{2, 3, 4, 2}));
  EXPECT_EQ(ops::matmul(mref("bcast_vec_batch_a"), mref("bcast_vec_batch_b")).shape(),
            (Shape{2, 3, 4}));
}

TEST(Matmul, TransposedAndStridedViewsGiveTheSameResult) {
  // a stored column-major (a transposed view of its transpose), b a strided slice that must be
  // copied, and both transposed in a batch.
  Tensor a = mref("mm_2d_a"), b = mref("mm_2d_b"), expected = mref("mm_2d_out");
  Tensor a_colmajor = ops::transpose(ops::contiguous(ops::transpose(a, 0, 1)), 0, 1);
  ASSERT_FALSE(a_colmajor.is_contiguous());
  EXPECT_ALLCLOSE(ops::matmul(a_colmajor, b), expected, 1e-12, 1e-12);
  Tensor b_wide = zeros({7, 6}, DType::Float64);
  ops::copy_(ops::slice(b_wide, 1, 0, 6, 2), b);  // b lives in every other column
  Tensor b_strided = ops::slice(b_wide, 1, 0, 6, 2);
  ASSERT_EQ(b_strided.stride(1), 2);
  EXPECT_ALLCLOSE(ops::matmul(a_colmajor, b_strided), expected, 1e-12, 1e-12);
  // Row-contiguous with padding (ld > cols): a narrowed view of a wider matrix.
  Tensor a_wide = zeros({5, 10}, DType::Float64);
  ops::copy_(ops::narrow(a_wide, 1, 2, 7), a);
  EXPECT_ALLCLOSE(ops::matmul(ops::narrow(a_wide, 1, 2, 7), b), expected, 1e-12, 1e-12);

  Tensor ba = mref("batched_a"), bb = mref("batched_b");  // [3,4,5] x [3,5,2]
  Tensor ba_t = ops::transpose(ops::contiguous(ops::transpose(ba, 1, 2)), 1, 2);
  Tensor bb_t = ops::transpose(ops::contiguous(ops::transpose(bb, 1, 2)), 1, 2);
  EXPECT_ALLCLOSE(ops::matmul(ba_t, bb_t), mref("batched_out"), 1e-12, 1e-12);
  // A batch dim that is not outermost in memory: permuted [4,3,5] -> [3,4,5].
  Tensor ba_perm = ops::permute(ops::contiguous(ops::permute(ba, {1, 0, 2})), {1, 0, 2});
  EXPECT_ALLCLOSE(ops::matmul(ba_perm, bb), mref("batched_out"), 1e-12, 1e-12);
}

TEST(Matmul, ManyBatchesInParallelMatchOneByOne) {
  ThreadGuard guard;
  set_num_threads(2);
  Generator gen(7);
  Tensor a = randn({9, 13, 11}, gen), b = randn({11, 6}, gen);  // b broadcast over the batch
  Tensor out = ops::matmul(a, b);
  ASSERT_EQ(out.shape(), (Shape{9, 13, 6}));
  for (int64_t i = 0; i < 9; ++i)
    EXPECT_ALLCLOSE(ops::select(out, 0, i), ops::matmul(ops::select(a, 0, i), b), 1e-6, 1e-6);
  // Float64 reference through the triple loop.
  Tensor a64 = ops::to(a, DType::Float64), b64 = ops::to(b, DType::Float64);
  std::vector<double> va = to_vector<double>(a64), vb = to_vector<double>(b64);
  std::vector<double> expected(9 * 13 * 6);
  for (int64_t i = 0; i < 9; ++i)
    ops::gemm_reference(false, false, 13, 6, 11, 1.0, va.data() + i * 13 * 11, 11, vb.data(), 6,
                        0.0, expected.data() + i * 13 * 6, 6);
  EXPECT_ALLCLOSE(out, from_vector(expected, {9, 13, 6}), 1e-5, 1e-5);
}

TEST(Matmul, LargeProductSplitAcrossThreadsMatchesOneThread) {
  ThreadGuard guard;
  Generator gen(11);
  // Tall (split by rows) and wide (split by columns), one transposed operand each.
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{150, 40, 70}, {30, 170, 90}}) {
    Tensor a = randn({M, K}, gen), bt = randn({N, K}, gen);
    Tensor b = ops::transpose(bt, 0, 1);
    set_num_threads(1);
    Tensor one = ops::matmul(a, b);
    set_num_threads(2);
    Tensor two = ops::matmul(a, b);
    EXPECT_ALLCLOSE(two, one, 1e-5, 1e-5);  // blocking changes the rounding
    std::vector<double> va = to_vector<double>(a), vb = to_vector<double>(bt), c(M * N);
    ops::gemm_reference(false, true, M, N, K, 1.0, va.data(), K, vb.data(), K, 0.0, c.data(), N);
    EXPECT_ALLCLOSE(two, from_vector(c, {M, N}), 1e-5, 1e-5);
  }
}

TEST(Matmul, EmptyOperands) {
  Tensor out = ops::matmul(ones({0, 3}), ones({3, 4}));
  EXPECT_EQ(out.shape(), (Shape{0, 4}));
  // K = 0: a sum over nothing is zero.
  Tensor z = ops::matmul(ones({2, 0}), ones({0, 3}));
  ASSERT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_ALLCLOSE(z, zeros({2, 3}), 0, 0);
}

TEST(Matmul, MisuseIsAnErrorNamingTheShapes) {
  EXPECT_EQ(error_of([] {
              ops::matmul(ones({2, 3}), ones({4, 5}));
            }),
            "matmul: [2, 3] @ [4, 5]: inner dimensions 3 and 4 differ");
  EXPECT_EQ(error_of([] { ops::matmul(ones({3}), ones({4})); }),
            "matmul: [3] @ [4]: inner dimensions 3 and 4 differ");
  std::string bcast = error_of([] { ops::matmul(ones({2, 3, 4}), ones({5, 4, 2})); });
  EXPECT_NE(bcast.find("matmul"), std::string::npos) << bcast;
  EXPECT_NE(bcast.find("2"), std::string::npos) << bcast;
  EXPECT_NE(bcast.find("5"), std::string::npos) << bcast;
  std::string dt = error_of([] { ops::matmul(ones({2, 3}), ones({3, 2}, DType::Float64)); });
  EXPECT_NE(dt.find("float32"), std::string::npos) << dt;
  EXPECT_NE(dt.find("float64"), std::string::npos) << dt;
  std::string in = error_of([] {
    ops::matmul(ones({2, 3}, DType::Int64), ones({3, 2}, DType::Int64));
  });
  EXPECT_NE(in.find("int64"), std::string::npos) << in;
  std::string sc = error_of([] { ops::matmul(scalar_tensor(1.0), ones({3, 2})); });
  EXPECT_NE(sc.find("[]"), std::string::npos) << sc;
}

// ---- gemm: BLAS vs built-in vs reference -------------------------------------------------------

namespace {

struct GemmCase {
  int64_t M, N, K;
};

// Random matrices stored with padded leading dims (ld = cols + 3) so lda/ldb/ldc are exercised.
struct GemmProblem {
  int64_t M, N, K, lda, ldb, ldc;
  bool ta, tb;
  std::vector<double> A, B, C;
  GemmProblem(GemmCase s, bool ta_, bool tb_, uint64_t seed)
      : M(s.M), N(s.N), K(s.K), ta(ta_), tb(tb_) {
    Generator gen(seed);
    const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
    const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
    lda = a_cols + 3;
    ldb = b_cols + 3;
    ldc = N + 3;
    A = to_vector<double>(randn({a_rows, lda}, gen, DType::Float64));
    B = to_vector<double>(randn({b_rows, ldb}, gen, DType::Float64));
    C = to_vector<double>(randn({M, ldc}, gen, DType::Float64));
  }
  // The M x N block of a result stored with ldc, as a tensor.
  Tensor block(const std::vector<double>& c) const {
    std::vector<double> v;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) v.push_back(c[i * ldc + j]);
    return from_vector(v, {M, N});
  }
};

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }
std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

// Restores the automatic choice of the built-in kernel's ISA.
struct IsaGuard {
  ~IsaGuard() { ops::gemm_builtin_force_baseline(false); }
};

TEST(Gemm, BlasBuiltinAndReferenceAgreeForAllTransposes) {
  ThreadGuard guard;
  IsaGuard isa_guard;
  // Sizes: trivial, odd, around the micro-tile (6x16), past the k-block (256) and the parallel
  // tile (96 x 256), and past the outer row (1536) and column (4096) blocks.
  const std::vector<GemmCase> cases = {{1, 1, 1},     {7, 13, 5},     {65, 33, 129}, {6, 16, 3},
                                       {13, 17, 300}, {200, 290, 40}, {1600, 9, 4},  {5, 4200, 3}};
  const double alpha = 0.75, beta = -0.5;
  uint64_t seed = 100;
  // threads 1 and 2 with the CPU's best build of the built-in kernel, then 2 with the baseline
  // build (on an AVX2 machine the two differ; elsewhere this repeats the baseline).
  for (int run = 0; run < 3; ++run) {
    const int threads = run == 0 ? 1 : 2;
    set_num_threads(threads);
    ops::gemm_builtin_force_baseline(run == 2);
    if (run == 2) {
      EXPECT_STREQ(ops::gemm_builtin_isa(), "baseline");
    }
    for (const GemmCase& s : cases)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          SCOPED_TRACE(str("M=", s.M, " N=", s.N, " K=", s.K, " ta=", ta, " tb=", tb,
                           " threads=", threads, " built-in ", ops::gemm_builtin_isa()));
          GemmProblem p(s, ta, tb, ++seed);
          std::vector<double> c_ref = p.C;
          ops::gemm_reference(ta, tb, p.M, p.N, p.K, alpha, p.A.data(), p.lda, p.B.data(), p.ldb,
                              beta, c_ref.data(), p.ldc);
          Tensor expected = p.block(c_ref);
          const std::vector<float> Af = to_float(p.A), Bf = to_float(p.B);
          std::vector<float> c_gemm = to_float(p.C), c_builtin = to_float(p.C);
          ops::gemm(ta, tb, p.M, p.N, p.K, float(alpha), Af.data(), p.lda, Bf.data(), p.ldb,
                    float(beta), c_gemm.data(), p.ldc);
          ops::gemm_builtin(ta, tb, p.M, p.N, p.K, float(alpha), Af.data(), p.lda, Bf.data(), p.ldb,
                            float(beta), c_builtin.data(), p.ldc);
          std::vector<double> c_double = p.C;
          ops::gemm(ta, tb, p.M, p.N, p.K, alpha, p.A.data(), p.lda, p.B.data(), p.ldb, beta,
                    c_double.data(), p.ldc);
          EXPECT_ALLCLOSE(p.block(to_double(c_gemm)), expected, 1e-4, 1e-4);
          EXPECT_ALLCLOSE(p.block(to_double(c_builtin)), expected, 1e-4, 1e-4);
          EXPECT_ALLCLOSE(p.block(c_double), expected, 1e-12, 1e-12);
          // The padding between rows of C is never written.
          bool padding_kept = true;
          for (int64_t i = 0; i < p.M; ++i)
            for (int64_t j = p.N; j < p.ldc; ++j)
              padding_kept = padding_kept &&
                             c_builtin[i * p.ldc + j] == float(p.C[i * p.ldc + j]) &&
                             c_gemm[i * p.ldc + j] == float(p.C[i * p.ldc + j]);
          EXPECT_TRUE(padding_kept);
        }
  }
}

TEST(Gemm, BetaZeroIgnoresGarbageInC) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> A = {1, 2, 3, 4, 5, 6};  // [2, 3]
  const std::vector<float> B = {1, 0, 0, 1, 1, 1};  // [3, 2]
  const std::vector<float> expected = {4, 5, 10, 11};
  std::vector<float> c1(4, nan), c2(4, nan);
  ops::gemm(false, false, 2, 2, 3, 1.f, A.data(), 3, B.data(), 2, 0.f, c1.data(), 2);
  ops::gemm_builtin(false, false, 2, 2, 3, 1.f, A.data(), 3, B.data(), 2, 0.f, c2.data(), 2);
  EXPECT_EQ(c1, expected);
  EXPECT_EQ(c2, expected);
}

TEST(Gemm, EmptyInnerDimensionScalesC) {
  std::vector<float> c = {1, 2, 3, 4}, c2 = c;
  ops::gemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  ops::gemm_builtin(true, true, 2, 2, 0, 1.f, nullptr, 2, nullptr, 1, 0.5f, c2.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1, 1.5f, 2}));
  EXPECT_EQ(c2, c);
}
