// Device wiring, checked on any machine: with no GPU, cuda:0 is emulated on the CPU
// (tensor/cuda/emulator.cpp), so every device code path above the kernels runs here and must
// give the CPU's results bit for bit: tensors and autograd, the optimizers, EMA and clipping,
// batch norm's counter, checkpoints, and train_cifar --device cuda with every method. On a
// machine with a GPU the same tests run on it, and results must match the CPU within tolerance.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/tape.h"
#include "distill/method.h"
#include "nn/layers.h"
#include "nn/models/backbone.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/sgd.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/apps/train_cifar_helpers.h"

namespace {

using namespace okd;
constexpr Device kCuda{DeviceType::CUDA, 0};

// Emulate cuda:0 unless a real GPU is there (then these tests run on it).
const bool g_emulated = [] {
  if (cuda_device_count() > 0) return false;
  cuda::enable_emulation();
  return true;
}();

Tensor cpu(const Tensor& t) { return ops::to(t, kCPU); }
Tensor dev(const Tensor& t) { return ops::to(t, kCuda); }

// Bit-identical when emulated (unless exact is false: a device path that reduces in another
// order); within rel (relative to the largest magnitude) on a GPU.
void expect_match(const Tensor& cpu_result, const Tensor& device_result, double rel,
                  const std::string& what, bool exact = true) {
  ASSERT_TRUE(device_result.device().is_cuda()) << what << ": " << device_result.desc();
  const std::vector<double> a = to_vector<double>(cpu_result), b = to_vector<double>(device_result);
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0;
  for (double v : a) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    if (g_emulated && exact)
      ASSERT_EQ(a[i], b[i]) << what << " [" << i << "]";
    else
      ASSERT_LE(std::fabs(a[i] - b[i]), rel * std::max(scale, 1e-30)) << what << " [" << i << "]";
  }
}

Tensor randn_t(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g);
}

}  // namespace

