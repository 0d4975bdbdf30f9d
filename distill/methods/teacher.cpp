// Finding, building and loading a frozen teacher (see teacher.h).
#include "distill/methods/teacher.h"

#include <filesystem>
#include <map>

#include "distill/methods/classic_common.h"

namespace fs = std::filesystem;

namespace okd::distill {

LoadedTeacher load_teacher(const BuildContext& ctx, const TeacherSpec& spec,
                           const std::string& prefix) {
  OKD_CHECK(!spec.path.empty(), "--", prefix,
            ".teacher is required: a run directory of okd's train_cifar (e.g. made by "
            "train_cifar --method baseline --arch resnet56 --out runs/teacher), one of its "
            "checkpoint directories, or a .safetensors file");
  const fs::path p(spec.path);
  const std::string file_name = spec.network + ".safetensors";
  fs::path file;
  if (fs::is_regular_file(p)) {
    file = p;
  } else if (fs::is_regular_file(p / file_name)) {
    file = p / file_name;
  } else if (fs::is_regular_file(p / "checkpoints" / "best" / file_name)) {
    file = p / "checkpoints" / "best" / file_name;
  } else if (fs::is_regular_file(p / "checkpoints" / "last" / file_name)) {
    file = p / "checkpoints" / "last" / file_name;
  } else {
    OKD_FAIL("--", prefix, ".teacher ", spec.path, ": no teacher checkpoint found (looked for ",
             file_name,
             " in it, in checkpoints/best/ and in checkpoints/last/); train one with "
             "train_cifar --method baseline --out DIR and pass DIR");
  }
  std::map<std::string, std::string> meta;
  nn::NamedTensors state = nn::load_safetensors(file.string(), &meta);

  LoadedTeacher t;
  t.file = file.string();
  t.arch = spec.arch;
  if (t.arch == "auto") {
    OKD_CHECK(meta.count("arch") && !meta.at("arch").empty(), "teacher ", t.file,
              " has no 'arch' in its metadata; pass --", prefix, ".teacher_arch");
    t.arch = meta.at("arch");
  }
  t.shortcut = ctx.shortcut;
  if (spec.shortcut == "auto") {
    // <run>/checkpoints/<name>/<net>.safetensors -> <run>/config.toml
    const fs::path config = file.parent_path().parent_path().parent_path() / "config.toml";
    const std::string s = read_run_config_value(config.string(), "shortcut");
    if (s == "A" || s == "B") t.shortcut = s[0];
  } else {
    OKD_CHECK(spec.shortcut == "A" || spec.shortcut == "B", "--", prefix,
              ".teacher_shortcut must be A, B or auto, got '", spec.shortcut, "'");
    t.shortcut = spec.shortcut[0];
  }
  nn::BackboneOptions o;
  o.arch = t.arch;
  o.num_classes = ctx.num_classes;
  o.in_channels = ctx.in_channels;
  o.shortcut = t.shortcut;
  o.seed = ctx.seed;
  t.net = nn::make_backbone(o);
  try {
    t.net->load_state_dict(state);
  } catch (const std::exception& e) {
    OKD_FAIL("teacher ", t.file, " does not fit a ", t.arch, " with ", ctx.num_classes,
             " classes, ", ctx.in_channels, " input channels and shortcut ", t.shortcut, ": ",
             e.what());
  }
  t.net->eval();
  for (auto& param : t.net->parameters()) param.requires_grad_(false);
  t.net->to(ctx.device);  // loaded on the host, used beside the student
  return t;
}

const nn::BackbonePtr& teacher_for(LoadedTeacher& t, const Tensor& images) {
  if (images.dtype() != t.dtype) {
    t.net->to(images.dtype());
    for (auto& param : t.net->parameters()) param.requires_grad_(false);
    t.dtype = images.dtype();
  }
  return t.net;
}

}  // namespace okd::distill
