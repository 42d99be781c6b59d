// Output for people: PNG pixels, grids, overlays (points, crosses, lines, matches), the viridis
// colour map and heatmaps, SVG line plots (well-formed XML with the expected polyline points),
// and metrics as JSON lines.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "nn/io/image.h"
#include "nn/viz/colormap.h"
#include "nn/viz/draw.h"
#include "nn/viz/metrics.h"
#include "nn/viz/plot.h"
#include "nn/viz/png.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using namespace cvg::viz;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

template <typename T>
Tensor vec(const std::vector<T>& v, const Shape& shape) {
  return from_vector<T>(v, shape, TensorOptions{}.with_dtype(dtype_of<T>()));
}

// RGB of pixel (x, y) of a uint8 [H, W, 3] canvas.
Color at(const Tensor& canvas, int64_t x, int64_t y) {
  const uint8_t* p = canvas.data<uint8_t>() + (y * canvas.size(1) + x) * 3;
  return {p[0], p[1], p[2]};
}

Tensor black(int64_t h, int64_t w) { return zeros({h, w, 3}, TensorOptions{}.with_dtype(DType::uint8)); }

// The set of coloured (non-black) pixels as "x,y" strings.
std::set<std::string> lit(const Tensor& canvas) {
  std::set<std::string> out;
  for (int64_t y = 0; y < canvas.size(0); ++y)
    for (int64_t x = 0; x < canvas.size(1); ++x)
      if (!(at(canvas, x, y) == kBlack)) out.insert(std::to_string(x) + "," + std::to_string(y));
  return out;
}

// A small XML well-formedness check: every element closed in order, attributes quoted, no
// stray '<' or '&' in text, exactly one root.
bool well_formed(const std::string& s, std::string* why) {
  std::vector<std::string> stack;
  int roots = 0;
  size_t i = 0;
  auto bad = [&](const std::string& w) { *why = w + " at " + std::to_string(i); return false; };
  while (i < s.size()) {
    if (s[i] == '<') {
      const size_t end = s.find('>', i);
      if (end == std::string::npos) return bad("unclosed tag");
      std::string tag = s.substr(i + 1, end - i - 1);
      if (tag.front() == '?') { i = end + 1; continue; }
      if (tag.find('<') != std::string::npos) return bad("'<' inside a tag");
      size_t quotes = 0;
      for (char c : tag) quotes += c == '"';
      if (quotes % 2) return bad("unbalanced quotes");
      if (tag.front() == '/') {
        if (stack.empty() || stack.back() != tag.substr(1)) return bad("mismatched </" + tag.substr(1) + ">");
        stack.pop_back();
      } else {
        const bool self = tag.back() == '/';
        const std::string name = tag.substr(0, tag.find_first_of(" /"));
        if (stack.empty()) ++roots;
        if (!self) stack.push_back(name);
      }
      i = end + 1;
    } else {
      if (s[i] == '&') {
        const size_t semi = s.find(';', i);
        const std::string ent = s.substr(i, semi - i + 1);
        if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
          return bad("bad entity " + ent);
      }
      ++i;
    }
  }
  if (!stack.empty()) return bad("unclosed <" + stack.back() + ">");
  if (roots != 1) return bad("expected one root element");
  return true;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

std::string fmt2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

TEST_CASE("PNG writing keeps pixel values", "[viz][png]") {
  TempDir dir;
  const std::vector<uint8_t> px = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 255};
  write_png(dir.file("u8.png"), vec<uint8_t>(px, {2, 2, 3}));
  CHECK(io::read_image(dir.file("u8.png")).to_vector<uint8_t>() == px);

  // Float CHW in [0, 1]: rounded to the nearest level, clamped.
  const Tensor f = tensor({0.0, 0.5, 1.0, 2.0, -1.0, 0.2}, {1, 2, 3});
  write_png(dir.file("f.png"), f);
  const Tensor back = io::read_image(dir.file("f.png"));
  CHECK(back.shape() == Shape{2, 3, 1});
  CHECK(back.to_vector<uint8_t>() == std::vector<uint8_t>{0, 128, 255, 255, 0, 51});

  // Non-contiguous views are written as their logical content.
  const Tensor wide = vec<uint8_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor col = make_view(wide, {2, 1}, {3, 1}, 1);  // column 1: 2, 5
  write_png(dir.file("v.png"), col);
  CHECK(io::read_image(dir.file("v.png")).to_vector<uint8_t>() == std::vector<uint8_t>{2, 5});

  REQUIRE_THROWS_WITH(encode_png(zeros({2, 2, 2}, TensorOptions{}.with_dtype(DType::uint8))), Contains("1, 3 or 4 channels"));
  REQUIRE_THROWS_WITH(encode_png(zeros({2, 2}, TensorOptions{}.with_dtype(DType::int32))), Contains("int32"));
  REQUIRE_THROWS_WITH(encode_png(zeros({1, 0, 3})), Contains("empty"));
  REQUIRE_THROWS_WITH(write_png(dir.file("no/such/dir/x.png"), zeros({1, 1})), Contains("x.png"));
}

