// Device wiring, checked on any machine: with no GPU, cuda:0 is emulated on the CPU
// (tensor/cuda/emulator.cpp), so every device code path above the kernels runs here and must
// give the CPU's results bit for bit: tensors and autograd, the optimizers, EMA and clipping,
// batch norm's counter, checkpoints, and train_cifar --device cuda with every method. On a
// machine with a GPU the same tests run on it, and results must match the CPU within tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "autograd/functions.h"
#include "autograd/tape.h"
#include "distill/method.h"
#include "nn/functional.h"
#include "nn/layers.h"
#include "nn/models/backbone.h"
#include "nn/models/inference.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/ema.h"
#include "optim/sgd.h"
#include "tensor/cuda/cuda_ops.h"
#include "tensor/cuda/graph.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/index.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/update.h"
#include "tensor/random.h"
#include "tensor/runtime.h"
#include "tests/apps/train_cifar_helpers.h"
#include "tests/support/device_test.h"

namespace {

using namespace okd;
using test::cpu;
using test::dev;
using test::g_emulated;
using test::kCuda;

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
// is an error that names itself. A ResNet step (forward, backward with cross-entropy, SGD) has
// none (targets and indices are checked by the kernels, which defer an error to the next sync);
// item(), to(kCPU) and an upload are host synchronisations.
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
  step(true);  // warm-up: momentum buffers created
  const Tensor index = dev(from_vector<int64_t>({1, 0}, {2, 1, 1, 1}));
  {
    cuda::SyncFreeScope scope("the test's captured step");
    EXPECT_NO_THROW(step(false));
    EXPECT_NO_THROW(step(true));
    EXPECT_NO_THROW(ops::gather(x, 0, index));
    try {
      ops::sum(x).item();
      ADD_FAILURE() << "item() must count as a host synchronisation";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("a device-to-host copy"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("the test's captured step"), std::string::npos);
    }
    EXPECT_THROW(cpu(x), Error);
    EXPECT_THROW(dev(randn_t({2}, 5)), Error);  // an upload reads host memory
  }
  EXPECT_NO_THROW(ops::sum(x).item());
}

// Whole-step capture (issue 9; tensor/cuda/graph.h). A ResNet-20 step (forward, cross-entropy,
// backward, SGD with Nesterov momentum and weight decay, BN statistics and counters) is captured
// once and replayed on new batches copied into the captured inputs: parameters, buffers and losses
// equal the eager steps' (bit for bit when emulated: the replay reruns the recorded kernel calls on
// the captured memory; within tolerance on a GPU, where it is a CUDA graph).
// The body of CapturedStepReplaysLikeEagerSteps, in the precision of the caller's autocast (bf16:
// the batch norms also write the convolutions' bfloat16 copies, cuda::set_bf16_prestaging).
namespace {
void expect_captured_step_replays_like_eager_steps() {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  auto eager = nn::make_backbone(o), captured = nn::make_backbone(o);
  eager->to(kCuda);
  captured->to(kCuda);
  optim::SGD sgd_e(eager->parameters(), {0.1, 0.9, 0, 5e-4, true});
  optim::SGD sgd_c(captured->parameters(), {0.1, 0.9, 0, 5e-4, true});
  std::vector<Tensor> xs, ys;
  for (int b = 0; b < 5; ++b) {
    xs.push_back(randn_t({4, 3, 32, 32}, 30 + b));
    ys.push_back(from_vector<int64_t>({b % 10, (b + 3) % 10, 7, (2 * b) % 10}));
  }
  auto step = [](auto& net, optim::SGD& sgd, const Tensor& x, const Tensor& y) {
    sgd.zero_grad();
    Tensor loss = cross_entropy(net.forward(x), y);
    backward(loss);
    sgd.step();
    return loss;
  };
  // The captured step's inputs: fixed tensors, refilled before each replay.
  const Tensor x_in = dev(xs[0]), y_in = dev(ys[0]);
  std::vector<double> losses_e, losses_c;
  losses_e.push_back(step(*eager, sgd_e, dev(xs[0]), dev(ys[0])).item());
  losses_c.push_back(step(*captured, sgd_c, x_in, y_in).item());  // warm-up: momentum buffers
  cuda::CapturedGraph graph;
  Tensor loss_out;
  for (int b = 1; b < 5; ++b) {
    losses_e.push_back(step(*eager, sgd_e, dev(xs[b]), dev(ys[b])).item());
    ops::copy_across_devices_(x_in, xs[b]);
    ops::copy_across_devices_(y_in, ys[b]);
    if (!graph.ready())
      graph.capture([&] { loss_out = step(*captured, sgd_c, x_in, y_in); });
    else
      graph.replay();
    losses_c.push_back(loss_out.item());
  }
  EXPECT_GT(graph.size(), 100) << "a ResNet-20 step is hundreds of kernel launches";
  for (size_t i = 0; i < losses_e.size(); ++i) {
    if (g_emulated)
      EXPECT_EQ(losses_e[i], losses_c[i]) << "step " << i;
    else
      EXPECT_NEAR(losses_e[i], losses_c[i], 1e-4 * std::fabs(losses_e[i])) << "step " << i;
  }
  auto pe = eager->named_parameters(), pc = captured->named_parameters();
  for (size_t i = 0; i < pe.size(); ++i)
    expect_match(pe[i].second, pc[i].second, 1e-4, "parameter " + pe[i].first);
  auto be = eager->named_buffers(), bc = captured->named_buffers();
  for (size_t i = 0; i < be.size(); ++i)
    expect_match(be[i].second, bc[i].second, 1e-4, be[i].first);
  EXPECT_EQ(bc.back().second.item(), 5) << bc.back().first << ": the BN counter advanced on replay";
}
}  // namespace

