// cvg-dann: unsupervised domain adaptation by backpropagation (Ganin and Lempitsky, ICML 2015;
// Ganin's thesis, chapter 5). A network learns to classify labelled source digits (MNIST) while a
// domain classifier behind a gradient reversal layer pushes its features to look the same on an
// unlabelled target domain (MNIST-M', the digits blended with real photographs).
//   cvg-dann train   --mode dann | source-only | target-only   (the method and the two baselines
//                    of the thesis's Table 5.I) into the run folder (--out)
//   cvg-dann eval    eval.json: source and target test accuracy, proxy A-distance of the features,
//                    and (unless --no-svm) the same accuracies under the thesis's protocol, the
//                    last layer retrained as a linear SVM (models/dann/svm.h)
//   cvg-dann table   the seed study: every run folder under --out summarised as mean +/- sd per
//                    mode and the pass criteria (models/dann/study.h), printed and in table.md,
//                    once for the label predictor and once for the SVM protocol
//   cvg-dann export  the data as .npy files (for a reference run in another framework)
//   cvg-dann show    mnistm_preview.png (source digits over their MNIST-M' blends) and
//                    features_pca.svg (2-D PCA of source and target features; --before DIR adds
//                    the panel of another run, e.g. source-only, for "before / after adaptation")
// Model, data, objective and metrics: models/dann/. docs/dann.md: results and decisions.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cvg_git_commit.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/shape.h"
#include "kernels/view.h"
#include "models/dann/data.h"
#include "models/dann/model.h"
#include "models/dann/plots.h"
#include "models/dann/study.h"
#include "models/dann/svm.h"
#include "nn/app/app.h"
#include "nn/checkpoint.h"
#include "nn/data/loader.h"
#include "nn/data/transforms.h"
#include "nn/io/npy.h"
#include "nn/optim.h"

using namespace cvg;
using namespace cvg::dann;
namespace fs = std::filesystem;

