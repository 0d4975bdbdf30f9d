// Loading a frozen, pre-trained teacher for the offline methods (kd, at): a network trained by
// okd's train_cifar, found from a run directory (<run>/checkpoints/best/<network>.safetensors,
// else .../last/), a checkpoint directory (<dir>/<network>.safetensors) or a .safetensors file.
// The architecture comes from the checkpoint's metadata ("arch") unless given; the ResNet
// shortcut from the run's config.toml. The teacher is put in eval mode with no gradient.
#pragma once
#include <string>

#include "distill/method.h"
#include "nn/models/backbone.h"

namespace okd::distill {

struct TeacherSpec {
  std::string path;               // run dir, checkpoint dir or .safetensors file
  std::string arch = "auto";      // auto: the checkpoint metadata's "arch"
  std::string network = "net";    // which network of the teacher's run (baseline: "net")
  std::string shortcut = "auto";  // auto: the teacher run's config.toml, else --shortcut
};

struct LoadedTeacher {
  nn::BackbonePtr net;
  std::string file, arch;  // what was loaded
  char shortcut = 'B';
  DType dtype = DType::Float32;  // of its weights (teacher_for converts them)
};

// Throws with the flag to pass when the path is empty or holds no checkpoint.
LoadedTeacher load_teacher(const BuildContext& ctx, const TeacherSpec& spec,
                           const std::string& option_prefix);

// The teacher's weights in the dtype of the images it is given: the teacher is not among the
// method's networks(), so a run that converts those (a float64 check) converts it here, once.
const nn::BackbonePtr& teacher_for(LoadedTeacher& t, const Tensor& images);

}  // namespace okd::distill
