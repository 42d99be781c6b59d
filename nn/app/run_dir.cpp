#include "nn/app/run_dir.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/serialization.h"
#include "nn/checkpoint.h"

namespace cvg::app {

namespace fs = std::filesystem;

namespace {

// The files of a run that a fresh run must not silently replace (RunDir::RunDir).
constexpr const char* kRunFiles[] = {"config.json", "metrics.jsonl", "checkpoint.safetensors"};

// What the folder holds of an earlier run, for the refusal's message ("" when nothing).
std::string earlier_run(const std::string& dir) {
  std::vector<std::string> found;
  for (const char* name : kRunFiles)
    if (fs::exists(fs::path(dir) / name)) found.push_back(name);
  if (found.empty()) return "";
  std::string what;
  for (size_t i = 0; i < found.size(); ++i) what += (i ? ", " : "") + found[i];
  const fs::path ckpt = fs::path(dir) / "checkpoint.safetensors";
  if (fs::exists(ckpt)) {
    try {
      what += "; its checkpoint is at step " +
              std::to_string(nn::read_checkpoint_info(ckpt.string()).step);
    } catch (const std::exception&) {
      what += "; its checkpoint is unreadable";
    }
  }
  return what;
}

// Creates the folder and prepares metrics.jsonl before the MetricsLog member opens it.
std::string prepare(const std::string& dir, const nlohmann::json& config,
                    std::optional<int64_t> resume_step, bool overwrite) {
  CVG_CHECK(!dir.empty(), "RunDir: the run folder name is empty");
  CVG_CHECK(config.is_object(), "RunDir: the configuration must be a JSON object");
  if (!resume_step && !overwrite) {
    const std::string held = earlier_run(dir);
    CVG_CHECK(held.empty(), "--out ", dir, " already holds a run (", held, "): continue it with ",
              RunDir::resume_flags_for(dir),
              ", start it over with --overwrite, or choose another --out");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  CVG_CHECK(!ec && fs::is_directory(dir), "RunDir: cannot create the run folder '", dir, "': ",
            ec ? ec.message() : std::string("not a directory"));
  const std::string text = config.dump(2) + "\n";
  write_file_atomic((fs::path(dir) / "config.json").string(), text.data(), text.size());

  const std::string metrics = (fs::path(dir) / "metrics.jsonl").string();
  if (!resume_step) {
    // Starting over: the earlier run's checkpoint goes too, so that the folder never pairs
    // this run's config.json with another run's weights (an interrupted start would).
    fs::remove(fs::path(dir) / "checkpoint.safetensors", ec);
    CVG_CHECK(!ec, "--out ", dir, ": cannot remove the earlier run's checkpoint: ", ec.message());
  }
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

RunDir::RunDir(std::string dir, const nlohmann::json& config, std::optional<int64_t> resume_step,
               bool overwrite)
    : dir_(std::move(dir)), metrics_(prepare(dir_, config, resume_step, overwrite)) {}

std::string RunDir::file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::string RunDir::resume_flags_for(const std::string& dir) {
  return "--config " + (fs::path(dir) / "config.json").string() + " --resume " +
         (fs::path(dir) / "checkpoint.safetensors").string();
}

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
