// train_cifar's engine: builds the method, data, optimizer and schedule from a TrainConfig, runs
// the epochs with progress, evaluation of every member, metrics.csv, checkpoints (atomic, last and
// best), resume, NaN detection, Ctrl-C handling, summary.json and the learning-curve SVG.
// apps/train_cifar.cpp is a thin main() around run_train_cifar, so the tests drive it directly.
#pragma once

namespace okd::apps {

// Runs train_cifar with command-line arguments; returns the process exit code.
int run_train_cifar(int argc, const char* const* argv);

}  // namespace okd::apps
