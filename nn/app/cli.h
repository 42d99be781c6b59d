#pragma once
// Command-line conventions shared by every app, so that each app's main.cpp only declares its
// flags and writes its training loop.
//
//   cvg-foo [COMMAND] [--flag value | --flag=value | --bool-flag | --no-bool-flag]... [--help]
//
// - Subcommands (train, eval, show, ...); the first argument names one, unless it starts with
//   '-' and the app has a default command.
// - Every command has the common flags:
//     --config FILE.json  a JSON object of flag values ({"lr": 0.01, "batch_size": 64}); '_' and
//                         '-' are the same in its keys. Precedence: defaults < config < flags.
//     --device cpu|cuda   default cuda when a GPU is present (cuda_available()), else cpu
//     --seed N            seed of the global generator (data order, initial weights, noise)
//     --out DIR           the run folder (config.json, metrics.jsonl, plots, checkpoints)
//   and a command marked resumable() (the one that trains) also has
//     --resume FILE       a checkpoint to continue from
//     --overwrite         a fresh run may replace the run in --out (nn/app/run_dir.h)
// - `--help` (anywhere; also `COMMAND --help`) prints every flag with its type, default and help.
// - Anything wrong (unknown command or flag, missing or malformed value, out of range, a bad
//   config file) is a UsageError: run_main prints one line on stderr and returns 2 before the
//   app's body runs, so nothing has been written. cvg::Errors thrown by the body (bad data, a
//   corrupt checkpoint) are likewise one line and exit code 2; an app validates its inputs
//   before it creates its run folder (nn/app/run_dir.h).
//
// Example:
//   app::Cli cli("cvg-foo", "Trains foo.");
//   cli.set_default_command("train");
//   cli.command("train", "Train the model")
//       .flag_int("steps", 1000, "optimizer steps").at_least(1)
//       .flag_number("lr", 1e-3, "learning rate").above(0);
//   return app::run_main(cli, argc, argv, [](const app::Args& a) { ... return 0; });
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"

namespace cvg::app {

// A bad invocation: unknown flag, malformed value, unreadable config. Exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

enum class FlagType { boolean, integer, number, string };
const char* flag_type_name(FlagType t);

struct FlagSpec {
  std::string name;          // without the dashes: "lr", "batch-size"
  FlagType type = FlagType::string;
  nlohmann::json default_value;
  std::string help;
  std::string default_note;  // printed instead of the default when set
  std::string metavar;       // the value's placeholder in --help ("N", "X", "DIR", ...)
  std::optional<double> min, max;  // numbers: inclusive bounds
  bool min_exclusive = false;      // above(x): strictly greater than x
  std::vector<std::string> choices;  // strings: the allowed values
};

class Command {
 public:
  Command(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  Command& flag_bool(const std::string& name, bool def, const std::string& help);
  Command& flag_int(const std::string& name, int64_t def, const std::string& help);
  Command& flag_number(const std::string& name, double def, const std::string& help);
  Command& flag_string(const std::string& name, const std::string& def, const std::string& help);
  // Constraints on the flag declared last (checked whether the value came from a flag, a
  // config file or the default).
  Command& at_least(double lo);
  Command& at_most(double hi);
  Command& above(double lo);
  Command& one_of(std::vector<std::string> choices);
  Command& metavar(const std::string& placeholder);
  // Marks a command whose loop polls app::interrupted() (nn/app/interrupt.h): run_main then
  // turns Ctrl-C into a request to stop after the current step. Other commands keep the
  // default action (Ctrl-C ends them at once): they would never look at the flag.
  // Marks the command that trains a run: it gets --resume and --overwrite (a command that
  // cannot continue a checkpoint should not accept one and ignore it).
  Command& resumable();
  Command& stops_on_interrupt() {
    stops_on_interrupt_ = true;
    return *this;
  }
  bool stops_on_interrupt_enabled() const { return stops_on_interrupt_; }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<FlagSpec>& flags() const { return flags_; }
  std::vector<FlagSpec>& mutable_flags() { return flags_; }

 private:
  Command& add(FlagSpec spec);
  FlagSpec& last(const char* what);
  std::string name_, help_;
  std::vector<FlagSpec> flags_;
  bool stops_on_interrupt_ = false;
};

// The parsed invocation: the command and the value of every flag it has.
class Args {
 public:
  bool help_requested() const { return help_; }
  const std::string& help_text() const { return help_text_; }
  const std::string& command() const { return command_; }
  // Whether the command was marked stops_on_interrupt().
  bool stops_on_interrupt() const { return stops_on_interrupt_; }

