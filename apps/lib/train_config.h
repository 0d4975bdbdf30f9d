// The resolved configuration of a train_cifar run: every flag with its default, the method's
// options, validation, and the TOML form written to config.toml in the run directory.
#pragma once
#include <string>
#include <vector>

#include "apps/lib/toml.h"
#include "tensor/dtype.h"

namespace CLI {
class App;
}

namespace okd::apps {

struct TrainConfig {
  std::string method = "baseline";
  std::string arch = "resnet20";
  std::string dataset = "";  // "" = fashion-mnist unless --data-dir says otherwise
  std::string data_dir = "";
  std::string augment = "standard";   // standard | flip-rrc | none
  int64_t image_size = 0;             // imagefolder: images resized to this at load (0: own size)
  double rrc_min_scale = 0.5;         // flip-rrc: smallest area fraction of the crop
  int64_t cutout = 0;                 // side of the cutout square (0: none)
  std::string padding = "zero";       // zero | reflect: the padding of the standard random crop
  std::string normalize = "dataset";  // dataset | imagenet: the mean/std of the normalisation
  std::string recipe = "common";      // common | reference (the method's published recipe)
  int64_t epochs = 15;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  std::string schedule = "multistep";  // multistep | cosine | step | constant
  std::vector<double> milestones;      // epochs; default: 50% and 75% of --epochs
  double gamma = 0.1;
  int64_t step_size = 30;
  double warmup_epochs = 0;
  double final_lr = 0;  // cosine
  char shortcut = 'B';
  std::string init = "he_fanout";
  std::string device = "cpu";
  bool deterministic = false;         // cuDNN: deterministic algorithms only
  bool allow_tf32 = false;            // cuBLAS/cuDNN float32 products in TF32
  bool cudnn_benchmark = false;       // cuDNN algorithms chosen by timing (cuda::set_conv_autotune)
  std::string precision = "float32";  // float32 | bf16: products of conv/linear (autocast)
  bool cuda_graph = false;            // capture each training step as a CUDA graph and replay it
  bool data_on_device = false;        // training images kept and augmented on the device
  int threads = 0;                    // 0 = all cores (OpenMP default)
  int workers = 2;
  uint64_t seed = 0;
  std::string out = "";     // "" = runs/<method>-<arch>-<dataset>-s<seed>
  int64_t limit_train = 0;  // 0 = all
  int64_t limit_test = 0;
  bool limit_random = false;  // the limits pick a seeded random subset instead of the first N
  std::string resume = "";
  std::string eval_only = "";
  bool list_methods = false;
  bool list_archs = false;
  int64_t checkpoint_every_steps = 0;       // 0 = at the end of each epoch only
  int64_t stop_after_steps = 0;             // > 0: behave as if Ctrl-C came after this many steps
  ConfigMap method_options;                 // "<method>.<key>" -> value
  std::vector<std::string> explicit_flags;  // flags given on the command line or in --config
};

// Adds every flag (with its default in --help) and every method's namespaced options.
void add_train_flags(CLI::App& app, TrainConfig& cfg);
// Parses argv, first applying a --config TOML file whose keys are flag names; the command line
// overrides the file. Returns false when the app should exit (help printed); throws on errors.
bool parse_train_args(int argc, const char* const* argv, TrainConfig& cfg, std::string& help_text);
// With --recipe reference, sets every flag of the method's reference recipe that was not given
// explicitly; returns one line saying what was applied ("" when nothing was).
std::string apply_recipe(TrainConfig& cfg);
// Checks values and fills derived defaults (dataset, milestones, out dir); throws naming the key.
void validate(TrainConfig& cfg);
ConfigMap to_config_map(const TrainConfig& cfg);
// The --precision flag's value as the autocast precision (nn/functional.h); throws naming the
// flag for anything but float32 or bf16.
Precision parse_precision(const std::string& name);

}  // namespace okd::apps
