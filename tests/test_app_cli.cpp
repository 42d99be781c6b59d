// The shared app conventions (nn/app): flag parsing with types, defaults, config files and their
// precedence, errors as one line with exit code 2 and no run folder left behind, --help listing
// every flag with its default, the run folder, progress lines, and the Ctrl-C flag.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "nn/app/app.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

app::Cli make_cli() {
  app::Cli cli("cvg-test", "A test program.");
  cli.set_default_command("train");
  cli.set_default_seed(7);
  cli.command("train", "Train the model")
      .resumable()
      .stops_on_interrupt()
      .flag_int("steps", 100, "optimizer steps").at_least(1)
      .flag_number("lr", 0.01, "learning rate").above(0)
      .flag_int("batch-size", 32, "examples per step").at_least(1).at_most(4096)
      .flag_bool("amp", false, "mixed precision")
      .flag_string("optimizer", "adam", "update rule").one_of({"adam", "sgd"})
      .flag_string("name", "", "a label");
  cli.command("eval", "Evaluate a checkpoint").flag_int("batches", 10, "batches to evaluate");
  return cli;
}

app::Args parse(const app::Cli& cli, std::vector<std::string> args) { return cli.parse(args); }

// The message of the UsageError that parsing `args` throws.
std::string usage_error(const app::Cli& cli, std::vector<std::string> args) {
  try {
    cli.parse(args);
  } catch (const app::UsageError& e) {
    return e.what();
  }
  FAIL("no UsageError for the arguments");
  return "";
}

// run_main with argv built from strings.
int run(const app::Cli& cli, std::vector<std::string> args, const std::function<int(const app::Args&)>& body,
        std::string* out = nullptr, std::string* err = nullptr) {
  args.insert(args.begin(), cli.program());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::ostringstream o, e;
  const int rc = app::run_main(cli, static_cast<int>(args.size()), argv.data(), body, o, e);
  if (out) *out = o.str();
  if (err) *err = e.str();
  return rc;
}

}  // namespace

TEST_CASE("app cli: defaults, types and the default command", "[app][cli]") {
  const app::Cli cli = make_cli();
  const app::Args a = parse(cli, {});
  CHECK(a.command() == "train");
  CHECK(a.get_int("steps") == 100);
  CHECK(a.get_number("lr") == 0.01);
  CHECK(a.get_int("batch-size") == 32);
  CHECK(a.get_bool("amp") == false);
  CHECK(a.get_string("optimizer") == "adam");
  CHECK(a.get_string("name").empty());
  CHECK(a.seed() == 7);
  CHECK(a.out().empty());
  CHECK(a.resume().empty());
  CHECK(a.device() == (cuda_available() ? kCUDA : kCPU));
  CHECK_FALSE(a.is_set("steps"));

  const app::Args b = parse(cli, {"train", "--steps", "5", "--lr=0.5", "--amp", "--batch-size", "64",
                                  "--optimizer", "sgd", "--name", "-x", "--seed", "3", "--device",
                                  "cpu", "--out", "runs/x"});
  CHECK(b.get_int("steps") == 5);
  CHECK(b.get_number("lr") == 0.5);
  CHECK(b.get_bool("amp"));
  CHECK(b.get_int("batch-size") == 64);
  CHECK(b.get_string("optimizer") == "sgd");
  CHECK(b.get_string("name") == "-x");  // a single dash is a value, not a flag
  CHECK(b.seed() == 3);
  CHECK(b.device() == kCPU);
  CHECK(b.out() == "runs/x");
  CHECK(b.is_set("steps"));
  CHECK_FALSE(b.is_set("resume"));

  CHECK(parse(cli, {"--amp=true", "--no-amp"}).get_bool("amp") == false);  // the last one wins
  CHECK_THAT(usage_error(cli, {"--no-amp=1"}),
             Contains("--no-amp takes no value: write --no-amp, or --amp=true / --amp=false"));
  CHECK(parse(cli, {"--amp=false"}).get_bool("amp") == false);
  CHECK(parse(cli, {"--lr", "1e-3"}).get_number("lr") == 1e-3);
  CHECK(parse(cli, {"eval", "--batches", "3"}).command() == "eval");

  // Reading a flag the command lacks, or as the wrong type, is a programming error.
  CHECK_THROWS_WITH(a.get_int("batches"), Contains("--batches"));
  CHECK_THROWS_WITH(a.get_number("steps"), Contains("integer"));
}