TEST_CASE("make_grid tiles images with padding", "[viz][grid]") {
  const Tensor red = tensor({1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}, {3, 2, 2});
  const Tensor gray = tensor({0.2, 0.2, 0.2, 0.2}, {1, 2, 2});
  const Tensor g = make_grid(TensorList{red, gray, red}, 2, 1, kBlack);
  // 2 rows x 2 columns of 2x2 cells with 1 pixel around and between: 7 x 7.
  CHECK(g.shape() == Shape{7, 7, 3});
  CHECK(at(g, 0, 0) == kBlack);
  CHECK(at(g, 1, 1) == Color{255, 0, 0});
  CHECK(at(g, 2, 2) == Color{255, 0, 0});
  CHECK(at(g, 3, 1) == kBlack);  // padding between columns
  CHECK(at(g, 4, 1) == Color{51, 51, 51});
  CHECK(at(g, 1, 4) == Color{255, 0, 0});
  CHECK(at(g, 4, 4) == kBlack);  // the empty fourth cell

  // From a batch [N, C, H, W], columns chosen as ceil(sqrt(N)), white background by default.
  const Tensor b = make_grid(zeros({5, 1, 3, 4}));
  CHECK(b.shape() == Shape{2 * 3 + 3 * 2, 3 * 4 + 4 * 2, 3});
  CHECK(at(b, 0, 0) == kWhite);
  CHECK(at(b, 2, 2) == kBlack);
  // Cells take the largest size; smaller images sit top-left.
  const Tensor mixed = make_grid(TensorList{zeros({1, 1, 1}), zeros({1, 2, 3})}, 2, 0, kWhite);
  CHECK(mixed.shape() == Shape{2, 6, 3});
  CHECK(at(mixed, 0, 0) == kBlack);
  CHECK(at(mixed, 1, 0) == kWhite);
  CHECK(at(mixed, 5, 1) == kBlack);
  REQUIRE_THROWS_WITH(make_grid(TensorList{}), Contains("no images"));
}