TEST(DeviceWiring, CapturedStepReplaysLikeEagerSteps) {
  for (Precision precision : {Precision::Float32, Precision::BFloat16}) {
    SCOPED_TRACE(precision == Precision::BFloat16 ? "bf16" : "float32");
    nn::functional::Autocast autocast(precision);
    expect_captured_step_replays_like_eager_steps();
  }
}

// Random draws in a captured step (dropout) take their first Philox block from the generator's
// device counter, so each replay draws the next masks: the same sequence as eager draws, and the
// host offset (checkpointed) advances with every replay.
TEST(DeviceWiring, CapturedDrawsAdvanceOnEveryReplay) {
  Generator eager(9), captured(9);
  std::vector<std::vector<float>> want;
  for (int k = 0; k < 4; ++k)
    want.push_back(to_vector<float>(bernoulli({3, 50}, 0.3, eager, DType::Float32, kCuda)));
  EXPECT_EQ(to_vector<float>(bernoulli({3, 50}, 0.3, captured, DType::Float32, kCuda)), want[0]);
  cuda::CapturedGraph graph;
  Tensor mask;
  graph.capture([&] { mask = bernoulli({3, 50}, 0.3, captured, DType::Float32, kCuda); });
  EXPECT_EQ(to_vector<float>(mask), want[1]);
  for (int k = 2; k < 4; ++k) {
    graph.replay();
    EXPECT_EQ(to_vector<float>(mask), want[k]) << "replay " << k - 1;
  }
  EXPECT_EQ(captured.offset(), eager.offset());
  EXPECT_NE(want[1], want[2]);
  // A generator that never drew on the device cannot make its counter inside a capture.
  Generator fresh(3);
  cuda::CapturedGraph g2;
  EXPECT_THROW(g2.capture([&] { bernoulli({4}, 0.5, fresh, DType::Float32, kCuda); }), Error);
}

// What cannot be captured fails the capture by name, and leaves nothing behind.
TEST(DeviceWiring, CaptureRefusesHostSynchronisations) {
  const Tensor x = dev(randn_t({3}, 40));
  cuda::CapturedGraph graph;
  try {
    graph.capture([&] { ops::sum(x).item(); }, "the test's step");
    ADD_FAILURE() << "item() inside a capture must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inside the test's step"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(graph.ready());
  EXPECT_FALSE(cuda::capturing());
  EXPECT_THROW(graph.replay(), Error);
  Tensor y;
  graph.capture([&] { y = ops::mul(x, x); });
  EXPECT_TRUE(graph.ready());
  expect_match(ops::mul(cpu(x), cpu(x)), y, 1e-6, "captured x * x");
  ops::copy_across_devices_(x, from_vector<float>({1, 2, 3}));
  graph.replay();
  EXPECT_EQ(to_vector<float>(y), (std::vector<float>{1, 4, 9}));
  EXPECT_THROW(graph.capture([] {}), Error);  // one capture per graph
}

// The capture inventory of docs/cuda.md ("Host synchronisation points"): every method's warm
// training step (forward_train, update, after_update; ResNet-20, batch 8) run inside a
// SyncFreeScope, printing its first host synchronisation. A method that declares its step
// capturable (capture_blocker() == "") must have none. Emulated only (it tests the wiring).
TEST(DeviceWiring, CaptureInventoryOfEveryMethod) {
  if (!g_emulated) GTEST_SKIP() << "the inventory is taken on emulated cuda:0";
  const int64_t N = 8, C = 10;
  Generator g(50);
  const Tensor train_labels = randint(0, C, {64}, g);
  for (const std::string& name : distill::method_names()) {
    if (name == "kd" || name == "at") continue;  // offline: need a trained teacher's run
    SCOPED_TRACE(name);
    auto method = distill::make_method(name);
    distill::BuildContext ctx;
    ctx.num_classes = C;
    ctx.epochs = 2;
    ctx.iters_per_epoch = 8;
    ctx.train_labels = train_labels;
    ctx.device = kCuda;
    method->build(ctx);
    for (const auto& [n, net] : method->networks()) net->to(kCuda);
    std::vector<optim::ParamGroup> groups;
    for (auto& pg : method->param_groups()) groups.push_back({pg.params, 0.1, 5e-4, pg.name});
    optim::SGD sgd(groups, {0.1, 0.9, 0, 5e-4, true});
    auto batch = [&](int64_t k) {
      distill::Batch b;
      for (int v = 0; v < method->num_views(); ++v)
        b.views.push_back(dev(randn_t({N, 3, 32, 32}, 60 + 10 * k + v)));
      b.labels =
          dev(ops::index_select(train_labels, 0, from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7})));
      std::vector<int64_t> idx(N);
      for (int64_t i = 0; i < N; ++i) idx[i] = (k * N + i) % 64;
      b.indices = dev(from_vector<int64_t>(idx));
      return b;
    };
    distill::TrainClock clock{0, 2, 0, 8};
    auto step = [&](const distill::Batch& b) {
      distill::StepResult r = method->forward_train(b, clock);
      method->update(r, sgd, clock);
      method->after_update(clock);
    };
    method->on_epoch_start(clock);
    step(batch(0));  // warm-up: lazily made state
    const distill::Batch b1 = batch(1);
    clock.step_in_epoch = 1;
    std::string first_sync = "none";
    try {
      cuda::SyncFreeScope scope("the inventory step");
      step(b1);
    } catch (const Error& e) {
      const std::string what = e.what();
      first_sync = what.substr(0, what.find(" makes the host wait"));
    }
    Tape::current().clear();
    std::printf("capture inventory: %-8s first host sync: %s | capture_blocker: %s\n", name.c_str(),
                first_sync.c_str(),
                method->capture_blocker().empty() ? "none" : method->capture_blocker().c_str());
    if (method->capture_blocker().empty()) {
      EXPECT_EQ(first_sync, "none");
    }
  }
}