namespace {

constexpr const char* kApp = "cvg-dann";

// ---- configuration --------------------------------------------------------------------------

DataOptions data_options(const nlohmann::json& j) {
  DataOptions d;
  d.task = j.value("task", std::string("mnist"));
  d.data_dir = j.value("data-dir", std::string("data"));
  d.seed = j.value("data-seed", uint64_t{0});
  d.train_count = j.value("train-images", int64_t{8000});
  d.test_count = j.value("test-images", int64_t{2000});
  return d;
}

struct TrainedRun {
  nlohmann::json config;
  DannData data;
  std::shared_ptr<DannNet> net;
  Mode mode = Mode::dann;
  int64_t step = 0;
};

// data_dir: where the run's data lies now ("": where train found it, the path its configuration
// names, relative to the working directory train ran in).
TrainedRun open_run(const std::string& dir, Device device, const std::string& data_dir = "") {
  const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
  CVG_CHECK(fs::exists(ckpt), kApp, ": no checkpoint in ", dir, " (run `", kApp, " train --out ", dir,
            "` first)");
  const nn::CheckpointInfo info = nn::read_checkpoint_info(ckpt);
  CVG_CHECK(info.meta.app == kApp, kApp, ": ", ckpt, " was written by '", info.meta.app, "', not ", kApp);
  TrainedRun r;
  r.config = nlohmann::json::parse(info.meta.config);
  if (!data_dir.empty()) r.config["data-dir"] = data_dir;
  r.mode = parse_mode(r.config.value("mode", std::string("dann")));
  r.data = open_dann_data(data_options(r.config));
  r.net = std::make_shared<DannNet>(std::array<double, 3>{0, 0, 0},
                                    parse_domain_hidden(r.config.value("domain-hidden", std::string("100"))));
  r.step = nn::load_checkpoint(ckpt, *r.net, nullptr, /*restore_rng=*/false).step;
  r.net->to(device);
  r.net->eval();
  return r;
}

// False when some element of t is NaN or infinite.
bool all_finite(const Tensor& t) {
  for (float v : t.detach().to(kCPU).to(DType::float32).contiguous().to_vector<float>())
    if (!std::isfinite(v)) return false;
  return true;
}

// False when some weight is NaN or infinite (a run that diverged, evaluated later).
bool finite_parameters(nn::Module& net) {
  for (const Tensor& p : net.parameters())
    if (!all_finite(p)) return false;
  return true;
}

// The thesis's protocol (models/dann/svm.h): the last layer retrained as a linear SVM on the
// labelled training images of the mode (target-only: target; the others: source), C chosen on a
// held-out fifth of them; its source and target test accuracy.
// null when the features are not finite (a diverged network): no SVM can be fitted to them.
nlohmann::json evaluate_svm(DannNet& net, const DannData& d, Mode mode, Device device) {
  const bool on_target = mode == Mode::target_only;
  const DomainSplit& train = on_target ? d.target : d.source;
  const Tensor features = extract_label_hidden(net, train.train_x, device);
  if (!all_finite(features)) {
    std::fprintf(stderr, "%s: no linear-SVM accuracies: the features are not finite (a diverged network)\n", kApp);
    return nullptr;
  }
  const SelectedSvm s = fit_svm_selected(features, train.train_y, 10, svm_c_grid());
  nlohmann::json j;
  j["trained_on"] = on_target ? "target" : "source";
  j["c"] = s.svm.c;
  j["c_grid"] = svm_c_grid();
  j["validation_accuracy"] = s.validation;
  j["source_accuracy"] = s.svm.accuracy(extract_label_hidden(net, d.source.test_x, device), d.source.test_y);
  j["target_accuracy"] = s.svm.accuracy(extract_label_hidden(net, d.target.test_x, device), d.target.test_y);
  return j;
}

constexpr const char* kSvmHelp =
    "also evaluate the thesis's protocol: the last layer retrained as a linear SVM on the mode's labelled "
    "training images, C chosen on a held-out fifth (eval.json's \"svm\")";

// Why the proxy A-distance of feature sets fs and ft means nothing ("" when it does): a
// non-finite feature, or both sets one and the same constant vector.
std::string pad_undefined_reason(const Tensor& fs, const Tensor& ft) {
  if (!all_finite(fs) || !all_finite(ft)) return "the features are not finite (a diverged network)";
  const std::vector<float> a = fs.to(kCPU).to(DType::float32).contiguous().to_vector<float>();
  const std::vector<float> b = ft.to(kCPU).to(DType::float32).contiguous().to_vector<float>();
  const size_t d = static_cast<size_t>(fs.size(1));
  for (const std::vector<float>* v : {&a, &b})
    for (size_t i = 0; i < v->size(); ++i)
      if ((*v)[i] != a[i % d]) return "";
  return "every image has the same features (a collapsed network)";
}

// Source and target test accuracy, the proxy A-distance of the features of (at most)
// pad_images test images per domain, and with `svm` the linear-SVM protocol's accuracies.
nlohmann::json evaluate(DannNet& net, const DannData& d, Device device, int64_t pad_images, Mode mode,
                        bool svm) {
  nlohmann::json e;
  e["source_accuracy"] = accuracy(net, d.source.test_x, d.source.test_y, device);
  e["target_accuracy"] = accuracy(net, d.target.test_x, d.target.test_y, device);
  e["test_images"] = d.source.test_x.size(0);
  if (svm) e["svm"] = evaluate_svm(net, d, mode, device);
  if (pad_images > 0) {
    const int64_t n = std::min({pad_images, d.source.test_x.size(0), d.target.test_x.size(0)});
    if (n >= 4) {
      const Tensor fs_ = extract_features(net, narrow(d.source.test_x, 0, 0, n), device);
      const Tensor ft = extract_features(net, narrow(d.target.test_x, 0, 0, n), device);
      e["proxy_a_images"] = n;
      // A probe on NaN features, or on features that are one constant vector (a collapsed
      // network), errs 50 % and gives a proxy A-distance of 0, which would read as perfectly
      // aligned domains: it is left undefined, with the reason.
      const std::string why = pad_undefined_reason(fs_, ft);
      if (why.empty()) {
        e["proxy_a_distance"] = proxy_a_distance(fs_, ft);
      } else {
        e["proxy_a_distance"] = nullptr;
        e["proxy_a_note"] = why;
        std::fprintf(stderr, "%s: no proxy A-distance: %s\n", kApp, why.c_str());
      }
    } else {
      std::fprintf(stderr, "%s: no proxy A-distance: it needs 4 test images per domain, got %lld "
                           "(--pad-images %lld)\n",
                   kApp, static_cast<long long>(n), static_cast<long long>(pad_images));
    }
  }
  return e;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  CVG_CHECK(f.good(), kApp, ": cannot write ", path);
  f << j.dump(2) << "\n";
}

// ---- train ----------------------------------------------------------------------------------

// Batch `k` (0-based, counting over epochs) of a shuffled loader: stateless, so a resumed run
// draws exactly the batches the uninterrupted run would have.
data::Batch batch_number(const data::DataLoader& loader, int64_t k) {
  const int64_t nb = loader.num_batches();
  const int64_t epoch = k / nb;
  return loader.make_batch(loader.order(epoch), epoch, k % nb);
}

int train(const app::Args& a) {
  const Device device = a.device();
  manual_seed(a.seed());
  const Mode mode = parse_mode(a.get_string("mode"));
  const int64_t steps = a.get_int("steps"), batch = a.get_int("batch-size"),
                every = a.get_int("checkpoint-every"), eval_every = a.get_int("eval-every");
  const DannData data = open_dann_data(data_options(a.config()));
  CVG_CHECK(batch <= data.source.train_x.size(0), "--batch-size ", batch, " exceeds the ",
            data.source.train_x.size(0), " training images");
  // The final SVM holds out a fifth of the training images to choose C: refused now, not after
  // the training.
  const int64_t svm_images = (mode == Mode::target_only ? data.target : data.source).train_x.size(0);
  CVG_CHECK(!a.get_bool("svm") || svm_images >= 10, "--svm needs at least 10 training images to choose C on a "
            "held-out fifth, got --train-images ", svm_images, " (give more, or --no-svm)");

  auto net = std::make_shared<DannNet>(data.mean, parse_domain_hidden(a.get_string("domain-hidden")));
  net->to(device);
  nn::SGD opt(net->parameters(), nn::SgdOptions{.lr = a.get_number("lr"), .momentum = a.get_number("momentum")});
  const nn::InverseDecayLR schedule{a.get_number("lr"), steps, a.get_number("lr-alpha"), a.get_number("lr-beta")};
  const double gamma = a.get_number("gamma");
  // The domain branch's own knobs: they change nothing in the baselines, so a run that sets them
  // outside dann is a mistake in the command line.
  const DomainLoss domain_loss = parse_domain_loss(a.get_string("domain-loss"));
  const double clip = a.get_number("clip-grad-norm");
  CVG_CHECK(mode == Mode::dann || (domain_loss == DomainLoss::batch_mean && clip == 0 &&
                                    a.get_string("domain-hidden") == "100"),
            kApp, " train: --domain-loss, --clip-grad-norm and --domain-hidden apply to --mode dann only, got --mode ",
            mode_name(mode));
  int64_t start = 0;
  if (!a.resume().empty()) {
    app::check_resume(a, kApp, {"checkpoint-every", "eval-every", "pad-images", "svm"});
    start = nn::load_checkpoint(a.resume(), *net, &opt).step;
  }
  CVG_CHECK(start < steps, "--resume: the checkpoint is at step ", start, ", nothing left for --steps ", steps);

  std::optional<app::RunDir> run;
  if (!a.out().empty()) run.emplace(a.out(), a.config(), app::resume_point(a.resume(), start),
                a.overwrite());
  nn::CheckpointMeta meta{kApp, a.config().dump(), CVG_GIT_COMMIT, {}};

  std::printf("%s: %s on %s, %lld steps of %lld source + %lld target images\n%s\n%s", kApp, mode_name(mode),
              device.str().c_str(), static_cast<long long>(steps), static_cast<long long>(batch),
              static_cast<long long>(mode == Mode::dann ? batch : 0), data.description.c_str(),
              net->summary().c_str());
  std::fflush(stdout);

  auto dataset = [](const DomainSplit& s) {
    return std::make_shared<data::TensorDataset>(s.train_x, s.train_y);
  };
  // The two domains are drawn independently (their own shuffles), as two data streams.
  const data::DataLoader source(dataset(data.source),
                                {.batch_size = batch, .shuffle = true, .seed = a.seed(), .drop_last = true});
  const data::DataLoader target(dataset(data.target), {.batch_size = batch, .shuffle = true,
                                                       .seed = data::derive_key(a.seed(), 1), .drop_last = true});
  app::Progress progress = app::Progress::on_stdout(
      {.total = steps, .first_step = start, .items_per_step = mode == Mode::dann ? 2 * batch : batch});
  net->train();
  double last = NAN;
  for (int64_t step = start + 1; step <= steps; ++step) {
    const double p = static_cast<double>(step - 1) / static_cast<double>(steps);
    const double lambda = dann_lambda(p, gamma);
    const data::Batch s = batch_number(source, step - 1);
    const data::Batch t = batch_number(target, step - 1);
    opt.set_lr(schedule(step - 1));
    opt.zero_grad();
    const StepLoss loss = training_loss(*net, mode, s.input.to(device), s.target.to(device),
                                        t.input.to(device), t.target.to(device), lambda, domain_loss);
    loss.total.backward();
    const double grad_norm = clip > 0 ? nn::clip_grad_norm(net->parameters(), clip) : NAN;
    opt.step();
    last = loss.total.item();
    progress.update(step, last);
    if (run) {
      nlohmann::json rec = {{"step", step}, {"loss", last}, {"label_loss", loss.label_loss()},
                            {"lr", opt.lr()}, {"lambda", mode == Mode::dann ? lambda : 0.0}};
      if (mode == Mode::dann) {
        rec["domain_loss"] = loss.domain_loss();
        rec["domain_accuracy"] = loss.domain_acc();
        if (clip > 0) rec["grad_norm"] = grad_norm;  // before clipping
      }
      if (step % eval_every == 0 || step == steps) {
        const nlohmann::json e = evaluate(*net, data, device, 0, mode, false);
        rec["source_accuracy"] = e["source_accuracy"];
        rec["target_accuracy"] = e["target_accuracy"];
        progress.print(str_cat("step ", step, ": source accuracy ", e["source_accuracy"].get<double>(),
                               ", target accuracy ", e["target_accuracy"].get<double>()));
      }
      run->log(rec);
      if (step % every == 0 || step == steps || app::interrupted())
        nn::save_checkpoint(run->checkpoint_path(), *net, &opt, step, meta);
    }
    if (app::interrupted()) {
      progress.finish();
      if (run) run->plot({"loss", "label_loss", "domain_loss"});
      std::printf("interrupted at step %lld%s\n", static_cast<long long>(step),
                  run ? (std::string("; continue with: ") + kApp + " train " + run->resume_flags()).c_str()
                      : "");
      return app::kInterruptedExitCode;
    }
  }
  progress.finish();
  nlohmann::json e = evaluate(*net, data, device, a.get_int("pad-images"), mode, a.get_bool("svm"));
  e["app"] = kApp;
  e["run"] = a.out();
  e["mode"] = mode_name(mode);
  e["steps"] = steps;
  e["data"] = data.description;
  e["diverged"] = !std::isfinite(last);
  if (run) e["checkpoint"] = nn::checkpoint_id(run->checkpoint_path());
  std::printf("final loss %.4f\n%s\n", last, e.dump().c_str());
  if (run) {
    run->plot({"loss", "label_loss", "domain_loss"});
    run->plot({"source_accuracy", "target_accuracy", "domain_accuracy"}, "accuracy.svg");
    write_json(run->file("eval.json"), e);
    std::printf("run folder %s: config.json, metrics.jsonl, loss.svg, accuracy.svg, eval.json, "
                "checkpoint.safetensors\nnext: %s show --out %s\n",
                run->dir().c_str(), kApp, run->dir().c_str());
  }
  return app::training_exit_code(last, kApp);
}

// ---- eval -----------------------------------------------------------------------------------

int eval(const app::Args& a) {
  const TrainedRun r = open_run(a.out(), a.device(), a.get_string("data-dir"));
  nlohmann::json e = evaluate(*r.net, r.data, a.device(), a.get_int("pad-images"), r.mode, a.get_bool("svm"));
  e["app"] = kApp;
  e["run"] = a.out();
  e["mode"] = mode_name(r.mode);
  e["steps"] = r.step;
  e["data"] = r.data.description;
  e["checkpoint"] = nn::checkpoint_id((fs::path(a.out()) / "checkpoint.safetensors").string());
  e["diverged"] = !finite_parameters(*r.net);
  const std::string path = (fs::path(a.out()) / "eval.json").string();
  write_json(path, e);
  std::printf("%s\nwritten to %s\n", e.dump(2).c_str(), path.c_str());
  return 0;
}

// ---- table ----------------------------------------------------------------------------------

// The JSON in file p, or nullopt with the reason in *why (a table skips such a folder).
std::optional<nlohmann::json> read_json(const fs::path& p, std::string* why) {
  std::ifstream f(p);
  if (!f.good()) {
    *why = "cannot read " + p.filename().string();
    return std::nullopt;
  }
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    *why = p.filename().string() + " is not a JSON object";
    return std::nullopt;
  }
  return j;
}

