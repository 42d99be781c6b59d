#include "nn/app/run_dir.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/serialization.h"

namespace cvg::app {

namespace fs = std::filesystem;

namespace {

// Creates the folder and prepares metrics.jsonl before the MetricsLog member opens it.
std::string prepare(const std::string& dir, const nlohmann::json& config,
                    std::optional<int64_t> resume_step) {
  CVG_CHECK(!dir.empty(), "RunDir: the run folder name is empty");
  CVG_CHECK(config.is_object(), "RunDir: the configuration must be a JSON object");
  std::error_code ec;
  fs::create_directories(dir, ec);
  CVG_CHECK(!ec && fs::is_directory(dir), "RunDir: cannot create the run folder '", dir, "': ",
            ec ? ec.message() : std::string("not a directory"));
  const std::string text = config.dump(2) + "\n";
  write_file_atomic((fs::path(dir) / "config.json").string(), text.data(), text.size());

  const std::string metrics = (fs::path(dir) / "metrics.jsonl").string();
  if (!fs::exists(metrics)) return metrics;
  std::string kept;
  if (resume_step) {
    for (const nlohmann::json& r : viz::read_metrics(metrics)) {
      auto step = r.find("step");
      if (step != r.end() && step->is_number() && step->get<double>() > double(*resume_step)) continue;
      kept += r.dump() + "\n";
    }
  }
  write_file_atomic(metrics, kept.data(), kept.size());
  return metrics;
}

}  // namespace

RunDir::RunDir(std::string dir, const nlohmann::json& config, std::optional<int64_t> resume_step)
    : dir_(std::move(dir)), metrics_(prepare(dir_, config, resume_step)) {}

std::string RunDir::file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::string RunDir::plot(const std::vector<std::string>& y_keys, const std::string& name,
                         bool log_y) const {
  return plot_run(dir_, y_keys, name, log_y);
}

std::string plot_run(const std::string& dir, const std::vector<std::string>& y_keys,
                     const std::string& name, bool log_y) {
  const std::string svg = (fs::path(dir) / name).string();
  viz::PlotOptions o;
  o.title = fs::path(dir).filename().string();
  if (o.title.empty()) o.title = dir;
  o.xlabel = "step";
  o.log_y = log_y;
  viz::plot_metrics((fs::path(dir) / "metrics.jsonl").string(), svg, "step", y_keys, o);
  return svg;
}

}  // namespace cvg::app
