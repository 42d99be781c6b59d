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

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  const bool same = fs::equivalent(a, b, ec);
  return !ec && same;
}

// The records of `metrics` up to and including `step`, as JSON lines.
std::string records_until(const std::string& metrics, int64_t step) {
  std::string kept;
  if (!fs::exists(metrics)) return kept;
  for (const nlohmann::json& r : viz::read_metrics(metrics)) {
    auto s = r.find("step");
    if (s != r.end() && s->is_number() && s->get<double>() > static_cast<double>(step)) continue;
    kept += r.dump() + "\n";
  }
  return kept;
}

// Creates the folder and prepares metrics.jsonl before the MetricsLog member opens it.
std::string prepare(const std::string& dir, const nlohmann::json& config,
                    const std::optional<ResumePoint>& resume, bool overwrite) {
  CVG_CHECK(!dir.empty(), "the run folder name (--out) is empty");
  CVG_CHECK(config.is_object(), "RunDir: the configuration must be a JSON object");
  const fs::path from = resume ? fs::path(resume->checkpoint).parent_path() : fs::path();
  const bool in_place = resume && same_folder(from.empty() ? fs::path(".") : from, dir);
  if (!in_place && !overwrite) {
    const std::string held = earlier_run(dir);
    if (resume)
      CVG_CHECK(held.empty(), "--out ", dir, " holds another run (", held, ") than the one --resume ",
                resume->checkpoint, " continues: continue that run in its own folder (--out ",
                from.empty() ? "." : from.string(), "), give a new --out, or replace the run in ", dir,
                " with --overwrite");
    CVG_CHECK(held.empty(), "--out ", dir, " already holds a run (", held, "): continue it with ",
              RunDir::resume_flags_for(dir),
              ", start it over with --overwrite, or choose another --out");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  CVG_CHECK(!ec && fs::is_directory(dir), "cannot create the run folder '", dir, "': ",
            ec ? ec.message() : std::string("not a directory"));
  const std::string text = config.dump(2) + "\n";
  write_file_atomic((fs::path(dir) / "config.json").string(), text.data(), text.size());

  const std::string metrics = (fs::path(dir) / "metrics.jsonl").string();
  if (!in_place) {
    // Another run's checkpoint goes, so that the folder never pairs this run's config.json
    // with other weights (an interrupted start would).
    fs::remove(fs::path(dir) / "checkpoint.safetensors", ec);
    CVG_CHECK(!ec, "--out ", dir, ": cannot remove the earlier run's checkpoint: ", ec.message());
  }
  const std::string kept = !resume   ? std::string()
                           : in_place ? records_until(metrics, resume->step)
                                      : records_until((from / "metrics.jsonl").string(), resume->step);
  if (!kept.empty() || fs::exists(metrics)) write_file_atomic(metrics, kept.data(), kept.size());
  return metrics;
}

}  // namespace

RunDir::RunDir(std::string dir, const nlohmann::json& config, std::optional<ResumePoint> resume,
               bool overwrite)
    : dir_(std::move(dir)), metrics_(prepare(dir_, config, resume, overwrite)) {}

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