TEST_CASE("app cli: config files are overridden by flags", "[app][cli]") {
  const app::Cli cli = make_cli();
  TempDir dir;
  const std::string cfg = dir.file("c.json");
  write_text(cfg, R"({"steps": 20, "lr": 0.2, "batch_size": 8, "amp": true, "seed": 9})");
  const app::Args a = parse(cli, {"--lr", "0.3", "--config", cfg});  // flag before --config still wins
  CHECK(a.get_int("steps") == 20);
  CHECK(a.get_number("lr") == 0.3);
  CHECK(a.get_int("batch-size") == 8);  // '_' in config keys means '-'
  CHECK(a.get_bool("amp"));
  CHECK(a.seed() == 9);
  CHECK(a.is_set("steps"));
  CHECK(a.get_string("config") == cfg);

  // The effective configuration is a config file that reproduces the run.
  const nlohmann::json eff = a.config();
  CHECK_FALSE(eff.contains("config"));
  CHECK(eff.at("lr") == 0.3);
  write_text(dir.file("eff.json"), eff.dump());
  const app::Args b = parse(cli, {"--config", dir.file("eff.json")});
  CHECK(b.config() == eff);

  // Config values are checked like flags.
  write_text(cfg, R"({"steps": 0})");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("--steps") && Contains(">= 1"));
  write_text(cfg, R"({"steps": "ten"})");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("'steps' must be an integer"));
  write_text(cfg, R"({"steps": 2.5})");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("'steps' must be an integer"));
  write_text(cfg, R"({"lr": "0.1"})");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("'lr' must be a number"));
  write_text(cfg, R"({"stepz": 3})");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("unknown key 'stepz'") && Contains(cfg));
  write_text(cfg, R"({"steps": 3,)");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("not valid JSON") && Contains(cfg));
  write_text(cfg, R"([1, 2])");
  CHECK_THAT(usage_error(cli, {"--config", cfg}), Contains("JSON object"));
  CHECK_THAT(usage_error(cli, {"--config", dir.file("missing.json")}), Contains("cannot open"));
}

TEST_CASE("app cli: invalid invocations are usage errors with clear messages", "[app][cli]") {
  const app::Cli cli = make_cli();
  CHECK_THAT(usage_error(cli, {"--bogus", "1"}), Contains("unknown flag --bogus"));
  CHECK_THAT(usage_error(cli, {"--steps"}), Contains("--steps needs a value"));
  CHECK_THAT(usage_error(cli, {"--steps", "--lr", "1"}), Contains("--steps needs a value"));
  CHECK_THAT(usage_error(cli, {"--steps", "abc"}), Contains("'abc' is not an integer"));
  CHECK_THAT(usage_error(cli, {"--steps", "5x"}), Contains("'5x' is not an integer"));
  CHECK_THAT(usage_error(cli, {"--steps", "99999999999999999999"}), Contains("not an integer"));
  CHECK_THAT(usage_error(cli, {"--lr", "fast"}), Contains("'fast' is not a finite number"));
  CHECK_THAT(usage_error(cli, {"--lr", "1e999"}), Contains("not a finite number"));
  CHECK_THAT(usage_error(cli, {"--lr", "nan"}), Contains("not a finite number"));
  CHECK_THAT(usage_error(cli, {"--lr", "0"}), Contains("--lr: must be > 0"));
  CHECK_THAT(usage_error(cli, {"--steps", "0"}), Contains("--steps: must be >= 1, got 0"));
  CHECK_THAT(usage_error(cli, {"--batch-size", "5000"}), Contains("<= 4096"));
  CHECK_THAT(usage_error(cli, {"--amp=maybe"}), Contains("not a boolean"));
  CHECK_THAT(usage_error(cli, {"--optimizer", "lbfgs"}), Contains("'lbfgs' is not one of adam, sgd"));
  CHECK_THAT(usage_error(cli, {"--seed", "-1"}), Contains("--seed"));
  CHECK_THAT(usage_error(cli, {"--device", "tpu"}), Contains("--device: 'tpu' is not a device"));
  if (!cuda_available()) CHECK_THAT(usage_error(cli, {"--device", "cuda"}), Contains("no CUDA device"));
  CHECK_THAT(usage_error(cli, {"--resume", "/nonexistent/ckpt.safetensors"}),
             Contains("--resume") && Contains("/nonexistent/ckpt.safetensors"));
  CHECK_THAT(usage_error(cli, {"fly"}), Contains("unknown command 'fly'") && Contains("train, eval"));
  CHECK_THAT(usage_error(cli, {"train", "extra"}), Contains("unexpected argument 'extra'"));
  CHECK_THAT(usage_error(cli, {"eval", "--steps", "3"}), Contains("unknown flag --steps for command 'eval'"));

  app::Cli no_default("cvg-x", "No default command.");
  no_default.command("show", "Show things");
  CHECK_THAT(usage_error(no_default, {}), Contains("missing command"));
}