// SGD updates a parameter group with one multi-tensor step (ops::sgd_step_foreach_); its checks
// hold on every device: one device and dtype per call, state matching each parameter.
TEST(DeviceWiring, MultiTensorSgdStepChecksItsOperands) {
  std::vector<Tensor> ps{dev(randn_t({3}, 70)), dev(randn_t({2, 2}, 71))};
  std::vector<Tensor> gs{dev(randn_t({3}, 72)), dev(randn_t({2, 2}, 73))};
  std::vector<Tensor> bs{dev(randn_t({3}, 74)), dev(randn_t({2, 2}, 75))};
  ops::SgdStep s;
  s.lr = 0.1;
  s.momentum = 0.9;
  std::vector<Tensor> pc{cpu(ps[0]), cpu(ps[1])}, bc{cpu(bs[0]), cpu(bs[1])};
  ops::sgd_step_foreach_(ps, gs, bs, s);
  for (int i = 0; i < 2; ++i) {
    ops::sgd_step_(pc[i], cpu(gs[i]), bc[i], s);
    expect_match(pc[i], ps[i], 1e-6, "param " + std::to_string(i));
    expect_match(bc[i], bs[i], 1e-6, "buffer " + std::to_string(i));
  }
  EXPECT_THROW(ops::sgd_step_foreach_({ps[0], cpu(ps[1])}, gs, bs, s), Error);  // two devices
  EXPECT_THROW(ops::sgd_step_foreach_(ps, {gs[0]}, bs, s), Error);              // a missing grad
  EXPECT_THROW(ops::sgd_step_foreach_(ps, {gs[1], gs[0]}, bs, s), Error);       // wrong shapes
  EXPECT_THROW(ops::sgd_step_foreach_(ps, gs, {}, s), Error);  // momentum without buffers
}