TEST(DeviceWiring, MixingDevicesAndHostReadsOfDeviceMemoryAreErrors) {
  Tensor a = dev(randn_t({3, 4}, 1)), b = randn_t({3, 4}, 2);
  EXPECT_TRUE(a.device().is_cuda());
  try {
    ops::add(a, b);
    FAIL() << "adding a cuda:0 and a cpu tensor must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
  // A host loop over device memory is refused by name rather than reading a device pointer.
  EXPECT_THROW(a.data<float>(), Error);
  EXPECT_THROW(a.raw_data(), Error);
  // item() and to_vector copy to the host.
  EXPECT_EQ(ops::sum(a).item(), ops::sum(cpu(a)).item());
  EXPECT_EQ(to_vector<float>(a), to_vector<float>(cpu(a)));
  // Integer arithmetic has no CUDA kernel: refused as the GPU would.
  if (g_emulated) {
    EXPECT_THROW(ops::neg(dev(from_vector<int64_t>({1, 2}))), Error);
  }
}

TEST(DeviceWiring, ConvNetForwardBackwardMatchesCpu) {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  o.num_classes = 10;
  auto net_cpu = nn::make_backbone(o), net_dev = nn::make_backbone(o);
  net_dev->to(kCuda);
  for (const auto& [n, p] : net_dev->named_parameters()) ASSERT_TRUE(p.device().is_cuda()) << n;
  Tensor x = randn_t({4, 3, 32, 32}, 3);
  Tensor y = from_vector<int64_t>({1, 7, 3, 0});
  Tensor loss_cpu = cross_entropy(net_cpu->forward(x), y);
  backward(loss_cpu);
  Tensor loss_dev = cross_entropy(net_dev->forward(dev(x)), dev(y));
  backward(loss_dev);
  expect_match(loss_cpu, loss_dev, 1e-5, "loss");
  auto pc = net_cpu->named_parameters(), pd = net_dev->named_parameters();
  for (size_t i = 0; i < pc.size(); ++i)
    expect_match(pc[i].second.grad(), pd[i].second.grad(), 1e-4, "grad " + pc[i].first);
  auto bc = net_cpu->named_buffers(), bd = net_dev->named_buffers();
  for (size_t i = 0; i < bc.size(); ++i)
    expect_match(bc[i].second, bd[i].second, 1e-5, bc[i].first);
}

TEST(DeviceWiring, OptimizersEmaAndClippingUpdateOnTheDevice) {
  auto make = [](Device d) {
    std::vector<Tensor> ps;
    for (int i = 0; i < 3; ++i) {
      Tensor p = ops::to(randn_t({5, 7}, 10 + i), d);
      p.requires_grad_();
      p.set_grad(ops::to(randn_t({5, 7}, 20 + i), d));
      ps.push_back(p);
    }
    return ps;
  };
  std::vector<Tensor> pc = make(kCPU), pd = make(kCuda);
  optim::SGD sgd_c({pc[0]}, {0.1, 0.9, 0, 5e-4, true}), sgd_d({pd[0]}, {0.1, 0.9, 0, 5e-4, true});
  optim::AdamWOptions ao;
  ao.lr = 0.01;
  ao.amsgrad = true;
  optim::AdamW adam_c({pc[1]}, ao), adam_d({pd[1]}, ao);
  for (int step = 0; step < 3; ++step) {
    sgd_c.step();
    sgd_d.step();
    adam_c.step();
    adam_d.step();
  }
  expect_match(pc[0], pd[0], 1e-6, "SGD Nesterov");
  expect_match(pc[1], pd[1], 1e-6, "AdamW amsgrad");
  // Optimizer state goes through the host in a checkpoint and comes back onto the device.
  optim::SGD sgd_d2({pd[0]}, {0.1, 0.9, 0, 5e-4, true});
  sgd_d2.load_state_dict(sgd_d.state_dict());
  sgd_d2.step();
  sgd_c.step();
  expect_match(pc[0], pd[0], 1e-6, "SGD after a state round trip");

  // The device's norm is its own reduction (another summation order than the CPU's blocks).
  const double nc = optim::clip_grad_norm_(pc, 1.0), nd = optim::clip_grad_norm_(pd, 1.0);
  EXPECT_NEAR(nc, nd, 1e-6 * nc);
  for (int i = 0; i < 3; ++i)
    expect_match(pc[i].grad(), pd[i].grad(), 1e-6, "clipped grad", /*exact=*/false);
  optim::clip_grad_value_(pc, 0.05);
  optim::clip_grad_value_(pd, 0.05);
  for (int i = 0; i < 3; ++i)
    expect_match(pc[i].grad(), pd[i].grad(), 1e-6, "value-clipped grad", /*exact=*/false);

  Tensor ec = ops::clone(pc[2]), ed = ops::clone(pd[2]);
  optim::Ema ema_c({ec}, {pc[2]}, {0.9, true}), ema_d({ed}, {pd[2]}, {0.9, true});
  for (int i = 0; i < 3; ++i) {
    ops::add_(pc[2], pc[0]);
    ops::add_(pd[2], pd[0]);
    ema_c.update();
    ema_d.update();
  }
  expect_match(ec, ed, 1e-6, "EMA");
}

TEST(DeviceWiring, BatchNormCountsBatchesOnTheDeviceAndReloads) {
  auto bn = nn::BatchNorm2d(3);
  bn->to(kCuda);
  Tensor x = dev(randn_t({2, 3, 4, 4}, 5));
  for (int i = 0; i < 3; ++i) bn->forward(x);
  EXPECT_EQ(bn->num_batches_tracked.item(), 3);
  EXPECT_TRUE(bn->num_batches_tracked.device().is_cuda());
  // A loaded count is picked up (the host's copy of it is refreshed, not kept).
  auto state = bn->state_dict();
  for (auto& [k, v] : state)
    if (k == "num_batches_tracked") v = scalar_tensor(40, DType::Int64);
  bn->load_state_dict(state);
  bn->forward(x);
  EXPECT_EQ(bn->num_batches_tracked.item(), 41);
}

TEST(DeviceWiring, SafetensorsRoundTripFromTheDevice) {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  auto a = nn::make_backbone(o);
  a->to(kCuda);
  const std::string path = std::string(OKD_BINARY_DIR) + "/test_tmp/device_roundtrip.safetensors";
  std::filesystem::create_directories(std::string(OKD_BINARY_DIR) + "/test_tmp");
  nn::save_safetensors(path, a->state_dict());
  o.seed = 99;
  auto b = nn::make_backbone(o);
  b->to(kCuda);
  b->load_state_dict(nn::load_safetensors(path));
  auto sa = a->state_dict(), sb = b->state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    ASSERT_TRUE(sb[i].second.device().is_cuda()) << sb[i].first;
    expect_match(sa[i].second, sb[i].second, 0, sa[i].first);
  }
}

// Dropout masks and uniform draws made on the device are the CPU's numbers for a generator state,
// and the generator advances alike (on a GPU too: tensor/philox.h is the same code there).
TEST(DeviceWiring, RandomDrawsOnTheDeviceMatchTheCpu) {
  Generator gc(42), gd(42);
  for (DType dt : {DType::Float32, DType::Float64, DType::UInt8}) {
    const Tensor bc = bernoulli({3, 1001}, 0.3, gc, dt),
                 bd = bernoulli({3, 1001}, 0.3, gd, dt, kCuda);
    expect_match(bc, bd, 0, "bernoulli");
  }
  const Tensor uc = uniform({5, 77}, -2, 3, gc),
               ud = uniform({5, 77}, -2, 3, gd, DType::Float32, kCuda);
  expect_match(uc, ud, 0, "uniform");
  EXPECT_EQ(gc.offset(), gd.offset());
  Generator dc(7), dd(7);
  const Tensor x = randn_t({4, 33}, 8);
  expect_match(dropout(x, 0.4, true, dc), dropout(dev(x), 0.4, true, dd), 0, "dropout");
}

