#include "nn/viz/metrics.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <fstream>

#include "core/error.h"

namespace cvg::viz {

MetricsLog::MetricsLog(std::string path) : path_(std::move(path)) {
  std::FILE* f = std::fopen(path_.c_str(), "a");
  if (!f) fail("MetricsLog: cannot open '", path_, "' for appending: ", std::strerror(errno));
  std::fclose(f);
}

void MetricsLog::append(const nlohmann::json& record) {
  CVG_CHECK(record.is_object(), "MetricsLog: a record must be a JSON object, got ", record.dump());
  // NaN and infinities are not JSON; dump() writes them as null, which readers accept.
  const std::string line = record.dump() + "\n";
  std::FILE* f = std::fopen(path_.c_str(), "a");
  if (!f) fail("MetricsLog: cannot open '", path_, "' for appending: ", std::strerror(errno));
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  if (std::fclose(f) != 0 || !ok) fail("MetricsLog: cannot write to '", path_, "': ", std::strerror(errno));
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("read_metrics: cannot open '", path, "'");
  std::vector<nlohmann::json> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("read_metrics: '", path, "' line ", n, " is not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail("read_metrics: '", path, "' line ", n, " is not a JSON object");
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<Series> metric_series(const std::vector<nlohmann::json>& records, const std::string& x_key,
                                  const std::vector<std::string>& y_keys) {
  std::vector<Series> out;
  for (const std::string& key : y_keys) {
    Series s;
    s.label = key;
    for (const auto& r : records) {
      auto x = r.find(x_key), y = r.find(key);
      if (x == r.end() || y == r.end() || !x->is_number()) continue;
      // null (a NaN that was logged) breaks the line like any non-finite value.
      if (!y->is_number() && !y->is_null()) continue;
      s.x.push_back(x->get<double>());
      s.y.push_back(y->is_null() ? std::nan("") : y->get<double>());
    }
    out.push_back(std::move(s));
  }
  return out;
}

void plot_metrics(const std::string& jsonl_path, const std::string& svg_path, const std::string& x_key,
                  const std::vector<std::string>& y_keys, PlotOptions options) {
  if (options.xlabel.empty()) options.xlabel = x_key;
  write_svg_line_plot(svg_path, metric_series(read_metrics(jsonl_path), x_key, y_keys), options);
}

}  // namespace cvg::viz
