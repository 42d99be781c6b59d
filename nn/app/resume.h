#pragma once
// --resume's check of a checkpoint against the invocation that continues it, made before
// anything is loaded or written: a run resumed with other flags (another --mode, --seed,
// --image-size, ...) would go on as a run nobody asked for, under a config.json that claims it
// was that run from its first step.
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "nn/app/cli.h"
#include "nn/checkpoint.h"

namespace cvg::app {

// Flags a resumed run may change: where it runs and writes. An app whose schedules do not
// depend on --steps passes "steps" in may_differ, so a run can be extended; where the learning
// rate (or DANN's lambda) is a function of step / steps, another --steps would change the
// schedule in the middle of the run.
inline const std::set<std::string> kResumeMayDiffer = {"device", "out"};

// Reads the checkpoint named by a.resume() (its metadata only) and throws UsageError unless it
// was written by `app` and with the same value of every flag of a.config() but those in
// kResumeMayDiffer and `may_differ` (the app's own run-control flags: how often it checkpoints,
// validates, ...). The message lists every flag that differs with both values. Flags the
// checkpoint's configuration does not name (added to the app after it was written) are not
// compared; a checkpoint without a configuration is checked for its app only.
nn::CheckpointInfo check_resume(const Args& a, const std::string& app,
                                const std::set<std::string>& may_differ = {});

// The value of flag `key` in the configuration the checkpoint stored (nullopt when it stored
// none, or not that flag).
std::optional<nlohmann::json> saved_flag(const nn::CheckpointInfo& info, const std::string& key);

}  // namespace cvg::app