TEST_CASE("app cli: --help lists every flag with its default", "[app][cli]") {
  const app::Cli cli = make_cli();
  const app::Args top = parse(cli, {"--help"});
  REQUIRE(top.help_requested());
  const std::string& h = top.help_text();
  for (const char* s : {"usage: cvg-test", "A test program.", "train", "eval", "Evaluate a checkpoint",
                        "--steps N", "optimizer steps", "(>= 1; default: 100)", "--lr X", "(> 0; default: 0.01)",
                        "--batch-size N", "default: 32", "--amp", "default: false", "--optimizer adam|sgd",
                        "default: adam", "--name STR", "--batches N", "default: 10", "--config FILE.json",
                        "--device cpu|cuda", "--seed N", "default: 7", "--out DIR", "--resume CHECKPOINT"})
    CHECK_THAT(h, Contains(s));

  const app::Args sub = parse(cli, {"eval", "--help"});
  REQUIRE(sub.help_requested());
  CHECK_THAT(sub.help_text(), Contains("usage: cvg-test eval") && Contains("--batches N") &&
                                  Contains("--seed N"));
  // --resume and --overwrite belong to the command that trains (resumable()) only.
  CHECK_THAT(sub.help_text(), !Contains("--resume") && !Contains("--overwrite"));
  CHECK_THAT(usage_error(cli, {"eval", "--resume", "x"}),
             Contains("unknown flag --resume for command 'eval'"));
  CHECK(parse(cli, {"eval"}).resume().empty());
  CHECK_FALSE(parse(cli, {"eval"}).overwrite());
  CHECK(parse(cli, {"train", "--overwrite"}).overwrite());
  CHECK_THAT(sub.help_text(), !Contains("--steps"));
  // --help wins over errors elsewhere on the line.
  CHECK(parse(cli, {"train", "--bogus", "--help"}).help_requested());

  std::string out, err;
  CHECK(run(cli, {"--help"}, [](const app::Args&) { return 5; }, &out, &err) == 0);
  CHECK(out == h);
  CHECK(err.empty());
}