// Adam and AdamW update a parameter group with one multi-tensor step (ops::adam_step_foreach_).
// For mixed shapes, parameters at different t, host steps or device step counters, with and
// without amsgrad, it equals adam_step_ one parameter at a time on the device and on the CPU over
// several steps (bit for bit when emulated; on a GPU the two device paths share their element
// code, so they too must agree exactly).
TEST(DeviceWiring, MultiTensorAdamStepMatchesPerTensorSteps) {
  const std::vector<Shape> shapes{{3}, {2, 5}, {4, 1, 3}, {1}, {0}, {17}};
  const size_t n = shapes.size();
  for (bool decoupled : {false, true})
    for (bool amsgrad : {false, true})
      for (bool counters : {false, true}) {
        SCOPED_TRACE(std::string(decoupled ? "AdamW" : "Adam") + (amsgrad ? " amsgrad" : "") +
                     (counters ? " device counters" : " host steps"));
        ops::AdamStep s;
        s.lr = 1e-2;
        s.weight_decay = 1e-2;
        s.decoupled = decoupled;
        s.amsgrad = amsgrad;
        // [c]pu and [d]evice one tensor at a time, [f]oreach on the device.
        std::vector<Tensor> pc, mc, vc, xc, pd, md, vd, xd, pf, mf, vf, xf, cnt_d, cnt_f;
        for (size_t i = 0; i < n; ++i) {
          const Tensor p = randn_t(shapes[i], 80 + i);
          pc.push_back(ops::clone(p));
          pd.push_back(dev(p));
          pf.push_back(dev(p));
          for (auto* l : {&mc, &vc, &xc}) l->push_back(zeros(shapes[i]));
          for (auto* l : {&md, &vd, &xd, &mf, &vf, &xf})
            l->push_back(zeros(shapes[i], DType::Float32, kCuda));
          const auto t0 = static_cast<double>(1 + i % 2);  // t starts at 1 or 2
          cnt_d.push_back(full({}, t0, DType::Int64, kCuda));
          cnt_f.push_back(full({}, t0, DType::Int64, kCuda));
        }
        for (int step = 0; step < 3; ++step) {
          std::vector<Tensor> gd;
          std::vector<int64_t> steps;
          for (size_t i = 0; i < n; ++i) {
            const Tensor g = randn_t(shapes[i], 100 * step + i);
            gd.push_back(dev(g));
            const int64_t t = 1 + static_cast<int64_t>(i % 2) + step;
            ops::AdamStep si = s;
            si.step = t;
            ops::adam_step_(pc[i], g, mc[i], vc[i], amsgrad ? xc[i] : Tensor(), si);
            if (counters) {
              si.step = 1000;  // ignored: the counter holds t
              si.step_counter = cnt_d[i];
            }
            ops::adam_step_(pd[i], gd[i], md[i], vd[i], amsgrad ? xd[i] : Tensor(), si);
            steps.push_back(counters ? 1000 : t);
          }
          ops::adam_step_foreach_(pf, gd, mf, vf, amsgrad ? xf : std::vector<Tensor>{}, steps,
                                  counters ? cnt_f : std::vector<Tensor>{}, s);
          for (size_t i = 0; i < n; ++i) {
            ops::counter_add_(cnt_d[i], 1);
            ops::counter_add_(cnt_f[i], 1);
          }
        }
        for (size_t i = 0; i < n; ++i) {
          const std::string what = "tensor " + std::to_string(i);
          expect_match(pc[i], pd[i], 1e-6, "per-tensor param, " + what);
          expect_match(pc[i], pf[i], 1e-6, "foreach param, " + what);
          expect_match(cpu(pd[i]), pf[i], 0, "foreach vs per-tensor param, " + what);
          expect_match(cpu(md[i]), mf[i], 0, "exp_avg, " + what);
          expect_match(cpu(vd[i]), vf[i], 0, "exp_avg_sq, " + what);
          if (amsgrad) expect_match(cpu(xd[i]), xf[i], 0, "max_exp_avg_sq, " + what);
        }
      }
}

// optim::Adam/AdamW go through the multi-tensor step: a group whose parameters are at different
// t (one has no gradient in the first step), with a float64 parameter beside float32 ones (two
// calls), run eagerly on the device and captured (eager steps 1-2, a capture of step 3, replays
// of steps 4-5), equals the CPU's.
TEST(DeviceWiring, AdamGroupsTakeTheMultiTensorStepEagerAndCaptured) {
  for (bool decoupled : {false, true}) {
    SCOPED_TRACE(decoupled ? "AdamW" : "Adam");
    auto make = [](Device d) {
      std::vector<Tensor> ps;
      const std::vector<Shape> shapes{{4, 3}, {5}, {2, 2, 2}, {6}};
      for (size_t i = 0; i < shapes.size(); ++i) {
        Tensor p = randn_t(shapes[i], 90 + i);
        if (i == 3) p = ops::to(p, DType::Float64);
        p = ops::to(p, d);
        p.requires_grad_();
        ps.push_back(p);
      }
      return ps;
    };
    std::vector<Tensor> pc = make(kCPU), pe = make(kCuda), pg = make(kCuda);
    optim::AdamWOptions o;
    o.lr = 1e-2;
    o.amsgrad = true;
    if (!decoupled) o.weight_decay = 5e-4;
    std::unique_ptr<optim::Adam> oc, oe, og;
    if (decoupled) {
      oc = std::make_unique<optim::AdamW>(pc, o);
      oe = std::make_unique<optim::AdamW>(pe, o);
      og = std::make_unique<optim::AdamW>(pg, o);
    } else {
      oc = std::make_unique<optim::Adam>(pc, o);
      oe = std::make_unique<optim::Adam>(pe, o);
      og = std::make_unique<optim::Adam>(pg, o);
    }
    cuda::CapturedGraph graph;
    for (int step = 0; step < 5; ++step) {
      for (size_t i = 0; i < pc.size(); ++i) {
        if (step == 0 && i == 1) continue;  // no gradient: not updated, its t lags behind
        const Tensor g = ops::to(randn_t(pc[i].shape(), 200 + 10 * step + i), pc[i].dtype());
        pc[i].set_grad(ops::clone(g));
        pe[i].set_grad(dev(g));
        if (!pg[i].grad().defined())
          pg[i].set_grad(dev(g));
        else
          ops::copy_across_devices_(pg[i].grad(), g);  // the captured step's fixed gradients
      }
      oc->step();
      oe->step();
      if (step < 2)
        og->step();
      else if (!graph.ready())
        graph.capture([&] { og->step(); });
      else
        graph.replay();
    }
    for (size_t i = 0; i < pc.size(); ++i) {
      expect_match(pc[i], pe[i], 1e-6, "eager param " + std::to_string(i));
      expect_match(pc[i], pg[i], 1e-6, "captured param " + std::to_string(i));
    }
    EXPECT_EQ(og->state_dict().size(), oc->state_dict().size());
  }
}