TEST_CASE("points, crosses, lines and boxes", "[viz][draw]") {
  Tensor c = black(5, 5);
  draw_point(c, 2, 2, kRed, 1);
  CHECK(lit(c) == std::set<std::string>{"2,1", "1,2", "2,2", "3,2", "2,3"});
  CHECK(at(c, 2, 2) == kRed);

  c = black(5, 5);
  draw_cross(c, 2.4, 1.6, kGreen, 1);  // rounds to (2, 2)
  CHECK(lit(c) == std::set<std::string>{"2,1", "1,2", "2,2", "3,2", "2,3"});

  c = black(5, 5);
  draw_line(c, 0, 2, 4, 2, kBlue);
  CHECK(lit(c) == std::set<std::string>{"0,2", "1,2", "2,2", "3,2", "4,2"});
  c = black(5, 5);
  draw_line(c, 4, 4, 0, 0, kBlue);
  CHECK(lit(c) == std::set<std::string>{"0,0", "1,1", "2,2", "3,3", "4,4"});
  c = black(5, 5);
  draw_line(c, 0, 0, 4, 2, kBlue);  // Bresenham: one pixel per column
  CHECK(lit(c).size() == 5);
  CHECK(lit(c).count("0,0"));
  CHECK(lit(c).count("4,2"));
  // Clipped, never out of bounds.
  c = black(5, 5);
  draw_line(c, -100, -100, 1e9, 1e9, kWhite);
  CHECK(lit(c) == std::set<std::string>{"0,0", "1,1", "2,2", "3,3", "4,4"});
  draw_point(c, -50, 3, kRed, 3);
  draw_line(c, NAN, 0, 1, 1, kRed);
  CHECK(lit(c).size() == 5);
  // Clipping keeps the direction: a far endpoint on the line y = x / 2.
  c = black(5, 5);
  draw_line(c, 0, 0, 2e9, 1e9, kWhite);
  CHECK(lit(c).count("4,2"));
  CHECK_FALSE(lit(c).count("4,4"));

  c = black(4, 5);
  draw_box(c, 1, 1, 3, 2, kYellow);
  CHECK(lit(c) == std::set<std::string>{"1,1", "2,1", "3,1", "1,2", "2,2", "3,2"});

  c = black(4, 4);
  draw_points(c, tensor({0, 0, 3, 3}, {2, 2}), kRed, 0);
  CHECK(lit(c) == std::set<std::string>{"0,0", "3,3"});
  REQUIRE_THROWS_WITH(draw_points(c, zeros({3}), kRed), Contains("[N, 2]"));
  REQUIRE_THROWS_WITH(draw_line(zeros({4, 4}), 0, 0, 1, 1, kRed), Contains("uint8 [H, W, 3]"));
}

TEST_CASE("side_by_side and draw_matches", "[viz][draw]") {
  const Tensor a = to_rgb(tensor({1, 1, 1, 1}, {1, 2, 2}));  // 2x2 white
  const Tensor b = to_rgb(zeros({1, 3, 1}));                    // 3x1 black
  const Tensor s = side_by_side(a, b, 1);
  CHECK(s.shape() == Shape{3, 4, 3});
  CHECK(at(s, 0, 0) == kWhite);
  CHECK(at(s, 2, 0) == kWhite);  // gap
  CHECK(at(s, 3, 0) == kBlack);  // b
  CHECK(at(s, 3, 2) == kBlack);
  CHECK(at(s, 0, 2) == kWhite);  // a padded below with white

  const Tensor ia = black(5, 5), ib = black(5, 5);
  const Color c{9, 99, 199};
  const Tensor m = draw_matches(ia, ib, tensor({0, 2}, {1, 2}), tensor({4, 2}, {1, 2}), 2, &c);
  CHECK(m.shape() == Shape{5, 12, 3});
  // A horizontal match line at y = 2 from x = 0 to 4 + 5 + 2 = 11, through the white gap.
  for (int64_t x = 0; x < 12; ++x) CHECK(at(m, x, 2) == c);
  CHECK(at(m, 0, 1) == c);   // cross arm at the a end
  CHECK(at(m, 11, 3) == c);  // cross arm at the b end
  CHECK(at(m, 3, 0) == kBlack);
  // Default colours cycle through the palette.
  const Tensor m2 = draw_matches(ia, ib, tensor({0, 0, 0, 4}, {2, 2}), tensor({0, 0, 0, 4}, {2, 2}), 0);
  CHECK(at(m2, 0, 0) == palette(0));
  CHECK(at(m2, 0, 4) == palette(1));
  REQUIRE_THROWS_WITH(draw_matches(ia, ib, zeros({2, 2}), zeros({1, 2})), Contains("2 points in a but 1 in b"));
}

