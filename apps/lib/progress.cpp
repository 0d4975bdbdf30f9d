// Terminal progress bar / periodic plain lines.
#include "apps/lib/progress.h"

#include <unistd.h>

#include <cstdio>

namespace okd::apps {

bool Progress::stdout_is_terminal() { return isatty(fileno(stdout)) != 0; }

Progress::Progress(std::string label, int64_t total, double interval)
    : label_(std::move(label)),
      total_(total),
      interval_(interval),
      tty_(stdout_is_terminal()),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string format_duration(double s) {
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

void Progress::update(int64_t done, int64_t items, const std::string& extra) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  bool last = done >= total_;
  if (tty_ ? (since < 0.2 && !last) : (since < interval_ && !last)) return;
  last_print_ = now;
  double el = elapsed_seconds();
  double rate = el > 0 ? items / el : 0;
  double eta = done > 0 ? el * (total_ - done) / done : 0;
  if (tty_) {
    const int width = 24;
    int fill = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(fill, '#');
    bar += std::string(width - fill, '.');
    std::printf("\r%s [%s] %lld/%lld %s | %.0f img/s | ETA %s   ", label_.c_str(), bar.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), extra.c_str(), rate,
                format_duration(eta).c_str());
  } else {
    std::printf("%s step %lld/%lld %s | %.0f img/s | ETA %s\n", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), extra.c_str(), rate,
                format_duration(eta).c_str());
  }
  std::fflush(stdout);
}

void Progress::finish() {
  if (tty_) {
    std::printf("\r%*s\r", 120, "");
    std::fflush(stdout);
  }
}

}  // namespace okd::apps