// The multi-tensor Adam's checks hold on every device: one call per device and dtype, one state
// tensor, step and (if any) counter per parameter, each matching it.
TEST(DeviceWiring, MultiTensorAdamStepChecksItsOperands) {
  auto d = [](const Shape& s, uint64_t seed) { return dev(randn_t(s, seed)); };
  std::vector<Tensor> ps{d({3}, 70), d({2, 2}, 71)}, gs{d({3}, 72), d({2, 2}, 73)};
  std::vector<Tensor> ms{d({3}, 74), d({2, 2}, 75)},
      vs{zeros({3}, DType::Float32, kCuda), zeros({2, 2}, DType::Float32, kCuda)};
  std::vector<Tensor> cs{full({}, 1, DType::Int64, kCuda), full({}, 1, DType::Int64, kCuda)};
  const std::vector<int64_t> steps{1, 1};
  ops::AdamStep s;
  s.lr = 0.1;
  auto expect_error = [&](auto&& call, const std::string& says, const char* what) {
    try {
      call();
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << what << ": " << e.what();
    }
  };
  expect_error([&] { ops::adam_step_foreach_(ps, {gs[0]}, ms, vs, {}, steps, cs, s); },
               "2 parameters but 1 gradients", "a missing gradient");
  expect_error([&] { ops::adam_step_foreach_(ps, gs, ms, vs, {}, {1}, cs, s); }, "1 steps",
               "a missing step");
  expect_error([&] { ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, {cs[0]}, s); },
               "1 step counters", "a missing counter");
  ops::AdamStep ams = s;
  ams.amsgrad = true;
  expect_error([&] { ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, cs, ams); },
               "0 max_exp_avg_sq (amsgrad on)", "amsgrad without max_exp_avg_sq");
  expect_error(
      [&] {
        ops::adam_step_foreach_({ps[0], cpu(ps[1])}, gs, ms, vs, {}, steps, cs, s);
      },
      "one device and dtype", "two devices");
  expect_error(
      [&] {
        ops::adam_step_foreach_({ps[0], ops::to(ps[1], DType::Float64)}, gs, ms, vs, {}, steps, cs,
                                s);
      },
      "one device and dtype", "two dtypes");
  expect_error(
      [&] {
        ops::adam_step_foreach_(ps, gs, {ms[0], cpu(ms[1])}, vs, {}, steps, cs, s);
      },
      "exp_avg", "a moment on the host");
  expect_error(
      [&] {
        ops::adam_step_foreach_(ps, {gs[1], gs[0]}, ms, vs, {}, steps, cs, s);
      },
      "does not match the parameter", "swapped gradients");
  expect_error(
      [&] {
        ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, {cs[0], full({}, 1, DType::Int64)}, s);
      },
      "step counter 1 must be an int64 scalar", "a counter on the host");
  ops::AdamStep with_counter = s;
  with_counter.step_counter = cs[0];
  expect_error([&] { ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, cs, with_counter); },
               "step_counters", "AdamStep::step_counter set");
  ops::adam_step_foreach_({}, {}, {}, {}, {}, {}, {}, s);  // an empty group is no work
  ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, cs, s);
  ops::adam_step_foreach_(ps, gs, ms, vs, {}, steps, {}, s);
}

