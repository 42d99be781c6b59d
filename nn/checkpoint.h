#pragma once
// Training checkpoints: everything needed to stop a run and continue it bit-identically, in one
// safetensors file (core/serialization.h), so Python's `safetensors` and PyTorch can read it too.
//
// Tensors in the file (every name has a prefix; the prefixes are chosen by the caller, "model"
// and "optim" for the common one-model-one-optimizer case):
//   <module>/<name>      each parameter and buffer of a module, e.g. "model/0.weight"
//   <optim>/step         int64 []  the optimizer's step count (Adam's bias correction needs it)
//   <optim>/lr           float64 [] its current learning rate
//   <optim>/<i>.<state>  its state tensors, e.g. "optim/3.exp_avg" (parameter index i)
//   train/step           int64 []  the training step the run had completed
//   rng/seed, rng/offset int64 []  the global Philox generator (core/rng.h), as the bit pattern
//                                  of the unsigned values (safetensors has no U64)
// Metadata (strings): format = "cvgrad.checkpoint.v1", app, config (the effective configuration
// as JSON text), commit (empty when unknown), step, "<optim>.num_params", plus anything the
// caller adds in CheckpointMeta::extra.
//
// Saving is atomic (temporary file, fsync, rename): a crash, or a second Ctrl-C, while writing
// leaves the previous checkpoint intact.
//
// Loading validates before it changes anything: the file itself (header, dtypes, byte ranges;
// core/serialization.h), then every tensor the given modules and optimizers expect (present,
// same dtype, same shape), that no unexpected tensor sits under their prefixes, and the scalars.
// Any problem raises cvg::Error naming the file and the tensor; the model, the optimizer and the
// generator are then left exactly as they were. Tensors under prefixes nobody asked for are
// ignored, so `eval` may load only the model from a training checkpoint.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/serialization.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace cvg::nn {

inline constexpr const char* kCheckpointFormat = "cvgrad.checkpoint.v1";

struct CheckpointMeta {
  std::string app;      // the program that wrote it, e.g. "cvg-demo"
  std::string config;   // its effective configuration, JSON text (what the run's config.json holds)
  std::string commit;   // git commit of the build, passed in by the app; empty when unknown
  MetadataMap extra;    // further string metadata; keys must not clash with the ones above
};

// The modules and optimizers a checkpoint holds, each under its own prefix. A GAN, say, passes
// {{"generator", &g}, {"discriminator", &d}} and {{"optim_g", &og}, {"optim_d", &od}}.
struct CheckpointState {
  std::vector<std::pair<std::string, Module*>> modules;
  std::vector<std::pair<std::string, Optimizer*>> optimizers;
};

// What a checkpoint says about itself.
struct CheckpointInfo {
  std::string path;
  int64_t step = 0;        // train/step
  Generator rng;           // the global generator when it was saved
  CheckpointMeta meta;     // app, config, commit; extra holds every other metadata entry
  std::vector<std::string> tensor_names;
};

// Writes `state`, the training step and the global generator to `path` atomically.
void save_checkpoint(const std::string& path, const CheckpointState& state, int64_t step,
                     const CheckpointMeta& meta = {});
// The common case: one model under "model/", an optional optimizer under "optim/".
void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     int64_t step, const CheckpointMeta& meta = {});

// Validates the file against `state`, then loads every module and optimizer and (with
// restore_rng) the global generator. Returns the checkpoint's info; info.step is the step to
// continue after.
CheckpointInfo load_checkpoint(const std::string& path, const CheckpointState& state,
                               bool restore_rng = true);
CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer,
                               bool restore_rng = true);

// Reads and validates a checkpoint's scalars and metadata without loading it into anything
// (for `show`-style commands).
CheckpointInfo read_checkpoint_info(const std::string& path);

// The identity of a checkpoint file: the CRC-32 of its bytes, 8 hex digits. Files derived from a
// checkpoint (an evaluation, a fitted regressor) record it, so that a folder trained again
// (--overwrite, or a resume that went on) shows which of them no longer fit its weights.
std::string checkpoint_id(const std::string& path);

}  // namespace cvg::nn