TEST_CASE("viridis colour map and heatmaps", "[viz][colormap]") {
  CHECK(viridis(0.0) == Color{68, 1, 84});
  CHECK(viridis(0.5) == Color{33, 145, 140});
  CHECK(viridis(1.0) == Color{253, 231, 37});
  CHECK(viridis(-3.0) == viridis(0.0));
  CHECK(viridis(7.0) == viridis(1.0));
  CHECK(viridis(0.05) == Color{70, 19, 101});  // halfway between the first two stops (rounded)
  CHECK(viridis(std::nan("")) == Color{128, 128, 128});
  // Perceptual map: luminance increases monotonically.
  double prev = -1;
  for (int i = 0; i <= 100; ++i) {
    const Color c = viridis(i / 100.0);
    const double lum = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
    CHECK(lum > prev);
    prev = lum;
  }

  const Tensor v = tensor({0.0, 1.0, 2.0, std::nan("")}, {2, 2});
  const Tensor h = heatmap(v);
  CHECK(h.shape() == Shape{2, 2, 3});
  CHECK(at(h, 0, 0) == viridis(0.0));
  CHECK(at(h, 1, 0) == viridis(0.5));
  CHECK(at(h, 0, 1) == viridis(1.0));
  CHECK(at(h, 1, 1) == Color{128, 128, 128});
  const Tensor hr = heatmap(v, 0.0, 4.0);
  CHECK(at(hr, 0, 1) == viridis(0.5));
  CHECK(at(heatmap(full({1, 1}, 3.0)), 0, 0) == viridis(0.5));  // constant field
  CHECK(at(heatmap(vec<int32_t>({0, 10}, {1, 2})), 1, 0) == viridis(1.0));
  REQUIRE_THROWS_WITH(heatmap(zeros({2})), Contains("[H, W]"));

  const Tensor mix = blend(black(1, 1), to_rgb(tensor({1.0}, {1, 1})), 0.5);
  CHECK(at(mix, 0, 0) == Color{128, 128, 128});
  REQUIRE_THROWS_WITH(blend(black(1, 1), black(2, 1), 0.5), Contains("overlay"));
}

TEST_CASE("nice_ticks", "[viz][plot]") {
  const std::vector<double> t = nice_ticks(0, 1);
  REQUIRE(t.size() == 6);
  for (size_t i = 0; i < t.size(); ++i) CHECK(t[i] == Approx(0.2 * i).margin(1e-12));
  CHECK(nice_ticks(-3, 17) == std::vector<double>{0, 5, 10, 15});
  CHECK(nice_ticks(0, 1000, 4) == std::vector<double>{0, 500, 1000});  // 250 rounds up to 500
  REQUIRE_THROWS(nice_ticks(1, 1));
}