// A kernel cannot throw: a bad target or index is recorded and raised, with the CPU op's message,
// at the host's next synchronisation with the device (tensor/cuda/cuda_ops.h). The op itself
// returns; the bad element is skipped; the record is cleared once raised.
TEST(DeviceWiring, BadTargetsAndIndicesAreRaisedAtTheNextSync) {
  const Tensor logits = dev(randn_t({3, 5}, 11));
  const Tensor bad = dev(from_vector<int64_t>({0, 5, 7}));
  Tensor loss;
  EXPECT_NO_THROW(loss = cross_entropy(logits, bad));
  try {
    loss.item();
    ADD_FAILURE() << "the bad target must be raised at item()";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cross_entropy: target 5 at position 1 is outside [0, 5)"),
              std::string::npos)
        << e.what();  // the first bad target, as the CPU op reports it
  }
  EXPECT_NO_THROW(cuda::synchronize());  // raised once, then cleared
  EXPECT_NO_THROW(ops::one_hot(dev(from_vector<int64_t>({2, -1})), 4));
  try {
    cuda::synchronize();
    ADD_FAILURE() << "the bad label must be raised at synchronize()";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one_hot: label -1 at position 1 is outside [0, 4)"),
              std::string::npos)
        << e.what();
  }
  const Tensor t = dev(randn_t({2, 3}, 12));
  const Tensor idx = dev(from_vector<int64_t>({0, 3}, {2, 1}));
  EXPECT_THROW(cpu(ops::gather(t, 1, idx)), Error);
  EXPECT_THROW(cpu(ops::scatter_add(t, 1, idx, t)), Error);
  EXPECT_THROW(cpu(ops::index_select(t, 0, dev(from_vector<int64_t>({2})))), Error);
  // Errors in the operands' dtype or shape are the host's to find, at once.
  EXPECT_THROW(ops::gather(t, 1, dev(from_vector<double>({0, 1}, {2, 1}))), Error);
  // Good indices: the CPU's results, no error pending.
  const Tensor good = dev(from_vector<int64_t>({2, 0}, {2, 1}));
  expect_match(ops::gather(cpu(t), 1, cpu(good)), ops::gather(t, 1, good), 0, "gather");
  EXPECT_NO_THROW(cuda::synchronize());
}

// The data rows of a metrics.csv text (epoch, member, lr, train_loss, train_top1, test_loss, ...),
// split at the commas; the header row is left out.
std::vector<std::vector<std::string>> metric_rows(const std::string& csv) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::stringstream cells(line);
    for (std::string f; std::getline(cells, f, ',');) fields.push_back(f);
    if (!fields.empty() && fields[0] != "epoch") rows.push_back(std::move(fields));
  }
  return rows;
}

