// SVG line plots: axes with "nice" ticks, one polyline per series, a legend.
#include "apps/lib/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

namespace okd::apps {

namespace {
const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else
      o += c;
  }
  return o;
}

// Tick step of 1, 2 or 5 times a power of ten giving about 5 ticks over [lo, hi].
double nice_step(double lo, double hi) {
  double raw = (hi - lo) / 5.0;
  if (raw <= 0) return 1.0;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

std::string fmt(double v) {
  std::ostringstream os;
  os << std::setprecision(4) << v;
  return os.str();
}
}  // namespace

std::string svg_line_plot(const std::vector<Panel>& panels, int w, int h) {
  std::ostringstream os;
  const int total_w = w * static_cast<int>(std::max<size_t>(panels.size(), 1));
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << total_w << "\" height=\"" << h
     << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
        "fill=\"white\"/>\n";
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& p = panels[pi];
    const double ox = static_cast<double>(pi) * w, left = ox + 55, right = ox + w - 15, top = 30,
                 bottom = h - 45;
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    for (const auto& s : p.series)
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.y[i])) continue;
        xmin = std::min(xmin, s.x[i]);
        xmax = std::max(xmax, s.x[i]);
        ymin = std::min(ymin, s.y[i]);
        ymax = std::max(ymax, s.y[i]);
      }
    if (!std::isfinite(xmin)) {
      xmin = 0;
      xmax = 1;
      ymin = 0;
      ymax = 1;
    }
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) {
      ymax += 0.5;
      ymin -= 0.5;
    }
    double ystep = nice_step(ymin, ymax);
    ymin = std::floor(ymin / ystep) * ystep;
    ymax = std::ceil(ymax / ystep) * ystep;
    auto X = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (right - left); };
    auto Y = [&](double y) { return bottom - (y - ymin) / (ymax - ymin) * (bottom - top); };
    os << "<text x=\"" << (left + right) / 2
       << "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">" << esc(p.title) << "</text>\n";
    for (double y = ymin; y <= ymax + ystep * 1e-6; y += ystep) {
      os << "<line x1=\"" << left << "\" x2=\"" << right << "\" y1=\"" << Y(y) << "\" y2=\"" << Y(y)
         << "\" stroke=\"#ddd\"/><text x=\"" << left - 5 << "\" y=\"" << Y(y) + 4
         << "\" text-anchor=\"end\">" << fmt(y) << "</text>\n";
    }
    double xstep = nice_step(xmin, xmax);
    for (double x = std::ceil(xmin / xstep) * xstep; x <= xmax + xstep * 1e-6; x += xstep)
      os << "<text x=\"" << X(x) << "\" y=\"" << bottom + 15 << "\" text-anchor=\"middle\">"
         << fmt(x) << "</text>\n";
    os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left
       << "\" height=\"" << bottom - top << "\" fill=\"none\" stroke=\"black\"/>\n";
    os << "<text x=\"" << (left + right) / 2 << "\" y=\"" << h - 8 << "\" text-anchor=\"middle\">"
       << esc(p.x_label) << "</text>\n";
    os << "<text transform=\"translate(" << ox + 14 << "," << (top + bottom) / 2
       << ") rotate(-90)\" text-anchor=\"middle\">" << esc(p.y_label) << "</text>\n";
    for (size_t si = 0; si < p.series.size(); ++si) {
      const Series& s = p.series[si];
      const char* color = kColors[si % 10];
      os << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        if (std::isfinite(s.y[i])) os << X(s.x[i]) << "," << Y(s.y[i]) << " ";
      os << "\"/>\n<text x=\"" << left + 8 << "\" y=\"" << top + 14 + 13 * si << "\" fill=\""
         << color << "\">" << esc(s.name) << "</text>\n";
    }
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace okd::apps
