// method_layout: prints, as JSON, what a method builds for a backbone (networks, every parameter
// and buffer with its shape, the optimizer's parameter groups, views, members, state beyond the
// networks), so an independent implementation of the method (tests/reference/method_parity/)
// can name its tensors as okd does. With --probe it also runs two training steps on
// method_parity.h's deterministic inputs in float32 and float64 and prints the terms.
//   method_layout dml [--arch resnet8] [--classes 10] [--size 16] [--batch 8] [--probe]
//   method_layout ekd-fws:kl_weight=6
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>

#include "distill/method.h"
#include "optim/sgd.h"
#include "tensor/runtime.h"
#include "tests/distill/method_parity.h"

using namespace okd;

namespace {

std::string shape_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void probe(const std::string& spec, const distill::BuildContext& ctx, int64_t batch, DType dt) {
  auto m = distill::make_method_from_spec(spec);
  m->build(ctx);
  distill::parity::det_init(*m);
  for (auto& [n, net] : m->networks()) net->to(dt);
  optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  optim::SGD sgd(distill::optimizer_groups(*m, so.lr, so.weight_decay), so);
  distill::Batch b =
      distill::parity::det_batch(batch, ctx.image_size, m->num_views(), ctx.num_classes, dt);
  for (int step = 0; step < 2; ++step) {
    m->set_training(true);
    distill::TrainClock clock{100, 300, step, 10};
    distill::StepResult r = m->forward_train(b, clock);
    std::printf("  \"%s step %d\": {\"loss\": %.17g", dtype_name(dt), step, r.loss.item());
    for (auto& [n, t] : r.terms) std::printf(", \"%s\": %.17g", n.c_str(), t.item());
    std::printf("},\n");
    m->update(r, sgd, clock);
    m->after_update(clock);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help")) {
    std::printf(
        "usage: method_layout METHOD[:key=value,...] [--arch A] [--classes C] [--size S] "
        "[--batch N] [--probe]\n");
    return argc < 2 ? 2 : 0;
  }
  const std::string spec = argv[1];
  distill::BuildContext ctx;
  ctx.arch = "resnet8";
  ctx.image_size = 16;
  ctx.seed = 0;
  ctx.epochs = 300;
  ctx.iters_per_epoch = 10;
  int64_t batch = 8;
  bool do_probe = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--arch")
      ctx.arch = next();
    else if (a == "--classes")
      ctx.num_classes = std::stoll(next());
    else if (a == "--size")
      ctx.image_size = std::stoll(next());
    else if (a == "--batch")
      batch = std::stoll(next());
    else if (a == "--probe")
      do_probe = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  set_num_threads(1);
  try {
    std::vector<int64_t> labels(100);
    for (size_t i = 0; i < labels.size(); ++i)
      labels[i] = static_cast<int64_t>(i) % ctx.num_classes;
    ctx.train_labels = from_vector<int64_t>(labels, {100});
    auto m = distill::make_method_from_spec(spec);
    m->build(ctx);
    std::unordered_map<const TensorImpl*, std::string> first_name;
    std::printf("{\n  \"method\": \"%s\",\n  \"num_views\": %d,\n  \"members\": [", spec.c_str(),
                m->num_views());
    auto members = m->members();
    for (size_t i = 0; i < members.size(); ++i)
      std::printf("%s\"%s\"", i ? ", " : "", members[i].c_str());
    std::printf("],\n  \"deployed\": \"%s\",\n  \"networks\": {\n", m->deployed_member().c_str());
    auto nets = m->networks();
    for (size_t k = 0; k < nets.size(); ++k) {
      const auto& [net_name, net] = nets[k];
      std::printf("    \"%s\": {\n      \"parameters\": [\n", net_name.c_str());
      auto params = net->named_parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& [pn, p] = params[i];
        const std::string key = net_name + "/" + pn;
        auto [it, fresh] = first_name.emplace(p.impl(), key);
        std::printf("        [\"%s\", %s, %s%s%s]%s\n", pn.c_str(), shape_json(p.shape()).c_str(),
                    p.requires_grad() ? "true" : "false", fresh ? "" : ", \"alias of ",
                    fresh ? "" : (it->second + "\"").c_str(), i + 1 < params.size() ? "," : "");
      }
      std::printf("      ],\n      \"buffers\": [\n");
      auto bufs = net->named_buffers();
      for (size_t i = 0; i < bufs.size(); ++i)
        std::printf("        [\"%s\", %s, \"%s\"]%s\n", bufs[i].first.c_str(),
                    shape_json(bufs[i].second.shape()).c_str(), dtype_name(bufs[i].second.dtype()),
                    i + 1 < bufs.size() ? "," : "");
      std::printf("      ]\n    }%s\n", k + 1 < nets.size() ? "," : "");
    }
    std::printf("  },\n  \"param_groups\": [\n");
    auto groups = m->param_groups();
    for (size_t g = 0; g < groups.size(); ++g) {
      std::printf("    {\"name\": \"%s\", \"weight_decay\": %s, \"lr_scale\": %s, \"params\": [",
                  groups[g].name.c_str(),
                  groups[g].weight_decay ? std::to_string(*groups[g].weight_decay).c_str() : "null",
                  groups[g].lr_scale ? std::to_string(*groups[g].lr_scale).c_str() : "null");
      for (size_t i = 0; i < groups[g].params.size(); ++i) {
        auto it = first_name.find(groups[g].params[i].impl());
        std::printf("%s\"%s\"", i ? ", " : "",
                    it == first_name.end() ? "(not in networks())" : it->second.c_str());
      }
      std::printf("]}%s\n", g + 1 < groups.size() ? "," : "");
    }
    std::printf("  ],\n  \"extra_state\": [");
    auto extra = m->extra_state();
    for (size_t i = 0; i < extra.size(); ++i)
      std::printf("%s[\"%s\", %s]", i ? ", " : "", extra[i].first.c_str(),
                  shape_json(extra[i].second.shape()).c_str());
    std::printf("]");
    if (do_probe) {
      std::printf(",\n  \"probe\": {\n");
      probe(spec, ctx, batch, DType::Float32);
      probe(spec, ctx, batch, DType::Float64);
      std::printf("  \"end\": 0}");
    }
    std::printf("\n}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "method_layout: %s\n", e.what());
    return 1;
  }
  return 0;
}