// Flags a study's runs may differ in: the two the table groups by, and what does not change
// the trained network (where it was written, how often it checkpointed, what eval measured).
const std::set<std::string> kStudyMayDiffer = {"mode", "seed", "out", "device", "checkpoint-every",
                                               "eval-every", "svm", "pad-images"};
// Flags of the domain branch: a baseline (source-only, target-only) has none, so they are
// compared between dann runs only (a study of --domain-hidden 1024,1024 reuses the baselines).
const std::set<std::string> kDannOnly = {"domain-loss", "clip-grad-norm", "domain-hidden", "gamma"};

// The flags in which run configurations a and b differ beyond kStudyMayDiffer, as
// "--key A vs B, ..." ("" when none). A flag one of them lacks (an older run) is not compared.
std::string study_differences(const nlohmann::json& a, const nlohmann::json& b) {
  const bool both_dann = a.value("mode", std::string("dann")) == "dann" && b.value("mode", std::string("dann")) == "dann";
  std::string diffs;
  for (const auto& [key, v] : b.items()) {
    if (kStudyMayDiffer.count(key) || (!both_dann && kDannOnly.count(key)) || !a.contains(key)) continue;
    if (a.at(key) != v) diffs += str_cat(diffs.empty() ? "" : ", ", "--", key, " ", a.at(key).dump(), " vs ", v.dump());
  }
  return diffs;
}

