#include "nn/app/resume.h"

#include <nlohmann/json.hpp>

namespace cvg::app {

nn::CheckpointInfo check_resume(const Args& a, const std::string& app,
                                const std::set<std::string>& may_differ) {
  const std::string& path = a.resume();
  nn::CheckpointInfo info;
  try {
    info = nn::read_checkpoint_info(path);
  } catch (const Error& e) {
    throw UsageError(std::string("--resume: ") + e.what());
  }
  if (info.meta.app != app)
    throw UsageError("--resume: " + path + " was written by " +
                     (info.meta.app.empty() ? std::string("an unnamed program") : info.meta.app) +
                     ", not " + app);
  if (info.meta.config.empty()) return info;
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(info.meta.config);
  } catch (const nlohmann::json::exception&) {
    throw UsageError("--resume: " + path + " holds a configuration that is not valid JSON");
  }
  std::string diffs;
  bool steps_differ = false;
  const nlohmann::json config = a.config();
  for (const auto& [key, now] : config.items()) {
    if (kResumeMayDiffer.count(key) || may_differ.count(key) || !saved.contains(key)) continue;
    const nlohmann::json& then = saved.at(key);
    // Numbers compare as numbers: a config file may have written 0.5 where a flag says 5e-1.
    const bool same = then.is_number() && now.is_number()
                          ? then.get<double>() == now.get<double>()
                          : then == now;
    if (same) continue;
    diffs += (diffs.empty() ? "--" : ", --") + key + " " + then.dump() + " (now " + now.dump() + ")";
    steps_differ = steps_differ || key == "steps";
  }
  if (!diffs.empty())
    throw UsageError("--resume: " + path + " was trained with " + diffs +
                     "; resume with the run's own flags (its config.json: --config), or start a "
                     "new run" +
                     (steps_differ ? std::string(" (" + app + "'s schedules are fractions of --steps: a run goes on "
                                                 "to its own --steps)")
                                   : std::string()));
  return info;
}

std::optional<nlohmann::json> saved_flag(const nn::CheckpointInfo& info, const std::string& key) {
  if (info.meta.config.empty()) return std::nullopt;
  const nlohmann::json saved = nlohmann::json::parse(info.meta.config, nullptr, /*allow_exceptions=*/false);
  if (!saved.is_object() || !saved.contains(key)) return std::nullopt;
  return saved.at(key);
}

}  // namespace cvg::app
