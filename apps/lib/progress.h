// Progress reporting for long loops: a one-line bar redrawn in place on a terminal, or a plain
// line every few seconds when the output is a file or a pipe (CI logs stay readable).
#pragma once
#include <chrono>
#include <string>

namespace okd::apps {

class Progress {
 public:
  // total: number of steps; label: printed before the bar (e.g. "epoch 3/15").
  Progress(std::string label, int64_t total, double plain_interval_seconds = 10.0);
  // Reports that `done` steps are finished; extra is shown after the bar ("loss 0.53 acc 81.2%").
  void update(int64_t done, int64_t items_done, const std::string& extra);
  // Clears the bar (terminal) so the next line starts clean.
  void finish();
  double elapsed_seconds() const;
  static bool stdout_is_terminal();

 private:
  std::string label_;
  int64_t total_;
  double interval_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// "1h02m", "3m07s", "12s"
std::string format_duration(double seconds);

}  // namespace okd::apps
