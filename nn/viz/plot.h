#pragma once
// Line plots as plain SVG text (no dependencies; any browser shows them), for training curves.
// Each series is one polyline; points with a non-finite coordinate (or y <= 0 on a log axis)
// break the line rather than distort the plot. Axes carry ticks at "nice" values (1, 2 or 5
// times a power of ten; on a log axis the powers of ten, plus 2x and 5x when the data spans less
// than two decades), tick labels, axis labels, a title and a legend.
#include <string>
#include <vector>

namespace cvg::viz {

struct Series {
  std::string label;
  std::vector<double> x, y;
};

struct PlotOptions {
  std::string title, xlabel, ylabel;
  bool log_y = false;
  int width = 640, height = 400;
};

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& options = {});
// Written atomically.
void write_svg_line_plot(const std::string& path, const std::vector<Series>& series,
                         const PlotOptions& options = {});

// Tick positions for a linear axis over [lo, hi]: multiples of a step 1, 2 or 5 x 10^k chosen to
// give about `target` ticks.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace cvg::viz
