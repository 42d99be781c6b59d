#include "models/dann/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nn/viz/draw.h"
#include "nn/viz/plot.h"

namespace cvg::dann {

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

std::string hex(viz::Color c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

}  // namespace

std::string svg_scatter(const std::vector<ScatterPanel>& panels, const std::vector<std::string>& groups,
                        const std::string& title) {
  CVG_CHECK(!panels.empty(), "svg_scatter: no panels");
  const int pw = 420, ph = 400, margin = 50, top = title.empty() ? 30 : 55;
  const int width = pw * static_cast<int>(panels.size()), height = top + ph + 40;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty())
    s << "<text x=\"" << width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << escape(title)
      << "</text>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const ScatterPanel& panel = panels[p];
    CVG_CHECK(panel.xy.dim() == 2 && panel.xy.size(1) == 2 &&
                  panel.xy.size(0) == static_cast<int64_t>(panel.group.size()),
              "svg_scatter: panel '", panel.title, "' needs xy [N, 2] and N groups, got ",
              panel.xy.shape(), " and ", panel.group.size());
    const std::vector<double> v = panel.xy.contiguous().to_vector<double>();
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    for (size_t i = 0; i + 1 < v.size(); i += 2) {
      if (!std::isfinite(v[i]) || !std::isfinite(v[i + 1])) continue;
      x0 = std::min(x0, v[i]); x1 = std::max(x1, v[i]);
      y0 = std::min(y0, v[i + 1]); y1 = std::max(y1, v[i + 1]);
    }
    if (x0 > x1) { x0 = -1; x1 = 1; y0 = -1; y1 = 1; }
    if (x1 - x0 < 1e-12) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-12) { y0 -= 1; y1 += 1; }
    const int ox = static_cast<int>(p) * pw + margin, oy = top, w = pw - margin - 15, h = ph - 30;
    auto sx = [&](double x) { return ox + (x - x0) / (x1 - x0) * w; };
    auto sy = [&](double y) { return oy + h - (y - y0) / (y1 - y0) * h; };
    s << "<text x=\"" << ox + w / 2 << "\" y=\"" << oy - 8 << "\" text-anchor=\"middle\">"
      << escape(panel.title) << "</text>\n";
    s << "<rect x=\"" << ox << "\" y=\"" << oy << "\" width=\"" << w << "\" height=\"" << h
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
    for (double t : viz::nice_ticks(x0, x1, 5))
      s << "<text x=\"" << sx(t) << "\" y=\"" << oy + h + 14 << "\" text-anchor=\"middle\" font-size=\"10\">"
        << t << "</text>\n";
    for (double t : viz::nice_ticks(y0, y1, 5))
      s << "<text x=\"" << ox - 4 << "\" y=\"" << sy(t) + 3 << "\" text-anchor=\"end\" font-size=\"10\">"
        << t << "</text>\n";
    s << "<text x=\"" << ox + w / 2 << "\" y=\"" << oy + h + 28 << "\" text-anchor=\"middle\">PC 1</text>\n";
    for (size_t i = 0; i < panel.group.size(); ++i) {
      const double x = v[2 * i], y = v[2 * i + 1];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      s << "<circle cx=\"" << sx(x) << "\" cy=\"" << sy(y) << "\" r=\"2\" fill=\""
        << hex(viz::palette(panel.group[i])) << "\" fill-opacity=\"0.55\"/>\n";
    }
    for (size_t g = 0; g < groups.size(); ++g) {
      const int ly = oy + 14 + 16 * static_cast<int>(g);
      s << "<circle cx=\"" << ox + 10 << "\" cy=\"" << ly - 4 << "\" r=\"4\" fill=\""
        << hex(viz::palette(static_cast<int64_t>(g))) << "\"/><text x=\"" << ox + 18 << "\" y=\"" << ly
        << "\">" << escape(groups[g]) << "</text>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

void write_svg_scatter(const std::string& path, const std::vector<ScatterPanel>& panels,
                       const std::vector<std::string>& groups, const std::string& title) {
  const std::string text = svg_scatter(panels, groups, title);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    CVG_CHECK(f.good(), "write_svg_scatter: cannot write ", tmp);
    f << text;
    CVG_CHECK(f.good(), "write_svg_scatter: error writing ", tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace cvg::dann
