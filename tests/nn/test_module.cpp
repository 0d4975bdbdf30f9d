// Module registration, naming, dedup of shared parameters, train/eval, state_dict round trips
// through safetensors, and the errors of strict loading.
#include <cstdio>
#include <fstream>

#include "nn/module.h"
#include "tensor/ops/copy.h"
#include "tests/support/test_support.h"

using namespace okd;
using namespace okd::nn;

namespace {
class Leaf : public Module {
 public:
  explicit Leaf(int64_t n) : Module("Leaf") {
    w = register_parameter("weight", arange(0.0, static_cast<double>(n), 1.0, DType::Float32));
    b = register_buffer("running_mean", zeros({n}));
  }
  Tensor w, b;
};

class Tree : public Module {
 public:
  Tree() : Module("Tree") {
    a = register_module("a", std::make_shared<Leaf>(3));
    shared = std::make_shared<Leaf>(2);
    register_module("b", shared);
    register_module("c", shared);  // the same module under a second name
  }
  std::shared_ptr<Leaf> a, shared;
};

std::string temp_path(const std::string& name) { return std::string(OKD_BINARY_DIR) + "/" + name; }
}  // namespace

TEST(Module, DottedNamesInRegistrationOrder) {
  Tree t;
  auto named = t.named_parameters();
  ASSERT_EQ(named.size(), 2u);  // a.weight and b.weight; c.weight is the same tensor
  EXPECT_EQ(named[0].first, "a.weight");
  EXPECT_EQ(named[1].first, "b.weight");
  EXPECT_EQ(t.num_parameters(), 5);
  auto sd = t.state_dict();
  ASSERT_EQ(sd.size(), 4u);
  EXPECT_EQ(sd[2].first, "a.running_mean");
  EXPECT_EQ(sd[3].first, "b.running_mean");
  EXPECT_TRUE(t.a->w.requires_grad());
  EXPECT_FALSE(t.a->b.requires_grad());
}

TEST(Module, TrainEvalPropagatesAndApplyVisitsAll) {
  Tree t;
  t.eval();
  EXPECT_FALSE(t.a->is_training());
  EXPECT_FALSE(t.shared->is_training());
  t.train();
  EXPECT_TRUE(t.a->is_training());
  int visited = 0;
  t.apply([&](Module&) { ++visited; });
  EXPECT_EQ(visited, 4);  // root, a, b, c (c is b again, reached through its second name)
}

TEST(Module, ToDtypeConvertsInPlaceSharedOnceAndKeepsIntegerBuffers) {
  Tree t;
  t.register_buffer("steps", zeros({1}, DType::Int64));
  Tensor held = t.a->w;  // a handle held elsewhere (as a layer or an optimizer would)
  t.to(DType::Float64);
  EXPECT_EQ(held.dtype(), DType::Float64);  // same tensor, new data
  EXPECT_EQ(held.impl(), t.named_parameters()[0].second.impl());
  EXPECT_ALLCLOSE(held, arange(0.0, 3.0, 1.0, DType::Float64), 0, 0);
  EXPECT_TRUE(held.requires_grad());
  EXPECT_EQ(t.shared->w.dtype(), DType::Float64);  // shared under b and c: converted once
  EXPECT_EQ(t.shared->b.dtype(), DType::Float64);
  EXPECT_EQ(t.buffer("steps").dtype(), DType::Int64);
  t.to(DType::Float32);
  EXPECT_EQ(held.dtype(), DType::Float32);
  EXPECT_ALLCLOSE(held, arange(0.0, 3.0, 1.0, DType::Float32), 0, 0);
  EXPECT_THROW(t.to(DType::Int64), Error);
}

TEST(Module, SetDataReplacesDataAndDropsTheGradient) {
  Tensor a = ones({2});
  a.requires_grad_();
  a.set_grad(ones({2}));
  a.set_data(zeros({3}, DType::Float64));
  EXPECT_EQ(a.shape(), (Shape{3}));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_TRUE(a.requires_grad());
}

TEST(Module, DuplicateAndInvalidNamesThrow) {
  Leaf l(2);
  EXPECT_THROW(l.register_parameter("weight", zeros({1})), Error);
  EXPECT_THROW(l.register_parameter("has.dot", zeros({1})), Error);
}

TEST(Module, SafetensorsRoundTripAndStrictLoad) {
  Tree src;
  ops::fill_(src.a->w, 7.0);
  ops::fill_(src.shared->b, -1.5);
  std::string path = temp_path("module_roundtrip.safetensors");
  save_safetensors(path, src.state_dict(), {{"arch", "tree"}});
  std::map<std::string, std::string> meta;
  NamedTensors loaded = load_safetensors(path, &meta);
  EXPECT_EQ(meta["arch"], "tree");
  ASSERT_EQ(loaded.size(), 4u);
  Tree dst;
  auto report = dst.load_state_dict(loaded);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_DOUBLE_EQ(dst.a->w.at({1}), 7.0);
  EXPECT_DOUBLE_EQ(dst.shared->b.at({0}), -1.5);

  // A missing key, an unexpected key and a shape mismatch are all listed in one error.
  NamedTensors bad = loaded;
  bad.erase(bad.begin());               // drop a.weight
  bad.emplace_back("zzz", zeros({1}));  // unexpected
  bad[0].second = zeros({5});           // b.weight has shape [2]
  try {
    dst.load_state_dict(bad);
    FAIL() << "strict load accepted a bad state_dict";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("missing keys (1)"), std::string::npos) << m;
    EXPECT_NE(m.find("a.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected keys (1)"), std::string::npos) << m;
    EXPECT_NE(m.find("zzz"), std::string::npos) << m;
    EXPECT_NE(m.find("b.weight: checkpoint [5], model [2]"), std::string::npos) << m;
  }
  auto r = dst.load_state_dict(bad, /*strict=*/false);
  EXPECT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.unexpected.size(), 1u);
  EXPECT_EQ(r.mismatched.size(), 1u);
  std::remove(path.c_str());
}

TEST(Module, SafetensorsLayoutIsTheStandardOne) {
  std::string path = temp_path("layout.safetensors");
  save_safetensors(path, {{"x", tensor<float>({1.f, 2.f})}});
  std::ifstream f(path, std::ios::binary);
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  EXPECT_NE(header.find("\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"),
            std::string::npos)
      << header;
  float v[2];
  f.read(reinterpret_cast<char*>(v), 8);
  EXPECT_EQ(v[0], 1.f);
  EXPECT_EQ(v[1], 2.f);
  f.close();
  std::remove(path.c_str());
}

TEST(Module, TruncatedSafetensorsIsAnError) {
  std::string path = temp_path("truncated.safetensors");
  save_safetensors(path, {{"x", zeros({100})}});
  {
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(all.data(), static_cast<std::streamsize>(all.size() - 40));
  }
  EXPECT_THROW(load_safetensors(path), Error);
  std::remove(path.c_str());
  EXPECT_THROW(load_safetensors(temp_path("does_not_exist.safetensors")), Error);
}
