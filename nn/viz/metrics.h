#pragma once
// Metrics as JSON lines: one JSON object per line, appended as training goes (a crash loses at
// most the line being written, and `tail -f`, jq or pandas.read_json(lines=True) read it live).
// plot_metrics turns such a file into an SVG line plot (nn/viz/plot.h), at the end of a run or
// on demand.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/viz/plot.h"

namespace cvg::viz {

class MetricsLog {
 public:
  // Appends to `path` (created if missing; existing lines are kept, so a resumed run continues
  // the same file).
  explicit MetricsLog(std::string path);
  // Writes `record` (a JSON object) as one line and flushes it to the file.
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Every record of a JSON-lines file; blank lines are skipped, anything else that is not a JSON
// object is an error naming the file and line.
std::vector<nlohmann::json> read_metrics(const std::string& path);

// One series per key in `y_keys`: the records that hold both `x_key` and that key as numbers.
std::vector<Series> metric_series(const std::vector<nlohmann::json>& records, const std::string& x_key,
                                  const std::vector<std::string>& y_keys);
// read_metrics + metric_series + write_svg_line_plot; xlabel defaults to x_key.
void plot_metrics(const std::string& jsonl_path, const std::string& svg_path, const std::string& x_key,
                  const std::vector<std::string>& y_keys, PlotOptions options = {});

}  // namespace cvg::viz