// Every subfolder of --out whose eval.json scores its finished checkpoint is one run; its
// config.json gives the seed. Other folders are listed and skipped with the reason: no or an
// unreadable eval.json or config.json, another app's run, an unfinished or diverged run, or an
// eval.json of another checkpoint (an evaluation of an earlier run in the folder). Runs whose
// configurations differ beyond kStudyMayDiffer (and kDannOnly between a baseline and dann) are
// not one study: an error names the two runs and the flags.
int table(const app::Args& a) {
  CVG_CHECK(fs::is_directory(a.out()), "table: ", a.out(), " is not a folder");
  std::vector<fs::path> dirs;
  for (const fs::directory_entry& e : fs::directory_iterator(a.out()))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<RunResult> runs;
  nlohmann::json first_config;
  for (const fs::path& d : dirs) {
    // The reason a folder is not one of the runs, "" when it is.
    const auto check = [&](nlohmann::json& e, nlohmann::json& c) -> std::string {
      if (!fs::exists(d / "eval.json")) return "no eval.json";
      std::string why;
      std::optional<nlohmann::json> ej = read_json(d / "eval.json", &why);
      if (!ej) return why;
      e = *ej;
      if (e.value("app", std::string(kApp)) != kApp) return "a run of " + e.value("app", std::string());
      if (!(e.contains("mode") && e.contains("steps") && e["source_accuracy"].is_number() &&
            e["target_accuracy"].is_number()))
        return "eval.json lacks mode, steps or the accuracies";
      const fs::path ckpt = d / "checkpoint.safetensors";
      if (!fs::exists(ckpt)) return "no checkpoint";
      std::optional<nlohmann::json> cj = read_json(d / "config.json", &why);
      if (!cj) return why;
      c = *cj;
      nn::CheckpointInfo info;
      try {
        info = nn::read_checkpoint_info(ckpt.string());
      } catch (const Error& err) {
        return str_cat("unreadable checkpoint (", err.what(), ")");
      }
      if (info.meta.app != kApp) return "the checkpoint is a run of " + info.meta.app;
      const int64_t steps = c.value("steps", int64_t{0});
      if (info.step < steps) return str_cat("unfinished (checkpoint at step ", info.step, " of ", steps, ")");
      const std::string rerun = str_cat("; run `", kApp, " eval --out ", d.string(), "`");
      if (e.at("steps").get<int64_t>() != info.step)
        return str_cat("eval.json scores step ", e.at("steps").get<int64_t>(), ", the checkpoint is at step ",
                       info.step, rerun);
      if (e.contains("checkpoint") && e["checkpoint"] != nn::checkpoint_id(ckpt.string()))
        return "eval.json scores another checkpoint (the folder was trained again)" + rerun;
      if (e.value("diverged", false)) return "diverged (its weights or final loss are not finite)";
      return "";
    };
    nlohmann::json e, c;
    if (const std::string why = check(e, c); !why.empty()) {
      std::printf("skipped %s: %s\n", d.string().c_str(), why.c_str());
      continue;
    }
    if (runs.empty()) {
      first_config = c;
    } else {
      const std::string diffs = study_differences(first_config, c);
      CVG_CHECK(diffs.empty(), "table: ", runs.front().run, " and ", d.filename().string(),
                " are not runs of one study (", diffs, "); give each study its own --out folder");
    }
    RunResult r;
    r.run = d.filename().string();
    r.mode = e.at("mode").get<std::string>();
    r.seed = c.value("seed", int64_t{-1});
    r.steps = e.at("steps").get<int64_t>();
    r.source_accuracy = e.at("source_accuracy").get<double>();
    r.target_accuracy = e.at("target_accuracy").get<double>();
    if (e.value("proxy_a_distance", nlohmann::json()).is_number()) r.proxy_a_distance = e["proxy_a_distance"].get<double>();
    if (e.value("svm", nlohmann::json()).is_object()) {
      r.svm_source_accuracy = e["svm"].at("source_accuracy").get<double>();
      r.svm_target_accuracy = e["svm"].at("target_accuracy").get<double>();
    }
    runs.push_back(r);
  }
  CVG_CHECK(!runs.empty(), "table: no finished, evaluated run folder under ", a.out());
  std::string md = str_cat(runs.size(), " runs of ", runs.front().steps, " steps under ", a.out(),
                           "\n\n## The label predictor's accuracy\n\n", study_markdown(summarize_study(runs)));
  if (const auto svm = with_svm_accuracies(runs))
    md += "\n## The thesis's protocol: the last layer retrained as a linear SVM\n\n" +
          study_markdown(summarize_study(*svm));
  else
    md += "\n(no linear-SVM rows: some eval.json lacks \"svm\"; run `cvg-dann eval --out RUN` on each run)\n";
  const std::string path = (fs::path(a.out()) / "table.md").string();
  std::ofstream(path) << md;
  std::printf("%s\nwritten to %s\n", md.c_str(), path.c_str());
  return 0;
}