  bool get_bool(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_number(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  // Whether the value came from the command line or the config file (not the default).
  bool is_set(const std::string& name) const { return set_.count(name) != 0; }

  Device device() const;
  uint64_t seed() const { return static_cast<uint64_t>(get_int("seed")); }
  const std::string& out() const { return get_string("out"); }
  // --resume's value; empty for a command that is not resumable().
  const std::string& resume() const;
  // --overwrite's value; false for a command that is not resumable().
  bool overwrite() const;

  // The effective configuration: every flag of the command except --config, --resume and
  // --overwrite, as a JSON object that --config accepts back (repeating the run, not resuming
  // it). Apps write it to their run folder and into checkpoints.
  nlohmann::json config() const;

 private:
  friend class Cli;
  const nlohmann::json& value(const std::string& name, FlagType type) const;
  bool help_ = false, stops_on_interrupt_ = false;
  std::string help_text_, command_;
  nlohmann::json values_ = nlohmann::json::object();
  std::vector<FlagSpec> specs_;
  std::set<std::string> set_;
};

class Cli {
 public:
  Cli(std::string program, std::string description);
  // Adds a command (with the common flags); the reference stays valid while the Cli lives.
  Command& command(const std::string& name, const std::string& help);
  // The command run when the first argument is a flag or there is none.
  void set_default_command(const std::string& name) { default_command_ = name; }
  // Defaults of the common flags --seed and --out (apps choose their own run folder).
  void set_default_seed(uint64_t seed);
  void set_default_out(const std::string& dir);

  // Parses the arguments after the program name. Throws UsageError; on --help returns Args with
  // help_requested() and help_text() set.
  Args parse(const std::vector<std::string>& args) const;
  Args parse(int argc, char** argv) const;

  // The usage of one command, or of the whole program (every command with all its flags).
  std::string help(const std::string& command = "") const;
  const std::string& program() const { return program_; }

 private:
  const Command* find(const std::string& name) const;
  std::vector<FlagSpec> all_flags(const Command& c) const;
  void read_config(const std::string& path, const std::vector<FlagSpec>& flags, Args& a) const;
  std::string program_, description_, default_command_;
  std::vector<std::unique_ptr<Command>> commands_;
  std::vector<FlagSpec> common_;
};

// The standard main(): parses, prints help to `out` (returns 0) or a usage error as one line on
// `err` (returns 2), then runs `body`, with SIGINT/SIGTERM caught (nn/app/interrupt.h) for a
// command marked stops_on_interrupt(). A
// cvg::Error or std::filesystem::filesystem_error escaping `body` is one line on `err` (prefixed
// with the program's name unless it starts with it) and exit code 2; any other exception is one
// line and exit code 1. Returns body's result otherwise.
int run_main(const Cli& cli, int argc, char** argv, const std::function<int(const Args&)>& body,
             std::ostream& out, std::ostream& err);
int run_main(const Cli& cli, int argc, char** argv, const std::function<int(const Args&)>& body);

// The exit code of a training run that ended with `last_loss`: 0, or 1 with a line on `err` when
// the loss is not finite (the run diverged: its checkpoint holds unusable weights).
int training_exit_code(double last_loss, const std::string& program, std::ostream& err);
int training_exit_code(double last_loss, const std::string& program);

}  // namespace cvg::app
