#include "nn/app/cli.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "nn/app/interrupt.h"

namespace cvg::app {

namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// Error messages must stay one line, whatever the text they quote.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

bool parse_int(const std::string& s, int64_t& v) {
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, v);
  return !s.empty() && ec == std::errc() && p == e;
}

bool parse_number(const std::string& s, double& v) {
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, v);
  return !s.empty() && ec == std::errc() && p == e && std::isfinite(v);
}

std::string describe_default(const FlagSpec& f) {
  if (!f.default_note.empty()) return f.default_note;
  if (f.type == FlagType::string) {
    const std::string& s = f.default_value.get_ref<const std::string&>();
    return s.empty() ? "none" : s;
  }
  return f.default_value.dump();
}

std::string default_metavar(const FlagSpec& f) {
  if (!f.metavar.empty()) return f.metavar;
  switch (f.type) {
    case FlagType::boolean: return "";
    case FlagType::integer: return "N";
    case FlagType::number: return "X";
    case FlagType::string: return f.choices.empty() ? "STR" : join(f.choices, "|");
  }
  return "";
}

// Bounds are stored as doubles; integral ones print without a fraction ("1", not "1.0").
std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return json(v).dump();
}

std::string flag_left(const FlagSpec& f) {
  const std::string mv = default_metavar(f);
  return "--" + f.name + (mv.empty() ? "" : " " + mv);
}

// The width of the flag column, shared by all lists of one help text so they line up.
size_t flag_width(const std::vector<const std::vector<FlagSpec>*>& lists) {
  size_t width = 0;
  for (const auto* flags : lists)
    for (const FlagSpec& f : *flags) width = std::max(width, flag_left(f).size());
  return width;
}

void print_flags(std::ostream& os, const std::vector<FlagSpec>& flags, size_t width) {
  for (const FlagSpec& f : flags) {
    os << "  " << std::left << std::setw(static_cast<int>(width) + 2) << flag_left(f) << f.help;
    std::vector<std::string> notes;
    if (f.min) notes.push_back((f.min_exclusive ? "> " : ">= ") + format_number(*f.min));
    if (f.max) notes.push_back("<= " + format_number(*f.max));
    os << " (" << (notes.empty() ? "" : join(notes, ", ") + "; ") << "default: " << describe_default(f)
       << ")\n";
  }
}

// Converts a command-line string to the flag's type.
json convert_text(const FlagSpec& f, const std::string& text) {
  switch (f.type) {
    case FlagType::boolean:
      if (text == "true" || text == "1") return true;
      if (text == "false" || text == "0") return false;
      throw UsageError("--" + f.name + ": '" + text + "' is not a boolean (true or false)");
    case FlagType::integer: {
      int64_t v;
      if (!parse_int(text, v)) throw UsageError("--" + f.name + ": '" + text + "' is not an integer");
      return v;
    }
    case FlagType::number: {
      double v;
      if (!parse_number(text, v))
        throw UsageError("--" + f.name + ": '" + text + "' is not a finite number");
      return v;
    }
    case FlagType::string: return text;
  }
  return text;
}

// Converts a config-file value to the flag's type; JSON's own types must match.
json convert_json(const FlagSpec& f, const json& v, const std::string& where) {
  const std::string head = where + ": '" + f.name + "' ";
  switch (f.type) {
    case FlagType::boolean:
      if (v.is_boolean()) return v;
      break;
    case FlagType::integer:
      if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
          throw UsageError(head + "is out of the int64 range");
        return v.get<int64_t>();
      }
      break;
    case FlagType::number:
      if (v.is_number()) return v.get<double>();
      break;
    case FlagType::string:
      if (v.is_string()) return v;
      break;
  }
  throw UsageError(head + "must be " +
                   (f.type == FlagType::integer ? std::string("an ") : std::string("a ")) +
                   flag_type_name(f.type) + ", got " + one_line(v.dump()));
}