// Groundwork for whole-step capture (issue 9): inside a SyncFreeScope every host synchronisation
// is an error that names itself. A ResNet step (forward, backward, SGD) with a loss that needs no
// host check has none; cross-entropy's target check is one, as are item() and to(kCPU).
TEST(DeviceWiring, SyncFreeScopesNameTheHostSynchronisations) {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  auto net = nn::make_backbone(o);
  net->to(kCuda);
  optim::SGD sgd(net->parameters(), {0.1, 0.9, 0, 5e-4, true});
  const Tensor x = dev(randn_t({4, 3, 32, 32}, 4));
  const Tensor y = dev(from_vector<int64_t>({3, 1, 4, 1}));
  auto step = [&](bool with_cross_entropy) {
    sgd.zero_grad();
    Tensor z = net->forward(x);
    backward(with_cross_entropy ? cross_entropy(z, y) : mean(z * z));
    sgd.step();
  };
  step(true);  // warm-up: BN counters read back once, momentum buffers created
  {
    cuda::SyncFreeScope scope("the test's captured step");
    EXPECT_NO_THROW(step(false));
    try {
      step(true);
      ADD_FAILURE() << "cross-entropy's target check must count as a host synchronisation";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cross_entropy's target check"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("the test's captured step"), std::string::npos);
    }
    Tape::current().clear();  // the interrupted forward's entries
    EXPECT_THROW(ops::sum(x).item(), Error);
    EXPECT_THROW(cpu(x), Error);
    EXPECT_THROW(dev(randn_t({2}, 5)), Error);  // an upload reads host memory
  }
  EXPECT_NO_THROW(ops::sum(x).item());
}

// train_cifar --device cuda against --device cpu, every method, on a tiny generated CIFAR-10:
// emulated, the metrics files must be identical; on a GPU, losses within 2% (accuracy on 16
// images may flip with last-bit differences over a whole epoch).
class EmulatedTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(EmulatedTraining, DeviceRunMatchesCpuRun) {
  const std::string method = GetParam();
  const bool two_epochs = method == "baseline" || method == "dml";
  fs::path data = test::make_tiny_cifar10("tiny_cifar_dev_" + method, 8);  // 40 train, 8 test
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / ("runs_dev_" + method);
  fs::remove_all(root);
  std::vector<std::string> common{"--method",     method,
                                  "--dataset",    "cifar10",
                                  "--data-dir",   data.string(),
                                  "--epochs",     two_epochs ? "2" : "1",
                                  "--batch-size", "8",
                                  "--threads",    "1",
                                  "--workers",    "1"};
  if (method == "kd" || method == "at") {
    // Offline KD needs a teacher: a baseline run on the CPU.
    std::vector<std::string> t{"--dataset",    "cifar10",
                               "--data-dir",   data.string(),
                               "--epochs",     "1",
                               "--batch-size", "8",
                               "--threads",    "1",
                               "--workers",    "1",
                               "--out",        (root / "teacher").string()};
    ASSERT_EQ(test::run(t), 0);
    common.insert(common.end(), {"--" + method + ".teacher", (root / "teacher").string()});
  }
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ASSERT_EQ(test::run(with({"--device", "cpu", "--out", (root / "cpu").string()})), 0);
  ASSERT_EQ(test::run(with({"--device", "cuda", "--out", (root / "cuda").string()})), 0);
  const std::string mc = test::metrics_without_seconds(root / "cpu");
  const std::string md = test::metrics_without_seconds(root / "cuda");
  if (g_emulated) {
    EXPECT_EQ(mc, md);
  } else {
    // Columns: epoch, member, lr, train_loss, train_top1, test_loss, ...; compare the losses.
    std::stringstream a(mc), b(md);
    std::string la, lb;
    std::getline(a, la);
    std::getline(b, lb);
    while (std::getline(a, la) && std::getline(b, lb)) {
      std::vector<std::string> fa, fb;
      std::stringstream sa(la), sb(lb);
      for (std::string f; std::getline(sa, f, ',');) fa.push_back(f);
      for (std::string f; std::getline(sb, f, ',');) fb.push_back(f);
      ASSERT_GE(fa.size(), 6u);
      for (int c : {3, 5}) {
        const double x = std::stod(fa[c]), y = std::stod(fb[c]);
        EXPECT_NEAR(x, y, 0.02 * std::fabs(x)) << method << " " << la << " vs " << lb;
      }
    }
  }
  // Checkpoints are written from the host in the same format: emulated, byte for byte the same.
  int files = 0;
  for (const auto& e : fs::directory_iterator(root / "cpu" / "checkpoints" / "last")) {
    if (e.path().extension() != ".safetensors") continue;
    ++files;
    const fs::path other = root / "cuda" / "checkpoints" / "last" / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    const nn::NamedTensors a = nn::load_safetensors(e.path().string());
    const nn::NamedTensors b = nn::load_safetensors(other.string());
    ASSERT_EQ(a.size(), b.size()) << other;
    if (!g_emulated) continue;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].first, b[i].first);
      if (a[i].first.find("seconds") != std::string::npos) continue;
      EXPECT_EQ(to_vector<double>(a[i].second), to_vector<double>(b[i].second))
          << e.path().filename() << " " << a[i].first;
    }
  }
  EXPECT_GE(files, 2);  // at least one network and the trainer state
}

INSTANTIATE_TEST_SUITE_P(AllMethods, EmulatedTraining, ::testing::ValuesIn(distill::method_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });
