// train_cifar's flags (CLI11), --config files and validation.
#include "apps/lib/train_config.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "distill/method.h"
#include "nn/models/backbone.h"
#include "tensor/error.h"

namespace okd::apps {

namespace {
std::string join(const std::vector<double>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace

void add_train_flags(CLI::App& app, TrainConfig& c) {
  app.option_defaults()->always_capture_default();
  app.add_option("--method", c.method, "training method (see --list-methods)");
  app.add_option("--arch", c.arch, "backbone (see --list-archs)");
  app.add_option("--dataset", c.dataset,
                 "cifar10 | cifar100 | fashion-mnist | imagefolder (default: fashion-mnist from "
                 "/usr/share/datasets/fashion-mnist, padded to 32x32, 3 channels)");
  app.add_option("--data-dir", c.data_dir,
                 "directory holding the dataset files (imagefolder: DIR/train/<class>/<image> and "
                 "DIR/val or DIR/test laid out the same way, TinyImageNet's val/ with "
                 "val_annotations.txt, or CUB-200-2011 as distributed)");
  app.add_option("--image-size", c.image_size,
                 "imagefolder: resize each image's shorter side to N and centre-crop N x N when "
                 "loading (bilinear, antialiased); 0 keeps the images' own size, which they must "
                 "then share (TinyImageNet: 64x64)");
  app.add_option("--augment", c.augment,
                 "standard (random crop pad 4 + flip) | flip-rrc (flip + random resized crop, "
                 "scale (--rrc-min-scale, 1), ratio (3/4, 4/3), EKD-FWSNet's CIFAR recipe) | none")
      ->check(CLI::IsMember({"standard", "flip-rrc", "none"}));
  app.add_option("--rrc-min-scale", c.rrc_min_scale,
                 "smallest crop area fraction of --augment flip-rrc (torchvision's default: 0.08)");
  app.add_option("--cutout", c.cutout,
                 "erase a random N x N square of each training image after normalisation "
                 "(Cutout; 0 = off)");
  app.add_option("--padding", c.padding, "padding of the standard random crop: zero | reflect")
      ->check(CLI::IsMember({"zero", "reflect"}));
  app.add_option("--normalize", c.normalize,
                 "normalisation statistics: dataset (the dataset's own mean/std) | imagenet")
      ->check(CLI::IsMember({"dataset", "imagenet"}));
  app.add_option("--recipe", c.recipe,
                 "common: the flags as given (one recipe for every method, for fair comparisons) "
                 "| reference: the method's published recipe (epochs, lr, momentum, Nesterov, "
                 "weight decay, milestones, augmentation) for every flag not given explicitly")
      ->check(CLI::IsMember({"common", "reference"}));
  app.add_option("--epochs", c.epochs, "training epochs");
  app.add_option("--batch-size", c.batch_size, "mini-batch size");
  app.add_option("--lr", c.lr, "initial learning rate");
  app.add_option("--momentum", c.momentum, "SGD momentum");
  app.add_flag("--nesterov,!--no-nesterov", c.nesterov, "Nesterov momentum");
  app.add_option("--weight-decay", c.weight_decay, "coupled L2 weight decay (all parameters)");
  app.add_option("--schedule", c.schedule, "learning-rate schedule")
      ->check(CLI::IsMember({"multistep", "cosine", "step", "constant"}));
  app.add_option("--milestones", c.milestones,
                 "multistep epochs (default: 50% and 75% of --epochs)")
      ->delimiter(',');
  app.add_option("--gamma", c.gamma, "lr factor at each milestone / step");
  app.add_option("--step-size", c.step_size, "epochs between lr steps (--schedule step)");
  app.add_option("--warmup-epochs", c.warmup_epochs,
                 "linear warmup epochs in front of the schedule");
  app.add_option("--final-lr", c.final_lr, "final lr of the cosine schedule");
  app.add_option("--shortcut", c.shortcut,
                 "CIFAR ResNet shortcut: A (parameter-free) or B (1x1 conv+BN)");
  app.add_option("--init", c.init, "weight init: he_fanout | he_fanin | pytorch")
      ->check(CLI::IsMember({"he_fanout", "he_fanin", "pytorch"}));
  app.add_option("--device", c.device,
                 "cpu | cuda (cuda:0; on a machine without a GPU, OKD_CUDA_EMULATE=1 emulates it "
                 "on the CPU to test the device code paths)");
  app.add_flag("--deterministic,!--no-deterministic", c.deterministic,
               "cuda: only cuDNN convolution algorithms that are deterministic (okd's own kernels "
               "and the CPU always are)");
  app.add_flag("--allow-tf32,!--no-allow-tf32", c.allow_tf32,
               "cuda: let float32 matmuls and convolutions use TF32 tensor cores (10-bit mantissa "
               "inputs; off by default)");
  app.add_flag("--cudnn-benchmark,!--no-cudnn-benchmark", c.cudnn_benchmark,
               "cuda: choose each convolution's cuDNN algorithm by timing the candidates on its "
               "first call, as PyTorch's torch.backends.cudnn.benchmark (off by default: the "
               "choice, and so the last bits of results, can vary from run to run)");
  app.add_option("--precision", c.precision,
                 "float32 | bf16: bf16 is mixed precision (PyTorch's bf16 autocast): convolutions "
                 "and linear layers multiply bfloat16-rounded operands with float32 sums while "
                 "weights, gradients, optimizer state and every other op stay float32 (float32 "
                 "master weights). On cuda it runs cuDNN/cuBLAS on bf16 tensor cores; on the CPU "
                 "it is an emulation (rounding around the float32 kernels: slower, for checking)")
      ->check(CLI::IsMember({"float32", "bf16"}));
  app.add_flag("--cuda-graph,!--no-cuda-graph", c.cuda_graph,
               "cuda: after one eager warm-up step, capture a whole training step (forward, "
               "backward, update) as one CUDA graph and replay it for every full batch; "
               "recaptured when the epoch or the learning rate changes, partial batches and "
               "evaluation run eagerly. Every method's step is captured. Not yet run on a GPU "
               "(tested under OKD_CUDA_EMULATE=1)");
  app.add_flag("--data-on-device,!--no-data-on-device", c.data_on_device,
               "cuda: keep the training images on the device (uploaded once, as uint8) and "
               "augment each batch there (crop with padding, flip, normalisation: the same "
               "batches as the host loader, bit for bit); --augment standard or none, no cutout");
  app.add_option("--threads", c.threads, "CPU threads (0 = all cores)");
  app.add_option("--workers", c.workers, "data-loader worker threads");
  app.add_option("--seed", c.seed, "random seed (weights, data order, augmentation)");
  app.add_option("--out", c.out, "run directory (default: runs/<method>-<arch>-<dataset>-s<seed>)");
  app.add_option("--limit-train", c.limit_train, "use the first N training images (0 = all)");
  app.add_option("--limit-test", c.limit_test, "use the first N test images (0 = all)");
  app.add_flag("--limit-random", c.limit_random,
               "--limit-train/--limit-test take a random N (seeded with --seed, kept in dataset "
               "order) instead of the first N");
  app.add_option("--checkpoint-every", c.checkpoint_every_steps,
                 "also checkpoint every N steps within an epoch (0 = end of epoch only)");
  app.add_option("--stop-after", c.stop_after_steps,
                 "act as if Ctrl-C came after N training steps of this process (tests, demos)");
  app.add_option("--resume", c.resume, "continue the run in RUN_DIR from its last checkpoint");
  app.add_option("--eval-only", c.eval_only,
                 "evaluate the checkpoint directory CHECKPOINT and exit");
  app.add_flag("--list-methods", c.list_methods, "list the methods and exit");
  app.add_flag("--list-archs", c.list_archs, "list the architectures and exit");

  for (const auto& name : distill::method_names()) {
    auto m = distill::make_method(name);
    for (const auto& spec : m->options().specs()) {
      std::string key = name + "." + spec.key;
      c.method_options[key] = spec.default_value;
      app.add_option("--" + key, c.method_options[key], spec.help)
          ->group("Options of --method " + name);
    }
  }
}

bool parse_train_args(int argc, const char* const* argv, TrainConfig& cfg, std::string& help) {
  CLI::App app{"train_cifar: train an image classifier with online knowledge distillation."};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_train_flags(app, cfg);
  std::string config_path;
  app.add_option("--config", config_path, "TOML file whose keys are flag names; flags override it");

  // The config file's values go first so that the same flags on the command line win.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc)
      config_path = argv[i + 1];
    else if (a.rfind("--config=", 0) == 0)
      config_path = a.substr(9);
  }
  std::vector<std::string> merged;
  if (!config_path.empty()) {
    for (const auto& [k, v] : read_toml_file(config_path)) {
      OKD_CHECK(app.get_option_no_throw("--" + k) != nullptr, "config ", config_path,
                ": unknown key '", k, "' (keys are flag names without the leading --)");
      merged.push_back("--" + k + "=" + v);
    }
  }
  for (int i = 1; i < argc; ++i) merged.emplace_back(argv[i]);
  std::reverse(merged.begin(), merged.end());  // CLI11 parses a reversed vector of arguments
  try {
    app.parse(merged);
  } catch (const CLI::CallForHelp&) {
    help = app.help();
    return false;
  } catch (const CLI::ParseError& e) {
    OKD_FAIL("train_cifar: ", e.what(), " (see --help)");
  }
  for (const auto* opt : app.get_options())
    if (opt->count() > 0 && !opt->get_lnames().empty())
      cfg.explicit_flags.push_back(opt->get_lnames()[0]);
  // An option of another method than --method would be silently ignored: refuse it.
  for (const auto& [key, value] : cfg.method_options) {
    if (key.rfind(cfg.method + ".", 0) == 0 || app.count("--" + key) == 0) continue;
    OKD_FAIL("--", key, " is an option of --method ", key.substr(0, key.find('.')),
             ", but this run's method is ", cfg.method);
  }
  return true;
}

void validate(TrainConfig& c) {
  auto bad = [](const std::string& key, const std::string& why) { OKD_FAIL("--", key, ": ", why); };
  if (c.dataset.empty()) c.dataset = "fashion-mnist";
  const std::vector<std::string> datasets{"cifar10", "cifar100", "fashion-mnist", "mnist",
                                          "imagefolder"};
  if (std::find(datasets.begin(), datasets.end(), c.dataset) == datasets.end())
    bad("dataset", "unknown dataset '" + c.dataset +
                       "' (cifar10, cifar100, fashion-mnist, mnist, imagefolder)");
  if (c.data_dir.empty()) {
    if (c.dataset == "fashion-mnist")
      c.data_dir = "/usr/share/datasets/fashion-mnist";
    else if (c.dataset == "mnist")
      c.data_dir = "/usr/share/datasets/mnist";
    else
      bad("data-dir", "required for --dataset " + c.dataset);
  }
  const auto archs = nn::backbone_names();
  if (std::find(archs.begin(), archs.end(), c.arch) == archs.end()) {
    std::string known;
    for (const auto& a : archs) known += (known.empty() ? "" : ", ") + a;
    bad("arch", "unknown architecture '" + c.arch + "' (" + known + ")");
  }
  distill::make_method(c.method);  // throws listing the known methods
  if (c.epochs < 1) bad("epochs", "must be at least 1");
  if (c.batch_size < 1) bad("batch-size", "must be at least 1");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) bad("lr", "must be a positive number");
  if (c.momentum < 0 || c.momentum >= 1) bad("momentum", "must be in [0, 1)");
  if (c.weight_decay < 0) bad("weight-decay", "must be >= 0");
  if (c.gamma <= 0) bad("gamma", "must be positive");
  if (c.warmup_epochs < 0 || c.warmup_epochs >= c.epochs)
    bad("warmup-epochs", "must be in [0, epochs)");
  if (c.shortcut != 'A' && c.shortcut != 'B') bad("shortcut", "must be A or B");
  parse_precision(c.precision);
  if (c.device != "cpu" && c.device != "cuda" && c.device.rfind("cuda:", 0) != 0)
    bad("device", "must be cpu or cuda");
  if (c.threads < 0) bad("threads", "must be >= 0");
  if (c.workers < 0) bad("workers", "must be >= 0");
  if (c.limit_train < 0 || c.limit_test < 0) bad("limit-train", "limits must be >= 0");
  if (c.image_size < 0) bad("image-size", "must be >= 0");
  if (c.image_size > 0 && c.dataset != "imagefolder")
    bad("image-size", "applies to --dataset imagefolder only");
  if (!(c.rrc_min_scale > 0 && c.rrc_min_scale <= 1)) bad("rrc-min-scale", "must be in (0, 1]");
  if (c.cutout < 0) bad("cutout", "must be >= 0");
  if (c.schedule == "multistep" && c.milestones.empty())
    for (double m : {std::floor(c.epochs * 0.5), std::floor(c.epochs * 0.75)})
      if (m > 0 && (c.milestones.empty() || m > c.milestones.back())) c.milestones.push_back(m);
  for (double m : c.milestones)
    if (m <= 0 || m > c.epochs) bad("milestones", "every milestone must be in (0, epochs]");
  if (c.out.empty() && c.eval_only.empty() && c.resume.empty()) {
    // The default run directory never overwrites an earlier run: -2, -3 ... are appended.
    const std::string base =
        "runs/" + c.method + "-" + c.arch + "-" + c.dataset + "-s" + std::to_string(c.seed);
    c.out = base;
    for (int k = 2; std::filesystem::exists(c.out); ++k) c.out = base + "-" + std::to_string(k);
  }
  // Method options: each value must parse as its method declares (checked when the method is
  // configured); here only the namespace is checked.
  for (const auto& [k, v] : c.method_options) {
    auto dot = k.find('.');
    if (dot == std::string::npos) bad(k, "method options are written <method>.<key>");
  }
}

Precision parse_precision(const std::string& name) {
  if (name == "float32") return Precision::Float32;
  if (name == "bf16") return Precision::BFloat16;
  OKD_FAIL("--precision: '", name, "' is not a precision (float32 or bf16)");
}

std::string apply_recipe(TrainConfig& c) {
  if (c.recipe != "reference") return "";
  auto given = [&](const std::string& flag) {
    return std::find(c.explicit_flags.begin(), c.explicit_flags.end(), flag) !=
           c.explicit_flags.end();
  };
  const std::string dataset = c.dataset.empty() ? "fashion-mnist" : c.dataset;
  distill::Recipe r = distill::make_method(c.method)->reference_recipe(dataset, c.arch);
  std::vector<std::string> applied;
  auto set = [&](const char* flag, auto& field, const auto& value, const std::string& shown) {
    if (given(flag)) return;
    field = value;
    applied.push_back(std::string("--") + flag + " " + shown);
  };
  auto num = [](double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  };
  if (r.epochs) set("epochs", c.epochs, *r.epochs, std::to_string(*r.epochs));
  if (r.lr) set("lr", c.lr, *r.lr, num(*r.lr));
  if (r.momentum) set("momentum", c.momentum, *r.momentum, num(*r.momentum));
  if (r.nesterov) set("nesterov", c.nesterov, *r.nesterov, *r.nesterov ? "on" : "off");
  if (r.weight_decay) set("weight-decay", c.weight_decay, *r.weight_decay, num(*r.weight_decay));
  if (r.milestones) {
    // With a different number of epochs the milestones keep their place in the run:
    // m * epochs / reference epochs (rounded), e.g. 150, 225 of 300 -> 8, 11 of 15.
    std::vector<double> ms = *r.milestones;
    if (r.epochs && c.epochs != *r.epochs)
      for (double& m : ms)
        m = std::max(1.0, std::round(m * static_cast<double>(c.epochs) / *r.epochs));
    std::string m;
    for (double v : ms) m += (m.empty() ? "" : ",") + num(v);
    if (!given("schedule")) c.schedule = "multistep";
    set("milestones", c.milestones, ms, m);
  }
  if (r.gamma) set("gamma", c.gamma, *r.gamma, num(*r.gamma));
  if (r.schedule) set("schedule", c.schedule, *r.schedule, *r.schedule);
  if (r.final_lr) set("final-lr", c.final_lr, *r.final_lr, num(*r.final_lr));
  if (r.batch_size) set("batch-size", c.batch_size, *r.batch_size, std::to_string(*r.batch_size));
  if (r.augment) set("augment", c.augment, *r.augment, *r.augment);
  if (r.rrc_min_scale)
    set("rrc-min-scale", c.rrc_min_scale, *r.rrc_min_scale, num(*r.rrc_min_scale));
  if (r.padding) set("padding", c.padding, *r.padding, *r.padding);
  if (r.normalize) set("normalize", c.normalize, *r.normalize, *r.normalize);
  std::string line = "recipe: " + c.method + " reference (" + r.source + ")";
  for (const auto& a : applied) line += " " + a;
  if (applied.empty()) line += ": every flag given explicitly";
  return line;
}

ConfigMap to_config_map(const TrainConfig& c) {
  ConfigMap m{{"method", c.method},
              {"arch", c.arch},
              {"dataset", c.dataset},
              {"data-dir", c.data_dir},
              {"augment", c.augment},
              {"image-size", std::to_string(c.image_size)},
              {"rrc-min-scale", num(c.rrc_min_scale)},
              {"cutout", std::to_string(c.cutout)},
              {"padding", c.padding},
              {"normalize", c.normalize},
              {"recipe", c.recipe},
              {"epochs", std::to_string(c.epochs)},
              {"batch-size", std::to_string(c.batch_size)},
              {"lr", num(c.lr)},
              {"momentum", num(c.momentum)},
              {"nesterov", c.nesterov ? "true" : "false"},
              {"weight-decay", num(c.weight_decay)},
              {"schedule", c.schedule},
              {"gamma", num(c.gamma)},
              {"step-size", std::to_string(c.step_size)},
              {"warmup-epochs", num(c.warmup_epochs)},
              {"final-lr", num(c.final_lr)},
              {"shortcut", std::string(1, c.shortcut)},
              {"init", c.init},
              {"device", c.device},
              {"deterministic", c.deterministic ? "true" : "false"},
              {"allow-tf32", c.allow_tf32 ? "true" : "false"},
              {"cudnn-benchmark", c.cudnn_benchmark ? "true" : "false"},
              {"precision", c.precision},
              {"cuda-graph", c.cuda_graph ? "true" : "false"},
              {"data-on-device", c.data_on_device ? "true" : "false"},
              {"threads", std::to_string(c.threads)},
              {"workers", std::to_string(c.workers)},
              {"seed", std::to_string(c.seed)},
              {"out", c.out},
              {"limit-train", std::to_string(c.limit_train)},
              {"limit-test", std::to_string(c.limit_test)},
              {"limit-random", c.limit_random ? "true" : "false"},
              {"checkpoint-every", std::to_string(c.checkpoint_every_steps)}};
  if (!c.milestones.empty()) m["milestones"] = join(c.milestones);
  // Only the chosen method's options: the others do not affect the run.
  for (const auto& [k, v] : c.method_options)
    if (k.rfind(c.method + ".", 0) == 0) m[k] = v;
  return m;
}

}  // namespace okd::apps
