#include "nn/viz/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "core/serialization.h"

namespace cvg::viz {

namespace {

constexpr const char* kSeriesColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string tick_label(double v, double step) {
  char buf[32];
  const double a = std::abs(v);
  if (v == 0) return "0";
  if (a >= 1e5 || a < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    // Enough decimals to tell neighbouring ticks apart.
    const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 6);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  CVG_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo && target >= 1,
            "nice_ticks: need finite lo < hi and target >= 1, got [", lo, ", ", hi, "] and ", target);
  const double raw = (hi - lo) / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * p;
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) { step = m * p; break; }
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k += 1)
    ticks.push_back(std::abs(k * step) < 1e-12 * step ? 0.0 : k * step);
  return ticks;
}

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& o) {
  CVG_CHECK(o.width >= 200 && o.height >= 150, "svg_line_plot: size must be at least 200x150, got ",
            o.width, "x", o.height);
  for (const Series& s : series)
    CVG_CHECK(s.x.size() == s.y.size(), "svg_line_plot: series '", s.label, "' has ", s.x.size(),
              " x values but ", s.y.size(), " y values");
  auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!o.log_y || y > 0); };
  // The plotted y is log10(y) on a log axis.
  auto ty = [&](double y) { return o.log_y ? std::log10(y) : y; };

  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        x0 = std::min(x0, s.x[i]);
        x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, ty(s.y[i]));
        y1 = std::max(y1, ty(s.y[i]));
      }
  if (!std::isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 <= y0) { y0 -= 0.5; y1 += 0.5; }
  if (!o.log_y) {  // a little air above and below the curves
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad;
    y1 += pad;
  }

  const double left = 72, right = 16, top = o.title.empty() ? 16 : 36, bottom = 52;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto sy = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
      << "\" viewBox=\"0 0 " << o.width << " " << o.height << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << o.width << "\" height=\"" << o.height << "\" fill=\"white\"/>\n";
  if (!o.title.empty())
    svg << "<text x=\"" << num(left + pw / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
        << escape(o.title) << "</text>\n";

  // Ticks and grid lines.
  std::vector<std::pair<double, std::string>> yt;
  if (o.log_y) {
    const bool few = y1 - y0 < 2;
    for (double k = std::floor(y0); k <= std::ceil(y1); k += 1)
      for (double m : few ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double v = std::log10(m) + k;
        if (v >= y0 - 1e-9 && v <= y1 + 1e-9) yt.emplace_back(v, tick_label(m * std::pow(10.0, k), m * std::pow(10.0, k)));
      }
  } else {
    const std::vector<double> t = nice_ticks(y0, y1);
    const double step = t.size() > 1 ? t[1] - t[0] : 1.0;
    for (double v : t) yt.emplace_back(v, tick_label(v, step));
  }
  const std::vector<double> xt = nice_ticks(x0, x1, 6);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1.0;
  svg << "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (const auto& [v, label] : yt)
    svg << "<line x1=\"" << num(left) << "\" y1=\"" << num(sy(v)) << "\" x2=\"" << num(left + pw)
        << "\" y2=\"" << num(sy(v)) << "\"/>\n";
  for (double v : xt)
    svg << "<line x1=\"" << num(sx(v)) << "\" y1=\"" << num(top) << "\" x2=\"" << num(sx(v))
        << "\" y2=\"" << num(top + ph) << "\"/>\n";
  svg << "</g>\n<g fill=\"#333\">\n";
  for (const auto& [v, label] : yt)
    svg << "<text x=\"" << num(left - 6) << "\" y=\"" << num(sy(v) + 4) << "\" text-anchor=\"end\">"
        << escape(label) << "</text>\n";
  for (double v : xt)
    svg << "<text x=\"" << num(sx(v)) << "\" y=\"" << num(top + ph + 16) << "\" text-anchor=\"middle\">"
        << escape(tick_label(v, xstep)) << "</text>\n";
  svg << "</g>\n";
  svg << "<rect x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\"" << num(pw) << "\" height=\""
      << num(ph) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  if (!o.xlabel.empty())
    svg << "<text x=\"" << num(left + pw / 2) << "\" y=\"" << num(o.height - 12.0)
        << "\" text-anchor=\"middle\">" << escape(o.xlabel) << "</text>\n";
  if (!o.ylabel.empty())
    svg << "<text x=\"16\" y=\"" << num(top + ph / 2) << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
        << num(top + ph / 2) << ")\">" << escape(o.ylabel + (o.log_y ? " (log)" : "")) << "</text>\n";

  // Curves: one <polyline> per unbroken run of usable points.
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* color = kSeriesColors[k % 10];
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\""
            << points << "\"/>\n";
      points.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) { flush(); continue; }
      if (!points.empty()) points += ' ';
      points += num(sx(s.x[i])) + "," + num(sy(ty(s.y[i])));
    }
    flush();
  }
  // Legend in the top-right corner of the plot area.
  for (size_t k = 0; k < series.size(); ++k) {
    const double ly = top + 14 + 16 * static_cast<double>(k), lx = left + pw - 130;
    svg << "<line x1=\"" << num(lx) << "\" y1=\"" << num(ly - 4) << "\" x2=\"" << num(lx + 20) << "\" y2=\""
        << num(ly - 4) << "\" stroke=\"" << kSeriesColors[k % 10] << "\" stroke-width=\"2\"/>\n"
        << "<text x=\"" << num(lx + 26) << "\" y=\"" << num(ly) << "\">" << escape(series[k].label) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_svg_line_plot(const std::string& path, const std::vector<Series>& series,
                         const PlotOptions& options) {
  const std::string text = svg_line_plot(series, options);
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace cvg::viz