// train_cifar --device cuda against --device cpu, every method, on a tiny generated CIFAR-10:
// emulated, the metrics files must be identical; on a GPU (or the SIMT simulator) the runs must
// complete with finite losses, and a one-step run must agree closely (below).
// The metrics (within tolerance on a GPU, identical when emulated) and the last checkpoint's
// tensors (identical when emulated) of a device run against the CPU run.
void expect_same_run(const std::string& method, const fs::path& cpu_dir, const fs::path& dev_dir) {
  SCOPED_TRACE(dev_dir.string());
  const std::string mc = test::metrics_without_seconds(cpu_dir);
  const std::string md = test::metrics_without_seconds(dev_dir);
  if (g_emulated) {
    EXPECT_EQ(mc, md);
  } else {
    // On a GPU a whole run is not comparable to the CPU's: these runs (lr 0.1, batches of 8, 40
    // images) are chaotic. Measured on the SIMT simulator (baseline): after one step every
    // tensor agrees within 3e-6, one step from an identical state agrees within 2.7e-6, but the
    // 3e-6 differences grow to 1e-3 in the stem's gradient at step 2, and the test losses after
    // an epoch came out 136 vs 120. So the runs must complete with the same rows and finite
    // losses here; expect_same_first_step compares the numbers.
    const auto ra = metric_rows(mc), rb = metric_rows(md);
    ASSERT_EQ(ra.size(), rb.size()) << "rows of metrics.csv, " << method;
    for (size_t r = 0; r < ra.size(); ++r) {
      const std::vector<std::string>&fa = ra[r], &fb = rb[r];
      ASSERT_EQ(fa.size(), fb.size()) << method << " row " << r;
      ASSERT_GE(fa.size(), 6u);
      EXPECT_EQ(fa[1], fb[1]) << method << " row " << r;
      // Finite where the CPU's are (members that do not train, like dkel's EMA peers, log NaN).
      for (int c : {3, 5}) {
        EXPECT_EQ(std::isnan(std::stod(fa[c])), std::isnan(std::stod(fb[c])))
            << method << " " << fa[1] << " column " << c << ": " << fa[c] << " vs " << fb[c];
        EXPECT_FALSE(std::isinf(std::stod(fb[c]))) << method << " " << fb[1] << " " << fb[c];
      }
    }
  }
  // Checkpoints are written from the host in the same format: emulated, byte for byte the same.
  int files = 0;
  for (const auto& e : fs::directory_iterator(cpu_dir / "checkpoints" / "last")) {
    if (e.path().extension() != ".safetensors") continue;
    ++files;
    const fs::path other = dev_dir / "checkpoints" / "last" / e.path().filename();
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

// On a GPU: one training step (one batch of 8) on each device; its training loss (the forward
// at initialisation) and the test loss after the step (one backward and update) must agree with
// the CPU's (tolerances below).
void expect_same_first_step(const std::string& method, std::vector<std::string> args,
                            const std::vector<std::string>& device_args, const fs::path& root) {
  if (g_emulated) return;         // the whole runs were compared bit for bit
  std::vector<std::string> kept;  // the run's arguments without --epochs N and --cuda-graph
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--epochs") {
      ++i;
      continue;
    }
    if (args[i] != "--cuda-graph") kept.push_back(args[i]);
  }
  args = kept;
  args.insert(args.end(), {"--epochs", "1", "--limit-train", "8"});
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> a = args;
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  const fs::path cpu_dir = root / "first_step_cpu", dev_dir = root / "first_step_dev";
  ASSERT_EQ(test::run(with({"--device", "cpu", "--out", cpu_dir.string()})), 0);
  std::vector<std::string> dev = device_args;
  dev.insert(dev.end(), {"--out", dev_dir.string()});
  ASSERT_EQ(test::run(with(dev)), 0);
  const auto ra = metric_rows(test::metrics_without_seconds(cpu_dir)),
             rb = metric_rows(test::metrics_without_seconds(dev_dir));
  ASSERT_EQ(ra.size(), rb.size()) << "rows of metrics.csv, " << method;
  ASSERT_GE(ra.size(), 1u);
  for (size_t r = 0; r < ra.size(); ++r) {
    const std::vector<std::string>&fa = ra[r], &fb = rb[r];
    ASSERT_GE(fa.size(), 6u);
    ASSERT_GE(fb.size(), 6u);
    // The training loss is the forward at initialisation: within 1e-4. The test loss follows one
    // backward and update, where a single ReLU input within float32 rounding of zero can go
    // either way: on the SIMT simulator amln's second network came out 2.5e-3 apart from the
    // CPU, and the CPU's own two convolution paths (direct and im2col) differ the same way; the
    // cause was one pre-activation of +4.4e-7 vs -2.5e-7 (docs/cuda.md). So 1e-2 here: it still
    // compares the backward and update (not checked by a deliberate mutation yet).
    for (int c : {3, 5}) {
      const double x = std::stod(fa[c]), y = std::stod(fb[c]);
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(y)) << method << " " << fa[1] << " column " << c;
        continue;
      }
      EXPECT_NEAR(x, y, (c == 3 ? 1e-4 : 1e-2) * std::fabs(x) + 1e-6)
          << method << " " << fa[1] << " column " << c;
    }
  }
}

class EmulatedTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(EmulatedTraining, DeviceRunMatchesCpuRun) {
  const std::string method = GetParam();
  // Two epochs for the methods a --cuda-graph run captures (a recapture at the epoch start and at
  // the lr drop), one for the rest.
  const bool capturable = distill::make_method(method)->capture_blocker().empty();
  const bool two_epochs = capturable;
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
  expect_same_run(method, root / "cpu", root / "cuda");
  expect_same_first_step(method, common, {"--device", "cuda"}, root);
  // Methods whose step is static also train with whole-step capture (--cuda-graph): one eager
  // warm-up step, a capture, replays, a recapture at epoch 2 (where the lr drops).
  if (capturable) {
    ::testing::internal::CaptureStdout();
    const int rc =
        test::run(with({"--device", "cuda", "--cuda-graph", "--out", (root / "graph").string()}));
    const std::string out = ::testing::internal::GetCapturedStdout();
    ASSERT_EQ(rc, 0) << out;
    expect_same_run(method, root / "cpu", root / "graph");
    // 10 steps of 8 images: 1 eager, a capture in each epoch (the lr drops at epoch 2), replays.
    long long captures = 0, replays = 0, eager = 0;
    const size_t at = out.find("cuda graph: ");
    ASSERT_NE(at, std::string::npos) << out;
    ASSERT_EQ(std::sscanf(out.c_str() + at, "cuda graph: %lld captures, %lld replays, %lld eager",
                          &captures, &replays, &eager),
              3);
    EXPECT_EQ(eager, 1);
    EXPECT_GE(captures, 2);
    EXPECT_GE(replays, 4);
    EXPECT_EQ(eager + captures + replays, 10);
  }
}

