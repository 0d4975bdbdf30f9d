// A small SVG line-plot writer (no dependencies): several named series over a shared x axis,
// one or more panels side by side. train_cifar uses it for the learning curves of every member.
#pragma once
#include <string>
#include <vector>

namespace okd::apps {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

// Returns the SVG document; panels are laid out left to right.
std::string svg_line_plot(const std::vector<Panel>& panels, int panel_width = 480,
                          int height = 360);

}  // namespace okd::apps