void check_constraints(const FlagSpec& f, const json& v) {
  if (f.type == FlagType::integer || f.type == FlagType::number) {
    const double x = v.get<double>();
    const std::string shown = v.dump();
    if (f.min && (f.min_exclusive ? !(x > *f.min) : !(x >= *f.min)))
      throw UsageError("--" + f.name + ": must be " + (f.min_exclusive ? "> " : ">= ") +
                       format_number(*f.min) + ", got " + shown);
    if (f.max && !(x <= *f.max))
      throw UsageError("--" + f.name + ": must be <= " + format_number(*f.max) + ", got " + shown);
  }
  if (f.type == FlagType::string && !f.choices.empty()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end())
      throw UsageError("--" + f.name + ": '" + s + "' is not one of " + join(f.choices, ", "));
  }
}

FlagSpec make_flag(const std::string& name, FlagType type, json def, const std::string& help,
                   const std::string& metavar = "") {
  FlagSpec f;
  f.name = name;
  f.type = type;
  f.default_value = std::move(def);
  f.help = help;
  f.metavar = metavar;
  return f;
}

const FlagSpec* find_flag(const std::vector<FlagSpec>& flags, const std::string& name) {
  for (const FlagSpec& f : flags)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

const char* flag_type_name(FlagType t) {
  switch (t) {
    case FlagType::boolean: return "boolean";
    case FlagType::integer: return "integer";
    case FlagType::number: return "number";
    case FlagType::string: return "string";
  }
  return "?";
}

// ---- Command ----------------------------------------------------------------------------------

Command& Command::add(FlagSpec spec) {
  CVG_CHECK(!spec.name.empty() && spec.name[0] != '-' &&
                spec.name.find_first_of("=_ ") == std::string::npos,
            "Command '", name_, "': bad flag name '", spec.name,
            "' (no leading dashes, no '=', '_' or spaces)");
  CVG_CHECK(!find_flag(flags_, spec.name), "Command '", name_, "': flag --", spec.name,
            " declared twice");
  flags_.push_back(std::move(spec));
  return *this;
}

Command& Command::flag_bool(const std::string& name, bool def, const std::string& help) {
  return add(make_flag(name, FlagType::boolean, def, help));
}
Command& Command::flag_int(const std::string& name, int64_t def, const std::string& help) {
  return add(make_flag(name, FlagType::integer, def, help));
}
Command& Command::flag_number(const std::string& name, double def, const std::string& help) {
  CVG_CHECK(std::isfinite(def), "Command '", name_, "': default of --", name, " must be finite");
  return add(make_flag(name, FlagType::number, def, help));
}
Command& Command::flag_string(const std::string& name, const std::string& def,
                              const std::string& help) {
  return add(make_flag(name, FlagType::string, def, help));
}

FlagSpec& Command::last(const char* what) {
  CVG_CHECK(!flags_.empty(), "Command '", name_, "': ", what, " needs a flag declared before it");
  return flags_.back();
}
Command& Command::at_least(double lo) {
  FlagSpec& f = last("at_least");
  CVG_CHECK(f.type == FlagType::integer || f.type == FlagType::number, "at_least: --", f.name,
            " is not numeric");
  f.min = lo;
  f.min_exclusive = false;
  return *this;
}
Command& Command::above(double lo) {
  at_least(lo);
  flags_.back().min_exclusive = true;
  return *this;
}
Command& Command::at_most(double hi) {
  FlagSpec& f = last("at_most");
  CVG_CHECK(f.type == FlagType::integer || f.type == FlagType::number, "at_most: --", f.name,
            " is not numeric");
  f.max = hi;
  return *this;
}
Command& Command::one_of(std::vector<std::string> choices) {
  FlagSpec& f = last("one_of");
  CVG_CHECK(f.type == FlagType::string, "one_of: --", f.name, " is not a string flag");
  f.choices = std::move(choices);
  return *this;
}
Command& Command::resumable() {
  add(make_flag("resume", FlagType::string, "", "checkpoint to continue from", "CHECKPOINT"));
  return add(make_flag("overwrite", FlagType::boolean, false,
                       "start over in an --out folder that holds a run (its metrics and "
                       "checkpoint are discarded)"));
}
Command& Command::metavar(const std::string& placeholder) {
  last("metavar").metavar = placeholder;
  return *this;
}

// ---- Args -------------------------------------------------------------------------------------

const json& Args::value(const std::string& name, FlagType type) const {
  const FlagSpec* f = find_flag(specs_, name);
  CVG_CHECK(f, "Args: command '", command_, "' has no flag --", name);
  CVG_CHECK(f->type == type, "Args: --", name, " is a ", flag_type_name(f->type), " flag, read as ",
            flag_type_name(type));
  return values_.at(name);
}
bool Args::get_bool(const std::string& name) const {
  return value(name, FlagType::boolean).get<bool>();
}
int64_t Args::get_int(const std::string& name) const {
  return value(name, FlagType::integer).get<int64_t>();
}
double Args::get_number(const std::string& name) const {
  return value(name, FlagType::number).get<double>();
}
const std::string& Args::get_string(const std::string& name) const {
  return value(name, FlagType::string).get_ref<const std::string&>();
}
Device Args::device() const { return Device::parse(get_string("device")); }
const std::string& Args::resume() const {
  static const std::string none;
  return values_.contains("resume") ? get_string("resume") : none;
}
bool Args::overwrite() const { return values_.contains("overwrite") && get_bool("overwrite"); }

json Args::config() const {
  json c = values_;
  // What says how this invocation runs, not what the run is: replaying a run folder's
  // config.json must neither resume its checkpoint nor overwrite anything by itself.
  for (const char* key : {"config", "resume", "overwrite"}) c.erase(key);
  return c;
}

// ---- Cli --------------------------------------------------------------------------------------

Cli::Cli(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {
  const bool gpu = cuda_available();
  common_.push_back(make_flag("config", FlagType::string, "",
                              "JSON object of flag values; flags on the command line override it",
                              "FILE.json"));
  common_.push_back(make_flag("device", FlagType::string, gpu ? "cuda" : "cpu",
                              "where tensors live: cpu, cuda or cuda:N", "cpu|cuda"));
  common_.back().default_note = std::string(gpu ? "cuda" : "cpu") + "; cuda when a GPU is present";
  common_.push_back(make_flag("seed", FlagType::integer, int64_t{0},
                              "seed of the random generator (data order, initial weights, noise)"));
  common_.back().min = 0.0;
  common_.push_back(make_flag("out", FlagType::string, "",
                              "run folder: config.json, metrics.jsonl, plots, checkpoints", "DIR"));
}

void Cli::set_default_seed(uint64_t seed) {
  CVG_CHECK(seed <= uint64_t(INT64_MAX), "Cli: default seed ", seed, " exceeds the int64 range");
  for (FlagSpec& f : common_)
    if (f.name == "seed") f.default_value = static_cast<int64_t>(seed);
}
void Cli::set_default_out(const std::string& dir) {
  for (FlagSpec& f : common_)
    if (f.name == "out") f.default_value = dir;
}

Command& Cli::command(const std::string& name, const std::string& help) {
  CVG_CHECK(!name.empty() && name[0] != '-', "Cli: bad command name '", name, "'");
  CVG_CHECK(!find(name), "Cli: command '", name, "' declared twice");
  commands_.push_back(std::make_unique<Command>(name, help));
  return *commands_.back();
}

const Command* Cli::find(const std::string& name) const {
  for (const auto& c : commands_)
    if (c->name() == name) return c.get();
  return nullptr;
}

std::vector<FlagSpec> Cli::all_flags(const Command& c) const {
  std::vector<FlagSpec> out = c.flags();
  for (const FlagSpec& f : common_) {
    CVG_CHECK(!find_flag(c.flags(), f.name), "Cli: command '", c.name(), "' redeclares the common flag --",
              f.name);
    out.push_back(f);
  }
  return out;
}

std::string Cli::help(const std::string& command) const {
  std::ostringstream os;
  std::vector<std::string> names;
  for (const auto& c : commands_) names.push_back(c->name());
  if (const Command* c = command.empty() ? nullptr : find(command)) {
    os << "usage: " << program_ << " " << c->name() << " [flags]\n" << c->help() << "\n\nflags:\n";
    const size_t width = flag_width({&c->flags(), &common_});
    print_flags(os, c->flags(), width);
    print_flags(os, common_, width);
    return os.str();
  }
  const std::string cmd = default_command_.empty() ? "COMMAND" : "[COMMAND]";
  os << "usage: " << program_ << " " << cmd << " [flags]\n" << description_ << "\n\ncommands:\n";
  size_t width = 0;
  for (const auto& n : names) width = std::max(width, n.size());
  for (const auto& c : commands_)
    os << "  " << std::left << std::setw(static_cast<int>(width) + 2) << c->name() << c->help()
       << (c->name() == default_command_ ? " (the default)" : "") << "\n";
  std::vector<const std::vector<FlagSpec>*> lists{&common_};
  for (const auto& c : commands_) lists.push_back(&c->flags());
  const size_t fw = flag_width(lists);
  for (const auto& c : commands_) {
    if (c->flags().empty()) continue;
    os << "\nflags of " << c->name() << ":\n";
    print_flags(os, c->flags(), fw);
  }
  os << "\nflags of every command:\n";
  print_flags(os, common_, fw);
  os << "\nValues come from the defaults, then --config FILE.json, then the command line.\n"
     << "`" << program_ << " COMMAND --help` shows one command.\n";
  return os.str();
}

void Cli::read_config(const std::string& path, const std::vector<FlagSpec>& flags, Args& a) const {
  std::ifstream in(path);
  if (!in) throw UsageError("--config: cannot open '" + path + "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UsageError("--config: '" + path + "' is not valid JSON: " + one_line(e.what()));
  }
  if (!j.is_object()) throw UsageError("--config: '" + path + "' must hold a JSON object");
  const std::string where = "--config " + path;
  for (auto& [key, v] : j.items()) {
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    if (name == "config") throw UsageError(where + ": a config file cannot name another config");
    const FlagSpec* f = find_flag(flags, name);
    if (!f)
      throw UsageError(where + ": unknown key '" + key + "' (command '" + a.command_ +
                       "' has no flag --" + name + ")");
    a.values_[name] = convert_json(*f, v, where);
    a.set_.insert(name);
  }
}

Args Cli::parse(const std::vector<std::string>& args) const {
  Args a;
  const bool wants_help = std::any_of(args.begin(), args.end(),
                                      [](const std::string& s) { return s == "--help" || s == "-h"; });
  std::vector<std::string> names;
  for (const auto& c : commands_) names.push_back(c->name());
  size_t i = 0;
  const Command* cmd = nullptr;
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    cmd = find(args[0]);
    if (!cmd && !wants_help)
      throw UsageError("unknown command '" + args[0] + "' (commands: " + join(names, ", ") +
                       "; see --help)");
    i = 1;
    if (wants_help) {
      a.help_ = true;
      a.help_text_ = help(cmd ? cmd->name() : "");
      return a;
    }
  } else {
    if (wants_help) {
      a.help_ = true;
      a.help_text_ = help();
      return a;
    }
    if (default_command_.empty())
      throw UsageError("missing command (one of: " + join(names, ", ") + "; see --help)");
    cmd = find(default_command_);
    CVG_CHECK(cmd, "Cli: the default command '", default_command_, "' is not declared");
  }
  a.command_ = cmd->name();
  a.stops_on_interrupt_ = cmd->stops_on_interrupt_enabled();
  a.specs_ = all_flags(*cmd);
  for (const FlagSpec& f : a.specs_) a.values_[f.name] = f.default_value;

  // Command-line values, converted later so that they override the config file.
  std::vector<std::pair<const FlagSpec*, std::string>> given;
  for (; i < args.size(); ++i) {
    const std::string& tok = args[i];
    if (tok.size() < 3 || tok.compare(0, 2, "--") != 0)
      throw UsageError("unexpected argument '" + tok + "' (flags look like --name value; see " +
                       program_ + " " + a.command_ + " --help)");
    const size_t eq = tok.find('=');
    std::string name = tok.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const FlagSpec* f = find_flag(a.specs_, name);
    std::string text;
    if (!f && name.compare(0, 3, "no-") == 0) {
      const FlagSpec* pos = find_flag(a.specs_, name.substr(3));
      if (pos && pos->type == FlagType::boolean) {
        if (eq != std::string::npos)
          throw UsageError("--" + name + " takes no value: write --" + name + ", or --" +
                           pos->name + "=true / --" + pos->name + "=false");
        given.emplace_back(pos, "false");
        continue;
      }
    }
    if (!f)
      throw UsageError("unknown flag --" + name + " for command '" + a.command_ + "' (see " + program_ +
                       " " + a.command_ + " --help)");
    if (eq != std::string::npos) {
      text = tok.substr(eq + 1);
    } else if (f->type == FlagType::boolean) {
      text = "true";
    } else {
      if (i + 1 >= args.size() || args[i + 1].compare(0, 2, "--") == 0)
        throw UsageError("--" + name + " needs a value (" +
                         (f->type == FlagType::integer ? std::string("an ") : std::string("a ")) +
                         flag_type_name(f->type) + ")");
      text = args[++i];
    }
    given.emplace_back(f, text);
  }

  for (auto& [f, text] : given)
    if (f->name == "config") a.values_["config"] = text;
  const std::string& config = a.values_["config"].get_ref<const std::string&>();
  if (!config.empty()) read_config(config, a.specs_, a);
  for (auto& [f, text] : given) {
    a.values_[f->name] = convert_text(*f, text);
    a.set_.insert(f->name);
  }

  for (const FlagSpec& f : a.specs_) check_constraints(f, a.values_[f.name]);
  const std::string& device = a.values_["device"].get_ref<const std::string&>();
  Device d;
  try {
    d = Device::parse(device);
  } catch (const Error&) {
    throw UsageError("--device: '" + device + "' is not a device (cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !cuda_available())
    throw UsageError("--device " + device +
                     ": no CUDA device available (this build has no CUDA or there is no GPU); "
                     "use --device cpu");
  const std::string& resume = a.resume();
  if (!resume.empty() && !std::filesystem::is_regular_file(resume))
    throw UsageError("--resume: no checkpoint file '" + resume + "'");
  return a;
}

Args Cli::parse(int argc, char** argv) const {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse(args);
}

int run_main(const Cli& cli, int argc, char** argv, const std::function<int(const Args&)>& body,
             std::ostream& out, std::ostream& err) {
  Args a;
  try {
    a = cli.parse(argc, argv);
  } catch (const std::exception& e) {
    err << cli.program() << ": " << one_line(e.what()) << std::endl;
    return 2;
  }
  if (a.help_requested()) {
    out << a.help_text() << std::flush;
    return 0;
  }
  std::optional<InterruptGuard> interrupts;
  if (a.stops_on_interrupt()) interrupts.emplace();
  // Messages that already start with the program's name ("cvg-foo eval: ...") get no second one.
  const auto prefixed = [&](const std::string& what) {
    const std::string& p = cli.program();
    const bool named = what.compare(0, p.size(), p) == 0 && what.size() > p.size() &&
                       (what[p.size()] == ':' || what[p.size()] == ' ');
    return one_line(named ? what : p + ": " + what);
  };
  try {
    return body(a);
  } catch (const Error& e) {
    out << std::flush;
    err << prefixed(e.what()) << std::endl;
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave (an --out that is a file, a folder without write permission): their
    // input, not a bug, so exit code 2 like any other bad input.
    out << std::flush;
    err << prefixed(e.what()) << std::endl;
    return 2;
  } catch (const std::exception& e) {
    out << std::flush;
    err << cli.program() << ": internal error: " << one_line(e.what()) << std::endl;
    return 1;
  }
}

int run_main(const Cli& cli, int argc, char** argv, const std::function<int(const Args&)>& body) {
  return run_main(cli, argc, argv, body, std::cout, std::cerr);
}

int training_exit_code(double last_loss, const std::string& program, std::ostream& err) {
  if (std::isfinite(last_loss)) return 0;
  err << program << ": the loss is " << last_loss
      << ": training diverged and the checkpoint's weights are not usable (try a lower --lr)"
      << std::endl;
  return 1;
}
int training_exit_code(double last_loss, const std::string& program) {
  return training_exit_code(last_loss, program, std::cerr);
}

}  // namespace cvg::app