// --data-on-device: the training images live on the device and are augmented there
// (ops::crop_flip_normalize with the host loader's draws), so a run equals the host-loader run:
// baseline with reflect padding and whole-step capture, dkel with its three views per image.
TEST(DeviceWiring, DataOnDeviceTrainsLikeTheHostLoader) {
  fs::path data = test::make_tiny_cifar10("tiny_cifar_dev_data", 8);  // 40 train, 8 test
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / "runs_dev_data";
  fs::remove_all(root);
  for (const auto& [method, extra] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"baseline", {"--padding", "reflect", "--epochs", "2"}}, {"dkel", {"--epochs", "1"}}}) {
    SCOPED_TRACE(method);
    std::vector<std::string> common{"--method",     method,        "--dataset", "cifar10",
                                    "--data-dir",   data.string(), "--threads", "1",
                                    "--batch-size", "8",           "--workers", "1"};
    common.insert(common.end(), extra.begin(), extra.end());
    auto with = [&](std::vector<std::string> more) {
      std::vector<std::string> a = common;
      a.insert(a.end(), more.begin(), more.end());
      return a;
    };
    const fs::path cpu_dir = root / (method + "_cpu"), dev_dir = root / (method + "_dev");
    ASSERT_EQ(test::run(with({"--device", "cpu", "--out", cpu_dir.string()})), 0);
    std::vector<std::string> dev_args{"--device", "cuda", "--data-on-device", "--out",
                                      dev_dir.string()};
    if (method == "baseline") dev_args.push_back("--cuda-graph");
    ASSERT_EQ(test::run(with(dev_args)), 0);
    expect_same_run(method, cpu_dir, dev_dir);
    expect_same_first_step(method, common, {"--device", "cuda", "--data-on-device"}, root / method);
  }
  // Pipelines the device does not run are refused by name.
  std::vector<std::string> rrc{"--dataset", "cifar10", "--data-dir",           data.string(),
                               "--device",  "cuda",    "--data-on-device",     "--augment",
                               "flip-rrc",  "--out",   (root / "rrc").string()};
  EXPECT_NE(test::run(rrc), 0);
  std::vector<std::string> on_cpu{"--dataset",
                                  "cifar10",
                                  "--data-dir",
                                  data.string(),
                                  "--data-on-device",
                                  "--out",
                                  (root / "cpu_only").string()};
  EXPECT_NE(test::run(on_cpu), 0);
}

// --precision bf16 (mixed precision): emulated, a device run (eager and --cuda-graph) equals the
// CPU's bf16 run bit for bit, baseline and dml; on a GPU (cuDNN/cuBLAS bf16, another summation
// order than the CPU's emulation) the runs must complete, with no comparison of the figures.
TEST(DeviceWiring, Bf16RunMatchesCpuBf16Run) {
  fs::path data = test::make_tiny_cifar10("tiny_cifar_dev_bf16", 8);  // 40 train, 8 test
  fs::path root = fs::path(OKD_BINARY_DIR) / "test_tmp" / "runs_dev_bf16";
  fs::remove_all(root);
  for (const std::string method : {"baseline", "dml"}) {
    SCOPED_TRACE(method);
    std::vector<std::string> common{"--method",    method,        "--dataset",    "cifar10",
                                    "--data-dir",  data.string(), "--threads",    "1",
                                    "--epochs",    "1",           "--workers",    "1",
                                    "--precision", "bf16",        "--batch-size", "8"};
    auto with = [&](std::vector<std::string> more) {
      std::vector<std::string> a = common;
      a.insert(a.end(), more.begin(), more.end());
      return a;
    };
    const fs::path cpu_dir = root / (method + "_cpu");
    ASSERT_EQ(test::run(with({"--device", "cpu", "--out", cpu_dir.string()})), 0);
    for (const bool graph : {false, true}) {
      const fs::path dev_dir = root / (method + (graph ? "_graph" : "_cuda"));
      std::vector<std::string> dev_args{"--device", "cuda", "--out", dev_dir.string()};
      if (graph) dev_args.push_back("--cuda-graph");
      ASSERT_EQ(test::run(with(dev_args)), 0) << dev_dir;
      if (g_emulated) expect_same_run(method, cpu_dir, dev_dir);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllMethods, EmulatedTraining, ::testing::ValuesIn(distill::method_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// apps/predict's code path with the network on the device: the images (on the CPU) go to the
// device in chunks and the logits come back to the CPU, as the CPU run's.
TEST(DeviceWiring, PredictLogitsRunOnTheNetworksDevice) {
  nn::BackboneOptions o;
  o.arch = "resnet20";
  o.num_classes = 10;
  o.seed = 3;
  auto net = nn::make_backbone(o);
  net->eval();
  const Tensor x = randn_t({5, 3, 32, 32}, 91);
  // The same chunks on both devices: a whole-batch CPU run may differ in the last bit where the
  // BLAS blocks a 5-image product differently from a 2-image one (OpenBLAS on AMD EPYC does).
  const Tensor on_cpu = nn::predict_logits(*net, x, 2);
  net->to(kCuda);
  const Tensor on_device = nn::predict_logits(*net, x, 2);
  EXPECT_EQ(on_device.device(), kCPU);
  expect_match(on_cpu, dev(on_device), 1e-5, "logits");
}