TEST_CASE("app cli: run_main returns 2 with one line and leaves no run folder", "[app][cli]") {
  const app::Cli cli = make_cli();
  TempDir dir;
  const std::string out_dir = dir.file("run");
  int body_ran = 0;
  auto body = [&](const app::Args& a) {
    ++body_ran;
    app::RunDir run(a.out(), a.config());
    run.log({{"step", 1}, {"loss", 0.5}});
    return 0;
  };
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--out", out_dir, "--steps", "0"},
        std::vector<std::string>{"--out", out_dir, "--bogus"},
        std::vector<std::string>{"--out", out_dir, "--lr"},
        std::vector<std::string>{"--out", out_dir, "--config", dir.file("missing.json")}}) {
    std::string out, err;
    CHECK(run(cli, bad, body, &out, &err) == 2);
    CHECK_THAT(err, Contains("cvg-test: "));
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.back() == '\n');
    CHECK_FALSE(fs::exists(out_dir));
  }
  CHECK(body_ran == 0);

  // A cvg::Error from the app's body (bad data, say) is one line and exit code 2 as well.
  std::string err;
  CHECK(run(cli, {}, [](const app::Args&) -> int { fail("data: file x\nis broken"); }, nullptr, &err) == 2);
  CHECK(err == "cvg-test: data: file x is broken\n");
  // One name in front, whether or not the message already starts with it.
  CHECK(run(cli, {}, [](const app::Args&) -> int { fail("cvg-test eval: no rows"); }, nullptr,
            &err) == 2);
  CHECK(err == "cvg-test eval: no rows\n");
  CHECK(run(cli, {}, [](const app::Args&) -> int { fail("cvg-tester: x"); }, nullptr, &err) == 2);
  CHECK(err == "cvg-test: cvg-tester: x\n");
  // A path the user gave that the file system refuses is bad input too (exit code 2).
  write_text(dir.file("afile"), "x");
  CHECK(run(cli, {}, [&](const app::Args&) -> int {
          fs::create_directories(dir.file("afile") + "/sub");
          return 0;
        }, nullptr, &err) == 2);
  CHECK_THAT(err, Contains("cvg-test: ") && Contains("afile"));
  CHECK(run(cli, {}, [](const app::Args&) -> int { throw std::runtime_error("boom"); }, nullptr, &err) == 1);
  CHECK_THAT(err, Contains("internal error: boom"));

  // A valid invocation runs the body, which creates the folder.
  CHECK(run(cli, {"--out", out_dir, "--steps", "3"}, body) == 0);
  CHECK(body_ran == 1);
  CHECK(fs::is_directory(out_dir));
  const nlohmann::json cfg = nlohmann::json::parse(read_text(out_dir + "/config.json"));
  CHECK(cfg.at("steps") == 3);
  CHECK(cfg.at("out") == out_dir);
}

