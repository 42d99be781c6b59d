#pragma once
// --resume's check of a checkpoint against the invocation that continues it, made before
// anything is loaded or written: a run resumed with other flags (another --mode, --seed,
// --image-size, ...) would go on as a run nobody asked for, under a config.json that claims it
// was that run from its first step.
#include <set>
#include <string>

#include "nn/app/cli.h"
#include "nn/checkpoint.h"

namespace cvg::app {

// Flags a resumed run may change: where it runs and writes, how long it goes on.
inline const std::set<std::string> kResumeMayDiffer = {"device", "out", "steps"};

// Reads the checkpoint named by a.resume() (its metadata only) and throws UsageError unless it
// was written by `app` and with the same value of every flag of a.config() but those in
// kResumeMayDiffer and `may_differ` (the app's own run-control flags: how often it checkpoints,
// validates, ...). The message lists every flag that differs with both values. Flags the
// checkpoint's configuration does not name (added to the app after it was written) are not
// compared; a checkpoint without a configuration is checked for its app only.
nn::CheckpointInfo check_resume(const Args& a, const std::string& app,
                                const std::set<std::string>& may_differ = {});

}  // namespace cvg::app