TEST_CASE("SVG line plot is well-formed and holds the expected points", "[viz][plot]") {
  Series up{"train <loss> & more", {0, 1, 2}, {0, 1, 2}};
  Series down{"val", {0, 1, 2}, {2, NAN, 0}};  // NaN breaks the line
  PlotOptions o;
  o.xlabel = "step";
  o.ylabel = "loss";
  const std::string svg = svg_line_plot({up, down}, o);
  std::string why;
  CHECK(well_formed(svg, &why));
  INFO(why);
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("train &lt;loss&gt; &amp; more") != std::string::npos);
  CHECK(count(svg, "<polyline") == 3);  // one for `up`, two single points for `down`
  // Hand-computed layout: plot area x in [72, 624], y in [16, 348]; y range [0, 2] padded by
  // 5% to [-0.1, 2.1].
  auto sx = [](double x) { return fmt2(72 + x / 2 * 552); };
  auto sy = [](double y) { return fmt2(16 + (1 - (y + 0.1) / 2.2) * 332); };
  const std::string pts = sx(0) + "," + sy(0) + " " + sx(1) + "," + sy(1) + " " + sx(2) + "," + sy(2);
  CHECK(svg.find("points=\"" + pts + "\"") != std::string::npos);
  CHECK(svg.find("points=\"" + sx(0) + "," + sy(2) + "\"") != std::string::npos);
  CHECK(svg.find(">step</text>") != std::string::npos);
  CHECK(svg.find(">loss</text>") != std::string::npos);
  CHECK(svg.find(">1.0</text>") != std::string::npos);  // a y tick label

  // Log axis: decades evenly spaced, ticks at powers of ten, y <= 0 dropped.
  PlotOptions lg;
  lg.log_y = true;
  lg.title = "log";
  const std::string ls = svg_line_plot({{"l", {0, 1, 2, 3, 4}, {1, 10, 100, 1000, 0}}}, lg);
  CHECK(well_formed(ls, &why));
  INFO(why);
  const double top = 36, ph = 400 - 36 - 52;
  auto ly = [&](double e) { return fmt2(top + (1 - e / 3) * ph); };
  auto lx = [](double x) { return fmt2(72 + x / 3 * 552); };  // x = 4 has y = 0: dropped
  CHECK(ls.find("points=\"" + lx(0) + "," + ly(0) + " " + lx(1) + "," + ly(1) + " " + lx(2) + "," + ly(2) +
                " " + lx(3) + "," + ly(3) + "\"") != std::string::npos);
  for (const char* tick : {">1</text>", ">10</text>", ">100</text>", ">1000</text>"})
    CHECK(ls.find(tick) != std::string::npos);
  CHECK(ls.find(">log</text>") != std::string::npos);

  // Degenerate input still gives a valid picture.
  CHECK(well_formed(svg_line_plot({}), &why));
  CHECK(well_formed(svg_line_plot({{"flat", {1}, {5}}}), &why));
  REQUIRE_THROWS_WITH(svg_line_plot({{"bad", {1, 2}, {1}}}), Contains("'bad'"));
}

TEST_CASE("metrics as JSON lines and their plot", "[viz][metrics]") {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    MetricsLog log(path);
    log.append({{"step", 1}, {"loss", 2.5}});
    log.append({{"step", 2}, {"loss", 1.5}, {"acc", 0.5}});
  }
  MetricsLog again(path);  // appends, keeping what is there
  again.append({{"step", 3}, {"loss", std::nan("")}, {"acc", 0.75}});
  std::ifstream in(path);
  std::string l1, l2, l3, l4;
  std::getline(in, l1);
  std::getline(in, l2);
  std::getline(in, l3);
  CHECK(l1 == R"({"loss":2.5,"step":1})");
  CHECK(l3 == R"({"acc":0.75,"loss":null,"step":3})");
  CHECK_FALSE(std::getline(in, l4));

  const auto records = read_metrics(path);
  REQUIRE(records.size() == 3);
  const auto series = metric_series(records, "step", {"loss", "acc"});
  CHECK(series[0].x == std::vector<double>{1, 2, 3});
  CHECK(series[0].y[1] == 1.5);
  CHECK(std::isnan(series[0].y[2]));
  CHECK(series[1].x == std::vector<double>{2, 3});

  plot_metrics(path, dir.file("curves.svg"), "step", {"loss", "acc"});
  std::stringstream svg;
  svg << std::ifstream(dir.file("curves.svg")).rdbuf();
  std::string why;
  CHECK(well_formed(svg.str(), &why));
  CHECK(count(svg.str(), "<polyline") == 2);
  CHECK(svg.str().find(">step</text>") != std::string::npos);

  REQUIRE_THROWS_WITH(again.append(nlohmann::json::array({1, 2})), Contains("JSON object"));
  std::ofstream(path, std::ios::app) << "{\"step\": 4,\n";
  REQUIRE_THROWS_WITH(read_metrics(path), Contains("metrics.jsonl") && Contains("line 4"));
  REQUIRE_THROWS_WITH(MetricsLog(dir.file("no/dir/m.jsonl")), Contains("m.jsonl"));
}