TEST_CASE("app run folder: config, metrics, plots and resume trimming", "[app][run_dir]") {
  TempDir dir;
  const std::string path = dir.file("nested/run");
  {
    app::RunDir run(path, {{"lr", 0.1}});
    for (int s = 1; s <= 10; ++s) run.log({{"step", s}, {"loss", 1.0 / s}});
    CHECK(run.checkpoint_path() == path + "/checkpoint.safetensors");
    const std::string svg = run.plot();
    CHECK(svg == path + "/loss.svg");
    const std::string text = read_text(svg);
    CHECK_THAT(text, Contains("<svg") && Contains("polyline") && Contains("loss"));
  }
  CHECK(nlohmann::json::parse(read_text(path + "/config.json")) == nlohmann::json{{"lr", 0.1}});
  CHECK(viz::read_metrics(path + "/metrics.jsonl").size() == 10);

  // Resuming from step 6 drops the records of steps 7..10 (they will be done again).
  {
    app::RunDir run(path, {{"lr", 0.1}}, app::ResumePoint{6, path + "/checkpoint.safetensors"});
    const auto records = viz::read_metrics(run.metrics_path());
    REQUIRE(records.size() == 6);
    CHECK(records.back().at("step") == 6);
    run.log({{"step", 7}, {"loss", 0.2}});
    CHECK(viz::read_metrics(run.metrics_path()).size() == 7);
  }
  // A fresh run in a folder that holds a run is refused, with the ways on, and changes nothing;
  // with overwrite it starts the log anew and removes the old checkpoint. plot_run works on any
  // folder.
  const std::string ckpt = path + "/checkpoint.safetensors";
  nn::save_checkpoint(ckpt, nn::Linear(2, 1), nullptr, 7);
  CHECK_THROWS_WITH(app::RunDir(path, {{"lr", 0.2}}),
                    Contains("--out " + path + " already holds a run (config.json, metrics.jsonl, "
                             "checkpoint.safetensors; its checkpoint is at step 7)") &&
                        Contains("continue it with --config " + path +
                                 "/config.json --resume " + ckpt) &&
                        Contains("--overwrite"));
  CHECK(viz::read_metrics(path + "/metrics.jsonl").size() == 7);
  CHECK(nlohmann::json::parse(read_text(path + "/config.json")) == nlohmann::json{{"lr", 0.1}});
  {
    app::RunDir run(path, {{"lr", 0.2}}, std::nullopt, /*overwrite=*/true);
    CHECK(viz::read_metrics(run.metrics_path()).empty());
    CHECK_FALSE(fs::exists(ckpt));
    run.log({{"step", 1}, {"loss", 3.0}});
  }
  CHECK(nlohmann::json::parse(read_text(path + "/config.json")) == nlohmann::json{{"lr", 0.2}});
  // A run resumed from another folder's checkpoint may not replace the run in --out either (it
  // did: a --resume that forgot --out continued into the default folder), and changes nothing
  // there; into a new folder it starts with the checkpoint folder's records up to its step.
  const std::string other = dir.file("other");
  {
    app::RunDir run(other, {{"lr", 0.3}});
    for (int s = 1; s <= 5; ++s) run.log({{"step", s}, {"loss", 0.5}});
    nn::save_checkpoint(run.checkpoint_path(), nn::Linear(2, 1), nullptr, 4);
  }
  const app::ResumePoint from_other{4, other + "/checkpoint.safetensors"};
  CHECK_THROWS_WITH(app::RunDir(path, {{"lr", 0.3}}, from_other),
                    Contains("--out " + path + " holds another run (config.json, metrics.jsonl)") &&
                        Contains("its own folder (--out " + other + ")") && Contains("--overwrite"));
  CHECK(viz::read_metrics(path + "/metrics.jsonl").size() == 1);
  CHECK(nlohmann::json::parse(read_text(path + "/config.json")) == nlohmann::json{{"lr", 0.2}});
  {
    app::RunDir run(dir.file("copy"), {{"lr", 0.3}}, from_other);
    const auto records = viz::read_metrics(run.metrics_path());
    REQUIRE(records.size() == 4);
    CHECK(records.back().at("step") == 4);
  }
  CHECK(viz::read_metrics(other + "/metrics.jsonl").size() == 5);  // the source is left alone
  {
    app::RunDir run(path, {{"lr", 0.3}}, from_other, /*overwrite=*/true);
    CHECK(viz::read_metrics(run.metrics_path()).size() == 4);
  }
  // Any one of the three files marks a run.
  fs::remove(path + "/config.json");
  CHECK_THROWS_WITH(app::RunDir(path, nlohmann::json::object()),
                    Contains("already holds a run (metrics.jsonl)"));
  CHECK(fs::exists(app::plot_run(path, {"loss"}, "curve.svg")));
  CHECK_THROWS_WITH(app::RunDir("", {}), Contains("empty"));
  write_text(dir.file("plainfile"), "x");
  CHECK_THROWS_AS(app::RunDir(dir.file("plainfile"), {}), Error);
}