// ---- export ---------------------------------------------------------------------------------

// The exact tensors train and eval use (same data flags, same seed), so that another framework
// can train on them: {source,target}_{train,test}_{x,y}.npy (x float32 [N, 3, 28, 28] in [0, 1],
// y int64 [N]) and mean.npy (the channel means the network subtracts).
int export_data(const app::Args& a) {
  const DannData d = open_dann_data(data_options(a.config()));
  fs::create_directories(a.out());
  auto put = [&](const std::string& name, const Tensor& t) {
    io::write_npy((fs::path(a.out()) / (name + ".npy")).string(), t);
  };
  for (const auto& [domain, s] : {std::pair{"source", &d.source}, std::pair{"target", &d.target}}) {
    put(str_cat(domain, "_train_x"), s->train_x);
    put(str_cat(domain, "_train_y"), s->train_y);
    put(str_cat(domain, "_test_x"), s->test_x);
    put(str_cat(domain, "_test_y"), s->test_y);
  }
  put("mean", from_vector(std::vector<double>{d.mean[0], d.mean[1], d.mean[2]}, {3}));
  std::printf("%s\nwritten to %s: {source,target}_{train,test}_{x,y}.npy, mean.npy\n", d.description.c_str(),
              a.out().c_str());
  return 0;
}

