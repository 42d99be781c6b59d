#pragma once
// The run folder of an app (--out DIR): everything one training run leaves behind.
//   DIR/config.json             the effective configuration (Args::config()); --config reads it
//                               back, so `--config DIR/config.json` repeats the run
//   DIR/metrics.jsonl           one JSON object per logged step (nn/viz/metrics.h)
//   DIR/loss.svg                the curves of metrics.jsonl against "step", written by plot() at
//                               the end of a run and whenever the app wants (plot_run() does it
//                               for any folder, e.g. from a `plot` command while training runs)
//   DIR/checkpoint.safetensors  the latest checkpoint (nn/checkpoint.h)
//
// Create the RunDir only after the flags, the config, the data and any --resume checkpoint have
// been validated: a bad invocation must not leave a half-written folder behind.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/viz/metrics.h"

namespace cvg::app {

// Where a resumed run starts: the step of its --resume checkpoint, and that file.
struct ResumePoint {
  int64_t step = 0;
  std::string checkpoint;
};

// The ResumePoint of a run given --resume `checkpoint` (empty: a fresh run, nullopt) that
// loaded at `step`.
inline std::optional<ResumePoint> resume_point(const std::string& checkpoint, int64_t step) {
  if (checkpoint.empty()) return std::nullopt;
  return ResumePoint{step, checkpoint};
}

class RunDir {
 public:
  // Creates `dir` (and its parents) and writes config.json atomically.
  //
  // A run continued in its own folder (resume.checkpoint lies in `dir`) keeps the records of
  // metrics.jsonl up to and including resume.step and drops later ones: the steps an
  // interrupted run did after its last checkpoint are done again, and must not appear twice in
  // the curves. A run continued in another folder starts that folder's metrics.jsonl with those
  // records of the checkpoint's folder.
  //
  // Any other run (fresh, or continued elsewhere) refuses, with an Error that says how to go on,
  // a folder that holds a run's config.json, metrics.jsonl or checkpoint, unless `overwrite`
  // (the apps' --overwrite): then that run's checkpoint goes and metrics.jsonl starts anew.
  // Files the app derives from a checkpoint (evaluations, fitted regressors) are the app's to
  // tie to it (nn::checkpoint_id).
  RunDir(std::string dir, const nlohmann::json& config, std::optional<ResumePoint> resume = {},
         bool overwrite = false);

  const std::string& dir() const { return dir_; }
  std::string file(const std::string& name) const;
  std::string checkpoint_path() const { return file("checkpoint.safetensors"); }
  std::string metrics_path() const { return file("metrics.jsonl"); }
  // The flags that continue this run where its checkpoint left it, for messages:
  // "--config DIR/config.json --resume DIR/checkpoint.safetensors" (config.json names every
  // flag of the run, --out included, and no --resume: nn/app/cli.h).
  std::string resume_flags() const { return resume_flags_for(dir_); }
  static std::string resume_flags_for(const std::string& dir);

  // Appends one record (a JSON object, normally with "step") to metrics.jsonl.
  void log(const nlohmann::json& record) { metrics_.append(record); }
  // Plots `y_keys` against "step" into DIR/<name>; returns the path written.
  std::string plot(const std::vector<std::string>& y_keys = {"loss"},
                   const std::string& name = "loss.svg", bool log_y = false) const;

 private:
  std::string dir_;
  viz::MetricsLog metrics_;
};

// The plot of RunDir::plot for an existing run folder (another process may still be writing it).
std::string plot_run(const std::string& dir, const std::vector<std::string>& y_keys = {"loss"},
                     const std::string& name = "loss.svg", bool log_y = false);

}  // namespace cvg::app