// --resume compares the checkpoint's configuration with the invocation before anything loads.
TEST_CASE("app resume: the checkpoint's app and flags must match", "[app][resume]") {
  const app::Cli cli = make_cli();
  TempDir dir;
  const std::string ckpt = dir.file("checkpoint.safetensors");
  const app::Args first = parse(cli, {"--lr", "0.5", "--optimizer", "sgd", "--steps", "10",
                                      "--out", dir.file("run")});
  nn::save_checkpoint(ckpt, nn::Linear(2, 1), nullptr, 4,
                      nn::CheckpointMeta{"cvg-test", first.config().dump(), "", {}});
  // The same flags, in another folder, and the app's own exceptions (more steps where the app
  // allows it).
  CHECK(app::check_resume(parse(cli, {"--resume", ckpt, "--lr", "5e-1", "--optimizer", "sgd",
                                      "--steps", "10", "--out", dir.file("b")}),
                          "cvg-test")
            .step == 4);
  CHECK_NOTHROW(app::check_resume(parse(cli, {"--resume", ckpt, "--lr", "0.5", "--optimizer",
                                              "sgd", "--amp", "--steps", "20"}),
                                  "cvg-test", {"amp", "steps"}));
  // Another --steps where the app does not allow it is named, with the reason.
  CHECK_THROWS_WITH(app::check_resume(parse(cli, {"--resume", ckpt, "--lr", "0.5", "--optimizer", "sgd",
                                                  "--steps", "20"}),
                                      "cvg-test"),
                    Contains("--steps 10 (now 20)") && Contains("fractions of --steps"));
  CHECK(app::saved_flag(nn::read_checkpoint_info(ckpt), "steps") == nlohmann::json(10));
  CHECK_FALSE(app::saved_flag(nn::read_checkpoint_info(ckpt), "no-such-flag").has_value());
  // Anything else that differs is named with both values.
  try {
    app::check_resume(parse(cli, {"--resume", ckpt, "--lr", "0.5", "--seed", "3", "--amp", "--steps", "10"}),
                      "cvg-test");
    FAIL("no UsageError");
  } catch (const app::UsageError& e) {
    CHECK_THAT(e.what(), Contains("--resume: " + ckpt + " was trained with ") &&
                             Contains("--amp false (now true)") &&
                             Contains("--optimizer \"sgd\" (now \"adam\")") &&
                             Contains("--seed 7 (now 3)") && !Contains("--lr") &&
                             !Contains("--steps") && !Contains("--out"));
  }
  CHECK_THROWS_WITH(app::check_resume(parse(cli, {"--resume", ckpt}), "cvg-other"),
                    Contains("was written by cvg-test, not cvg-other"));
  // The configuration a run writes leaves out how it was invoked: replaying it neither resumes
  // nor overwrites.
  const nlohmann::json cfg = parse(cli, {"--resume", ckpt, "--overwrite"}).config();
  CHECK_FALSE(cfg.contains("resume"));
  CHECK_FALSE(cfg.contains("overwrite"));
  CHECK(cfg.contains("out"));
}

TEST_CASE("app training exit code: a diverged run says so", "[app][cli]") {
  std::ostringstream err;
  CHECK(app::training_exit_code(0.25, "cvg-test", err) == 0);
  CHECK(err.str().empty());
  CHECK(app::training_exit_code(NAN, "cvg-test", err) == 1);
  CHECK_THAT(err.str(), Contains("cvg-test: the loss is nan: training diverged"));
}

TEST_CASE("app progress: plain lines off a terminal", "[app][progress]") {
  std::ostringstream os;
  double now = 100.0;
  app::Progress p(os, /*terminal=*/false, {.total = 10, .every = 5}, [&] { return now; });
  for (int step = 1; step <= 10; ++step) {
    now += 0.5;  // two steps per second
    p.update(step, 0.5);
  }
  p.finish();
  // Step 1 (the first), 5 and 10; the rate counts from the first report.
  CHECK(os.str() ==
        "step 1/10  loss 0.5  -- steps/s  eta --\n"
        "step 5/10  loss 0.5  2.00 steps/s  eta 0:03\n"
        "step 10/10  loss 0.5  2.00 steps/s  eta 0:00\n");

  // Items per second, a resumed run (first_step), and finish() printing the last step.
  std::ostringstream os2;
  now = 0;
  app::Progress q(os2, false, {.total = 1000, .first_step = 500, .items_per_step = 32, .every = 100},
                  [&] { return now; });
  for (int step = 501; step <= 550; ++step) {
    now += 0.25;
    q.update(step, 1.25);
  }
  q.finish();
  CHECK(os2.str() ==
        "step 501/1000  loss 1.25  -- items/s  eta --\n"
        "step 550/1000  loss 1.25  128 items/s  eta 1:53\n");

  // No total: no bar and no ETA.
  std::ostringstream os3;
  now = 0;
  app::Progress r(os3, false, {.every = 2}, [&] { return now; });
  now = 1;
  r.update(1, 2.0);
  now = 2;
  r.update(2, 1.0);
  CHECK(os3.str() == "step 1  loss 2  -- steps/s\nstep 2  loss 1  1.00 steps/s\n");
}