// ---- show -----------------------------------------------------------------------------------

ScatterPanel feature_panel(const TrainedRun& r, int64_t n, Device device) {
  const int64_t ns = std::min(n, r.data.source.test_x.size(0)), nt = std::min(n, r.data.target.test_x.size(0));
  const Tensor f = cat({extract_features(*r.net, narrow(r.data.source.test_x, 0, 0, ns), device),
                        extract_features(*r.net, narrow(r.data.target.test_x, 0, 0, nt), device)},
                       0);
  ScatterPanel p;
  p.title = str_cat(mode_name(r.mode), " (", r.step, " steps)");
  p.xy = pca_2d(f);
  p.group.assign(static_cast<size_t>(ns), 0);
  p.group.resize(static_cast<size_t>(ns + nt), 1);
  return p;
}

int show(const app::Args& a) {
  const Device device = a.device();
  const TrainedRun r = open_run(a.out(), device, a.get_string("data-dir"));
  const std::string preview = (fs::path(a.out()) / "mnistm_preview.png").string();
  write_mnistm_preview(preview, r.data, a.get_int("count"), a.get_int("zoom"));
  std::printf("MNIST-M' preview (rows: source train digits, their target blends, source test digits, "
              "their target blends): %s\n", preview.c_str());
  std::vector<ScatterPanel> panels;
  if (!a.get_string("before").empty()) {
    const TrainedRun before = open_run(a.get_string("before"), device, a.get_string("data-dir"));
    CVG_CHECK(before.data.description == r.data.description, kApp, " show: --before ", a.get_string("before"),
              " was trained on other data (", before.data.description, ")");
    panels.push_back(feature_panel(before, a.get_int("points"), device));
  }
  panels.push_back(feature_panel(r, a.get_int("points"), device));
  const std::string svg = (fs::path(a.out()) / "features_pca.svg").string();
  const bool fashion = r.config.value("task", std::string("mnist")) == "fashion";
  write_svg_scatter(svg, panels,
                    {fashion ? "source (Fashion-MNIST test)" : "source (MNIST test)",
                     fashion ? "target (Fashion-M' test)" : "target (MNIST-M' test)"},
                    "G_f features of test images, first two principal components");
  std::printf("feature scatter (PCA; %zu panel%s): %s\n", panels.size(), panels.size() > 1 ? "s" : "",
              svg.c_str());
  return 0;
}

