// What the train_cifar tests share: a tiny generated CIFAR-10 directory, an in-process run of the
// app, and metrics.csv without its wall-clock column.
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/lib/trainer.h"
#include "tensor/random.h"

namespace fs = std::filesystem;

namespace okd::test {

// Writes data_batch_1..5.bin and test_batch.bin with `per_file` records each: label byte, then
// 3072 pixels whose brightness depends on the label (so a network can learn something).
inline fs::path make_tiny_cifar10(const std::string& name, int per_file) {
  fs::path dir = fs::path(OKD_BINARY_DIR) / "test_tmp" / name / "cifar-10-batches-bin";
  fs::remove_all(dir.parent_path());
  fs::create_directories(dir);
  okd::Generator gen(7);
  auto write = [&](const std::string& file) {
    std::ofstream f(dir / file, std::ios::binary);
    for (int r = 0; r < per_file; ++r) {
      const uint8_t label = static_cast<uint8_t>(gen.next_u32() % 10);
      f.put(static_cast<char>(label));
      for (int i = 0; i < 3072; ++i)
        f.put(static_cast<char>((label * 25 + gen.next_u32() % 40) & 0xff));
    }
  };
  for (int i = 1; i <= 5; ++i) write("data_batch_" + std::to_string(i) + ".bin");
  write("test_batch.bin");
  return dir.parent_path();
}

inline int run(std::vector<std::string> args) {
  args.insert(args.begin(), "train_cifar");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return okd::apps::run_train_cifar(static_cast<int>(argv.size()), argv.data());
}

// metrics.csv without the wall-clock column, which legitimately differs between runs.
inline std::string metrics_without_seconds(const fs::path& run) {
  std::ifstream f(run / "metrics.csv");
  std::string line, out;
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::string field;
    int col = 0;
    while (std::getline(ss, field, ',')) {
      if (col++ != 8) out += field + ",";
    }
    out += "\n";
  }
  return out;
}

}  // namespace okd::test