TEST_CASE("app progress: a redrawn bar on a terminal", "[app][progress]") {
  std::ostringstream os;
  double now = 0;
  app::Progress p(os, /*terminal=*/true, {.total = 4, .redraw_s = 1.0, .bar_width = 4},
                  [&] { return now; });
  p.update(1, 1.0);   // drawn (first)
  now = 0.5;
  p.update(2, 0.9);   // too soon: not drawn
  now = 1.5;
  p.update(3, 0.8);   // drawn
  p.print("checkpoint written");
  now = 1.6;
  p.update(4, 0.7);   // the last step is always drawn
  p.finish();
  const std::string s = os.str();
  CHECK_THAT(s, Contains("\r[#...] step 1/4  loss 1"));
  CHECK_THAT(s, !Contains("step 2/4"));
  CHECK_THAT(s, Contains("\r[###.] step 3/4  loss 0.8  1.33 steps/s  eta 0:01\x1b[K"));
  CHECK_THAT(s, Contains("\r\x1b[Kcheckpoint written\n"));
  CHECK_THAT(s, Contains("\r[####] step 4/4  loss 0.7"));
  CHECK(s.back() == '\n');
  CHECK(app::format_duration(7) == "0:07");
  CHECK(app::format_duration(754) == "12:34");
  CHECK(app::format_duration(3723) == "1:02:03");
  CHECK(app::format_duration(NAN) == "--");
}

TEST_CASE("app interrupt: SIGINT sets the flag the training loop polls", "[app][interrupt]") {
  struct sigaction before {};
  REQUIRE(::sigaction(SIGINT, nullptr, &before) == 0);
  {
    app::InterruptGuard guard;
    CHECK_FALSE(app::interrupted());
    REQUIRE(::raise(SIGINT) == 0);  // handled: the process carries on
    CHECK(app::interrupted());
    app::clear_interrupt();
    CHECK_FALSE(app::interrupted());
    REQUIRE(::raise(SIGTERM) == 0);
    CHECK(app::interrupted());
    app::clear_interrupt();
  }
  // The previous handler is back.
  struct sigaction after {};
  REQUIRE(::sigaction(SIGINT, nullptr, &after) == 0);
  CHECK(after.sa_handler == before.sa_handler);

  // Through run_main, as an app uses it: the loop sees the flag, checkpoints, exits with 130.
  const app::Cli cli = make_cli();
  int steps_done = 0;
  const int rc = run(cli, {"--steps", "50"}, [&](const app::Args& a) {
    for (int64_t step = 1; step <= a.get_int("steps"); ++step) {
      ++steps_done;
      if (step == 3) ::raise(SIGINT);
      if (app::interrupted()) return app::kInterruptedExitCode;
    }
    return 0;
  });
  CHECK(rc == app::kInterruptedExitCode);
  CHECK(steps_done == 3);

  // A command that never polls the flag keeps the handler it had (Ctrl-C would end it at once,
  // not promise a stop that never comes); the marked one gets the guard's.
  const auto handler_in = [&](const std::vector<std::string>& args) {
    struct sigaction inside {};
    run(cli, args, [&](const app::Args&) { return ::sigaction(SIGINT, nullptr, &inside); });
    return inside.sa_handler;
  };
  CHECK(handler_in({"eval"}) == before.sa_handler);
  CHECK(handler_in({"train"}) != before.sa_handler);
}