void data_flags(app::Command& c) {
  c.flag_string("task", "mnist", "mnist: MNIST -> MNIST-M'; fashion: Fashion-MNIST -> Fashion-M'")
      .one_of({"mnist", "fashion"})
      .flag_string("data-dir", "data", "where scripts/fetch-data put the datasets").metavar("DIR")
      .flag_int("data-seed", 0, "seed of the digit split, the photo split and the crops").at_least(0)
      .flag_int("train-images", 8000, "training images per domain, at most").at_least(1)
      .flag_int("test-images", 2000, "test images per domain, at most").at_least(1);
}

}  // namespace

int main(int argc, char** argv) {
  app::Cli cli(kApp,
               "Domain-adversarial training (Ganin and Lempitsky 2015): MNIST -> MNIST-M' with a gradient "
               "reversal layer, and its source-only / train-on-target baselines.");
  cli.set_default_command("train");
  cli.set_default_seed(1);
  cli.set_default_out("runs/dann");
  app::Command& t = cli.command("train", "train the label predictor (and, for dann, the domain classifier)");
  t.resumable().stops_on_interrupt();  // the step loop polls app::interrupted()
  data_flags(t);
  t.flag_string("mode", "dann", "dann | source-only | target-only (train on labelled target: the upper bound)")
      .one_of({"dann", "source-only", "target-only"})
      .flag_int("steps", 2000, "optimizer steps (p goes 0 -> 1 over them; 2000 = 16 epochs of 8000 digits)").at_least(1)
      .flag_int("batch-size", 64, "images per domain per step").at_least(1)
      .flag_number("lr", 0.01, "mu_0 of lr_p = mu_0 / (1 + alpha p)^beta").above(0)
      .flag_number("lr-alpha", 10, "alpha of the learning-rate schedule").at_least(0)
      .flag_number("lr-beta", 0.75, "beta of the learning-rate schedule").at_least(0)
      .flag_number("momentum", 0.9, "SGD momentum").at_least(0).at_most(0.999)
      .flag_number("gamma", 10, "gamma of lambda_p = 2 / (1 + exp(-gamma p)) - 1").at_least(0)
      .flag_string("domain-loss", "mean", "dann's CE_d: mean (one softmax loss over the 2 x batch images) | sum "
                   "(the thesis's eq. 5.3.7: source-half mean + target-half mean)")
      .one_of({"mean", "sum"})
      .flag_number("clip-grad-norm", 0, "dann only: rescale the step's gradient (all parameters) to this L2 "
                   "norm when it is larger; 0: off").at_least(0)
      .flag_string("domain-hidden", "100", "dann only: hidden widths of the domain classifier, comma-separated "
                   "(100: the thesis's MNIST choice; 1024,1024: its other nets)").metavar("W[,W...]")
      .flag_int("eval-every", 200, "steps between test-accuracy records in metrics.jsonl").at_least(1)
      .flag_int("pad-images", 1000, "test images per domain for the final proxy A-distance (0: skip)").at_least(0)
      .flag_bool("svm", true, kSvmHelp)
      .flag_int("checkpoint-every", 200, "steps between checkpoints").at_least(1);
  constexpr const char* kDataDirHelp =
      "the data folder when it is not where train found it (default: the run's own --data-dir)";
  cli.command("eval", "write eval.json: source and target test accuracy (label predictor, and the thesis's "
              "linear-SVM protocol), proxy A-distance")
      .flag_int("pad-images", 1000, "test images per domain for the proxy A-distance (0: skip)").at_least(0)
      .flag_bool("svm", true, kSvmHelp)
      .flag_string("data-dir", "", kDataDirHelp).metavar("DIR");
  cli.command("table", "summarise the runs under --out (one folder per run) as mean +/- sd per mode and the "
              "pass criteria; also written to table.md there");
  data_flags(cli.command("export", "write the training and test data of train (same flags) as .npy files into --out"));
  cli.command("show", "mnistm_preview.png and features_pca.svg in the run folder")
      .flag_string("before", "", "another run folder (e.g. source-only) drawn as the 'before adaptation' panel")
      .metavar("DIR")
      .flag_int("points", 500, "test images per domain in the scatter").at_least(2)
      .flag_int("count", 12, "digits per preview row").at_least(1).at_most(64)
      .flag_int("zoom", 3, "preview enlargement").at_least(1).at_most(16)
      .flag_string("data-dir", "", kDataDirHelp).metavar("DIR");
  return app::run_main(cli, argc, argv, [](const app::Args& a) {
    if (a.command() == "eval") return eval(a);
    if (a.command() == "show") return show(a);
    if (a.command() == "export") return export_data(a);
    if (a.command() == "table") return table(a);
    return train(a);
  });
}
