// cvg-deepmatch: fully-trainable Deep Matching (Thewlis, Bilen and Vedaldi, BMVC 2016; Thewlis's
// thesis, chapter 3). Deep Matching's recursive decoder written as a U-shaped network of 4-D
// layers (kernels/deepmatch.h), so that the descriptor CNN and the per-level exponents nu_l are
// trained end to end with a structured hinge loss on pairs with exact ground truth.
//   cvg-deepmatch match IMG1 IMG2  matches.txt (x1 y1 x2 y2 score, DeepMatching's format, after
//                                  reciprocal verification), flow.png (densified flow) and
//                                  matches.png in --out; --model hog | cnn | a run folder
//   cvg-deepmatch train            the CNN descriptor and/or nu_l on synthetic pairs (warped
//                                  photos and flying Fashion-MNIST sprites) into --out
//   cvg-deepmatch eval             acc@2/5/10 and EPE on held-out synthetic pairs and the real
//                                  stereo pairs, for one or several models (--rows): eval.json
//                                  and a table in the layout of the thesis's Table 1
// Model, pairs, readout and metrics: models/deepmatch/. docs/deepmatch.md: results, decisions.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cvg_git_commit.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/deepmatch/matching.h"
#include "models/deepmatch/model.h"
#include "models/deepmatch/pairs.h"
#include "nn/app/app.h"
#include "nn/checkpoint.h"
#include "nn/io/image.h"
#include "nn/optim.h"
#include "nn/viz/draw.h"
#include "nn/viz/png.h"

using namespace cvg;
using namespace cvg::deepmatch;
namespace fs = std::filesystem;

namespace {

constexpr const char* kApp = "cvg-deepmatch";

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  CVG_CHECK(f.good(), kApp, ": cannot write ", path);
  f << j.dump(2) << "\n";
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));  // "hog, cnn" works
  }
  return out;
}

// ---- models: untrained ("hog", "cnn") or a training run's folder ----------------------------

struct LoadedModel {
  std::shared_ptr<DeepMatchNet> net;
  std::string label;  // the row name in tables
  bool learn_nu = false, learn_features = false;
  int64_t steps = 0;
};

// `spec` is "hog", "cnn" (weights from --seed, as train starts them) or a run folder. radius > 0
// overrides the checkpoint's R_0 (nu_l is per level, so any radius works with the same levels).
LoadedModel load_model(const std::string& spec, int64_t radius, int64_t levels, uint64_t seed, Device device) {
  LoadedModel m;
  DmGeometry geo;
  geo.levels = levels;
  if (spec == "hog" || spec == "cnn") {
    geo.radius = radius > 0 ? radius : 16;
    manual_seed(seed);
    m.net = std::make_shared<DeepMatchNet>(parse_descriptor(spec), geo);
    m.label = spec + " (untrained)";
  } else {
    // A run folder, or its checkpoint file.
    const std::string ckpt = fs::is_regular_file(spec)
                                 ? spec
                                 : (fs::path(spec) / "checkpoint.safetensors").string();
    CVG_CHECK(fs::exists(ckpt), kApp, ": --model/--rows '", spec, "' is neither hog, cnn nor a run folder with ",
              "checkpoint.safetensors (run `", kApp, " train --out ", spec, "` first)");
    const nn::CheckpointInfo info = nn::read_checkpoint_info(ckpt);
    CVG_CHECK(info.meta.app == kApp, kApp, ": ", ckpt, " was written by '", info.meta.app, "', not ", kApp);
    const nlohmann::json cfg = nlohmann::json::parse(info.meta.config);
    geo.radius = radius > 0 ? radius : cfg.value("radius", int64_t{16});
    geo.levels = cfg.value("levels", int64_t{3});
    m.net = std::make_shared<DeepMatchNet>(parse_descriptor(cfg.value("descriptor", std::string("cnn"))), geo);
    m.steps = nn::load_checkpoint(ckpt, *m.net, nullptr, /*restore_rng=*/false).step;
    m.learn_nu = cfg.value("learn-nu", true);
    m.learn_features = cfg.value("learn-features", true) && m.net->kind() == DescriptorKind::cnn;
    m.label = spec;
  }
  m.net->to(device);
  m.net->eval();
  return m;
}

// ---- evaluation -----------------------------------------------------------------------------

struct PairScores {
  ErrorStats dense, matches;
  double verified = 0, points = 0, pairs = 0, seconds = 0;
  nlohmann::json json() const {
    return {{"acc2", dense.acc(2)},      {"acc5", dense.acc(5)},
            {"acc10", dense.acc(10)},    {"epe_flow", dense.epe()},
            {"epe_matches", matches.epe()}, {"acc10_matches", matches.acc(10)},
            {"verified_fraction", points > 0 ? verified / points : 0.0}, {"pixels", dense.count},
            {"seconds_per_pair", pairs > 0 ? seconds / pairs : 0.0}};
  }
};

void score_pair(DeepMatchNet& net, const Pair& p, int64_t max_bytes, PairScores& s) {
  const MatchResult r = match_pair(net, p.img0, p.img1, max_bytes);
  s.dense.merge(flow_errors(r.flow, p.flow, p.valid));
  s.matches.merge(match_errors(r.verified, p.flow, p.valid));
  s.verified += static_cast<double>(r.verified.size());
  s.points += static_cast<double>(r.forward.size());
  s.pairs += 1;
  s.seconds += r.timing.total();
}

std::string mark(bool b) { return b ? "yes" : "no"; }

std::string table_row(const std::string& name, const LoadedModel& m, const nlohmann::json& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |", name.c_str(),
                descriptor_name(m.net->kind()), mark(m.learn_nu).c_str(), mark(m.learn_features).c_str(),
                s["acc2"].get<double>(), s["acc5"].get<double>(), s["acc10"].get<double>(),
                s["epe_matches"].get<double>(), s["epe_flow"].get<double>());
  return buf;
}

int eval(const app::Args& a) {
  const Device device = a.device();
  std::vector<std::string> rows = split_list(a.get_string("rows"));
  CVG_CHECK(!rows.empty(), kApp, " eval: --rows is empty (give hog, cnn and/or run folders)");
  const std::vector<std::string> real = split_list(a.get_string("real"));
  for (const std::string& r : real)
    CVG_CHECK(r == "motorcycle" || r == "aloe", kApp, " eval: --real takes motorcycle and/or aloe, got '", r, "'");
  const int64_t max_bytes = a.get_int("max-memory-mb") << 20;
  const std::string data = a.get_string("data-dir");
  SyntheticOptions so;
  so.width = a.get_int("width"), so.height = a.get_int("height");
  const PairSource held_out = PairSource::open(data, /*held_out=*/true, so);
  std::vector<Pair> real_pairs;
  for (const std::string& r : real)
    real_pairs.push_back(r == "motorcycle" ? motorcycle_pair(data, a.get_int("real-scale"))
                                           : aloe_pair(data, a.get_int("aloe-scale")));
  DmGeometry real_geo;
  real_geo.radius = a.get_int("real-radius"), real_geo.levels = a.get_int("levels");
  for (const Pair& p : real_pairs) {
    real_geo.check_image(p.img0.size(1), p.img0.size(2),
                         str_cat("the ", p.name, " pair reduced to ", p.img0.size(2), " x ",
                                 p.img0.size(1), " (--real-scale / --aloe-scale)"));
    const Tensor valid = p.valid.to(DType::float32);
    std::printf("%s: %lld x %lld, %.1f%% pixels with ground truth, largest disparity %.1f px (--real-radius %lld)\n",
                p.name.c_str(), static_cast<long long>(p.img0.size(2)), static_cast<long long>(p.img0.size(1)),
                100.0 * sum(valid).item() / static_cast<double>(valid.numel()),
                amax(abs(select(p.flow, 0, 0)) * valid).item(), static_cast<long long>(a.get_int("real-radius")));
  }
  std::vector<LoadedModel> models;
  for (const std::string& r : rows)
    models.push_back(load_model(r, a.get_int("radius"), a.get_int("levels"), a.seed(), device));
  fs::create_directories(a.out());

  const int64_t n = a.get_int("pairs");
  std::printf("%s eval: %lld held-out synthetic pairs (%s, seed %llu)%s\n", kApp, static_cast<long long>(n),
              held_out.description().c_str(), static_cast<unsigned long long>(a.get_int("pair-seed")),
              real.empty() ? "" : (", real: " + a.get_string("real")).c_str());
  nlohmann::json out = {{"app", kApp}, {"pairs", n}, {"pair_seed", a.get_int("pair-seed")}, {"rows", nlohmann::json::array()}};
  const char* head =
      "| row | descriptor | nu learned | features learned | acc@2 | acc@5 | acc@10 | EPE matches | EPE flow |\n"
      "|---|---|---|---|---|---|---|---|---|";
  std::vector<std::string> synth_lines, real_lines;
  app::Progress progress = app::Progress::on_stdout({.total = static_cast<int64_t>(models.size()) * n});
  int64_t done = 0;
  for (size_t mi = 0; mi < models.size(); ++mi) {
    LoadedModel& m = models[mi];
    PairScores synth;
    for (int64_t k = 0; k < n; ++k) {
      score_pair(*m.net, held_out.pair(static_cast<uint64_t>(a.get_int("pair-seed")), k), max_bytes, synth);
      progress.update(++done, synth.dense.epe());  // the bar's "loss": the running EPE
      if (app::interrupted()) {
        progress.finish();
        std::printf("interrupted; nothing written\n");
        return app::kInterruptedExitCode;
      }
    }
    nlohmann::json row = {{"model", rows[mi]},          {"descriptor", descriptor_name(m.net->kind())},
                          {"learn_nu", m.learn_nu},      {"learn_features", m.learn_features},
                          {"steps", m.steps},            {"synthetic", synth.json()}};
    synth_lines.push_back(table_row(rows[mi], m, row["synthetic"]));
    if (!real_pairs.empty()) {
      // Stereo disparities are larger than the synthetic motions: a wider radius, same nu_l.
      const LoadedModel wide = load_model(rows[mi], a.get_int("real-radius"), a.get_int("levels"), a.seed(), device);
      for (const Pair& p : real_pairs) {
        PairScores s;
        score_pair(*wide.net, p, max_bytes, s);
        row[p.name] = s.json();
        real_lines.push_back(table_row(rows[mi] + " on " + p.name, m, row[p.name]));
      }
    }
    out["rows"].push_back(row);
  }
  progress.finish();
  const std::string path = (fs::path(a.out()) / "eval.json").string();
  write_json(path, out);
  std::printf("\nHeld-out synthetic pairs (acc in %%, EPE in pixels; flow = nearest-neighbour densification):\n%s\n",
              head);
  for (const std::string& l : synth_lines) std::printf("%s\n", l.c_str());
  if (!real_lines.empty()) {
    std::printf("\nReal pairs (R_0 %lld):\n%s\n", static_cast<long long>(a.get_int("real-radius")), head);
    for (const std::string& l : real_lines) std::printf("%s\n", l.c_str());
  }
  std::printf("written to %s\n", path.c_str());
  return 0;
}

// ---- train ----------------------------------------------------------------------------------

int train(const app::Args& a) {
  const Device device = a.device();
  const DescriptorKind kind = parse_descriptor(a.get_string("descriptor"));
  const bool learn_nu = a.get_bool("learn-nu");
  const bool learn_features = a.get_bool("learn-features") && kind == DescriptorKind::cnn;
  CVG_CHECK(learn_nu || learn_features, kApp, " train: nothing to train (--no-learn-nu with ",
            kind == DescriptorKind::hog ? "the fixed hog descriptor" : "--no-learn-features", ")");
  const int64_t steps = a.get_int("steps"), batch = a.get_int("batch-size"), every = a.get_int("checkpoint-every"),
                eval_every = a.get_int("eval-every"), val_pairs = a.get_int("val-pairs");
  const int64_t max_bytes = a.get_int("max-memory-mb") << 20;
  SyntheticOptions so;
  so.width = a.get_int("width"), so.height = a.get_int("height");
  const PairSource source = PairSource::open(a.get_string("data-dir"), /*held_out=*/false, so);
  const PairSource held_out = PairSource::open(a.get_string("data-dir"), /*held_out=*/true, so);

  manual_seed(a.seed());
  DmGeometry geo;
  geo.radius = a.get_int("radius"), geo.levels = a.get_int("levels");
  geo.check_image(so.height, so.width, str_cat("a ", so.width, " x ", so.height,
                                               " frame (--width, --height)"));
  auto net = std::make_shared<DeepMatchNet>(kind, geo, a.get_number("nu-init"));
  // First: to() puts new tensors in the module's fields, so the ones the optimizer holds must be
  // collected after it (before, a GPU run trained copies left on the CPU: nothing learned).
  net->to(device);
  // Frozen groups get no gradient at all (not only no update), which also skips their backward.
  std::vector<Tensor> params;
  for (Tensor t : net->feature_parameters()) {
    t.impl()->requires_grad = learn_features;
    if (learn_features) params.push_back(t);
  }
  net->nu.impl()->requires_grad = learn_nu;
  if (learn_nu) params.push_back(net->nu);
  nn::Adam opt(params, nn::AdamOptions{.lr = a.get_number("lr")});
  int64_t start = 0;
  if (!a.resume().empty()) {
    app::check_resume(a, kApp, {"steps", "checkpoint-every", "eval-every", "val-pairs", "max-memory-mb"});
    start = nn::load_checkpoint(a.resume(), *net, &opt).step;
  }
  CVG_CHECK(start < steps, "--resume: the checkpoint is at step ", start, ", nothing left for --steps ", steps);

  app::RunDir run(a.out(), a.config(), app::resume_point(a.resume(), start),
                a.overwrite());
  nn::CheckpointMeta meta{kApp, a.config().dump(), CVG_GIT_COMMIT, {}};
  std::printf("%s: %s descriptor, learning %s%s%s on %s; %lld steps of %lld pairs (%s), R0 %lld, L %lld\n", kApp,
              descriptor_name(kind), learn_features ? "features" : "", learn_features && learn_nu ? " and " : "",
              learn_nu ? "nu" : "", device.str().c_str(), static_cast<long long>(steps), static_cast<long long>(batch),
              source.description().c_str(), static_cast<long long>(geo.radius), static_cast<long long>(geo.levels));
  std::fflush(stdout);

  auto validate = [&]() {
    PairScores s;
    net->eval();
    for (int64_t k = 0; k < val_pairs; ++k) score_pair(*net, held_out.pair(a.seed() + 7777, k), max_bytes, s);
    net->train();
    return s;
  };
  app::Progress progress =
      app::Progress::on_stdout({.total = steps, .first_step = start, .items_per_step = batch});
  net->train();
  if (val_pairs > 0 && start == 0) {
    // The untrained network's held-out score, the start of val.svg's curves.
    const PairScores s = validate();
    run.log({{"step", 0}, {"val_acc5", s.dense.acc(5)}, {"val_acc10", s.dense.acc(10)}, {"val_epe", s.dense.epe()}});
    progress.print(str_cat("step 0: held-out acc@5 ", s.dense.acc(5), ", acc@10 ", s.dense.acc(10), ", EPE ",
                           s.dense.epe()));
  }
  double last = NAN;
  for (int64_t step = start + 1; step <= steps; ++step) {
    std::vector<Pair> pairs;
    for (int64_t b = 0; b < batch; ++b) pairs.push_back(source.pair(a.seed(), (step - 1) * batch + b));
    const PairBatch pb = stack_pairs(pairs);
    const Tensor gt = gt_offsets(pb.flow, pb.valid, geo).to(device);
    opt.zero_grad();
    const Tensor q0 = net->forward_pair(pb.img0.to(device), pb.img1.to(device));
    const Tensor loss = dm_hinge_loss(q0, gt, a.get_number("sigma"));
    loss.backward();
    opt.step();
    net->clamp_nu();
    last = loss.item();
    progress.update(step, last);
    nlohmann::json rec = {{"step", step}, {"loss", last}};
    const Tensor nu = net->nu.to(kCPU).contiguous();
    for (int64_t l = 0; l < geo.levels; ++l) rec[str_cat("nu", l)] = nu.data<float>()[l];
    if (val_pairs > 0 && (step % eval_every == 0 || step == steps)) {
      const PairScores s = validate();
      rec["val_acc5"] = s.dense.acc(5), rec["val_acc10"] = s.dense.acc(10), rec["val_epe"] = s.dense.epe();
      progress.print(str_cat("step ", step, ": held-out acc@5 ", s.dense.acc(5), ", acc@10 ", s.dense.acc(10),
                             ", EPE ", s.dense.epe()));
    }
    run.log(rec);
    if (step % every == 0 || step == steps || app::interrupted())
      nn::save_checkpoint(run.checkpoint_path(), *net, &opt, step, meta);
    if (app::interrupted()) {
      progress.finish();
      run.plot({"loss"});
      std::printf("interrupted at step %lld; continue with: %s train %s\n", static_cast<long long>(step),
                  kApp, run.resume_flags().c_str());
      return app::kInterruptedExitCode;
    }
  }
  progress.finish();
  run.plot({"loss"});
  std::vector<std::string> nu_keys;
  for (int64_t l = 0; l < geo.levels; ++l) nu_keys.push_back(str_cat("nu", l));
  run.plot(nu_keys, "nu.svg");
  if (val_pairs > 0) run.plot({"val_acc5", "val_acc10"}, "val.svg");
  std::string nus;
  const Tensor nu = net->nu.to(kCPU).contiguous();
  for (int64_t l = 0; l < geo.levels; ++l) nus += str_cat(l ? ", " : "", nu.data<float>()[l]);
  std::printf("final loss %.5f, nu = (%s)\nrun folder %s: config.json, metrics.jsonl, loss.svg, nu.svg, "
              "checkpoint.safetensors\nnext: %s eval --rows %s,%s --out %s/eval\n",
              last, nus.c_str(), run.dir().c_str(), kApp, descriptor_name(kind), run.dir().c_str(), run.dir().c_str());
  return app::training_exit_code(last, kApp);
}

// ---- match ----------------------------------------------------------------------------------

// `which` names the image in errors ("image 1"). The matches and the flow are in the pixels of
// the reduced images (--scale's help says so).
Tensor read_for_matching(const std::string& path, int64_t scale, const char* which) {
  CVG_CHECK(fs::is_regular_file(path), kApp, " match: ", which, ": no image file '", path, "'");
  const GrayImage im = read_gray(path);
  CVG_CHECK(im.h / scale >= 1 && im.w / scale >= 1, kApp, " match: --scale ", scale,
            " leaves nothing of ", which, " (", im.w, " x ", im.h, ")");
  return to_tensor(downscale(im, scale));
}

int match(const app::Args& a) {
  const std::string p0 = a.get_string("image1"), p1 = a.get_string("image2");
  CVG_CHECK(!p0.empty() && !p1.empty(), kApp, " match: give two images (match IMG1 IMG2)");
  const int64_t scale = a.get_int("scale");
  const Tensor img0 = read_for_matching(p0, scale, "image 1");
  const Tensor img1 = read_for_matching(p1, scale, "image 2");
  LoadedModel m = load_model(a.get_string("model"), a.get_int("radius"), a.get_int("levels"), a.seed(), a.device());
  const MatchResult r = match_pair(*m.net, img0, img1, a.get_int("max-memory-mb") << 20);
  fs::create_directories(a.out());  // after match_pair's checks: a refused pair writes nothing
  const fs::path out(a.out());
  write_matches((out / "matches.txt").string(), r.verified);
  write_matches((out / "matches_all.txt").string(), r.forward);
  viz::write_png((out / "flow.png").string(), flow_to_color(r.flow));
  // At most --draw lines, evenly spread over the verified matches, so the picture stays legible.
  const int64_t nv = static_cast<int64_t>(r.verified.size());
  const int64_t draw = std::min<int64_t>(nv, a.get_int("draw"));
  std::vector<float> xa, xb;
  for (int64_t i = 0; i < draw; ++i) {
    const Match& mt = r.verified[static_cast<size_t>(i * nv / draw)];
    xa.insert(xa.end(), {mt.x0, mt.y0});
    xb.insert(xb.end(), {mt.x1, mt.y1});
  }
  viz::write_png((out / "matches.png").string(),
                 viz::draw_matches(img0, img1, from_vector(xa, {draw, 2}), from_vector(xb, {draw, 2})));
  const MatchTiming& t = r.timing;
  const DmGeometry& geo = m.net->geometry();
  write_json((out / "match.json").string(),
             {{"app", kApp}, {"image1", p0}, {"image2", p1}, {"width", img0.size(2)}, {"height", img0.size(1)},
              {"model", m.label}, {"device", a.device().str()}, {"radius", geo.radius}, {"levels", geo.levels},
              {"reference_points", r.forward.size()}, {"verified", r.verified.size()},
              {"seconds", {{"total", t.total()}, {"descriptors", t.descriptors}, {"forward", t.forward},
                           {"backward", t.backward}, {"readout", t.readout}}}});
  std::printf("%s match: %s (%lld x %lld) -> %s with %s: %zu reference points, %zu reciprocal matches\n"
              "time %.3f s on %s (descriptors %.3f, Q_0 forward %.3f and backward %.3f, readout %.3f)\n"
              "written to %s: matches.txt (x1 y1 x2 y2 score, verified), matches_all.txt, matches.png, flow.png, "
              "match.json\n",
              kApp, p0.c_str(), static_cast<long long>(img0.size(2)), static_cast<long long>(img0.size(1)),
              p1.c_str(), m.label.c_str(), r.forward.size(), r.verified.size(), t.total(), a.device().str().c_str(),
              t.descriptors, t.forward, t.backward, t.readout, a.out().c_str());
  return 0;
}

void model_flags(app::Command& c, int64_t radius_default, const char* radius_help) {
  c.flag_int("radius", radius_default, radius_help).at_least(radius_default > 0 ? 1 : 0)
      .flag_int("levels", 3, "L, levels of the U-network (a run folder's own L wins)").at_least(1).at_most(8)
      .flag_int("max-memory-mb", 1024, "memory budget of the 4-D tensors; larger pairs are matched in blocks of reference rows")
      .at_least(1).at_most(1 << 30);  // MiB: below 2^63 bytes
}

void frame_flags(app::Command& c) {
  c.flag_string("data-dir", "data", "where scripts/fetch-data put the photos and Fashion-MNIST").metavar("DIR")
      .flag_int("width", 128, "synthetic frame width").at_least(32)
      .flag_int("height", 96, "synthetic frame height").at_least(32);
}

}  // namespace

int main(int argc, char** argv) {
  app::Cli cli(kApp,
               "Fully-trainable Deep Matching (Thewlis et al. 2016): 4-D correlation, pooling, aggregation and "
               "the reverse decoder layers as one network; match image pairs, train the descriptor and nu_l, "
               "evaluate acc@T / EPE.");
  cli.set_default_command("train");
  cli.set_default_seed(1);
  cli.set_default_out("runs/deepmatch");
  app::Command& m = cli.command("match", "match IMG1 IMG2 (or --image1/--image2): matches.txt, matches.png, flow.png");
  m.flag_string("image1", "", "the reference image").metavar("FILE")
      .flag_string("image2", "", "the target image").metavar("FILE")
      .flag_string("model", "hog", "hog | cnn (untrained, weights from --seed) | a training run folder")
      .flag_int("scale", 1, "reduce both images by this integer factor first (the matches "
                "and the flow are in the reduced images' pixels)")
      .at_least(1)
      .flag_int("draw", 300, "matches drawn in matches.png, at most").at_least(0);
  model_flags(m, 0, "R_0, displacements searched in pixels (0: the run's own, 16 for hog/cnn)");
  app::Command& t = cli.command("train", "train the CNN descriptor and/or nu_l with the structured hinge loss");
  t.resumable().stops_on_interrupt();  // the step loop polls app::interrupted()
  frame_flags(t);
  t.flag_string("descriptor", "cnn", "cnn (learnable) or hog (fixed; only nu_l can learn)").one_of({"cnn", "hog"})
      .flag_bool("learn-nu", true, "train the exponents nu_l")
      .flag_bool("learn-features", true, "train the CNN descriptor")
      .flag_number("nu-init", 1.4, "initial nu_l (DeepMatching's value)").above(0)
      .flag_int("steps", 400, "optimizer steps").at_least(1)
      .flag_int("batch-size", 4, "pairs per step").at_least(1)
      .flag_number("lr", 1e-3, "Adam learning rate").above(0)
      .flag_number("sigma", 2, "sigma of g_sigma in the hinge loss's margin, pixels").above(0)
      .flag_int("val-pairs", 20, "held-out pairs scored every --eval-every steps (0: none)").at_least(0)
      .flag_int("eval-every", 100, "steps between held-out scores").at_least(1)
      .flag_int("checkpoint-every", 100, "steps between checkpoints").at_least(1);
  model_flags(t, 16, "R_0, displacements searched in pixels");
  app::Command& e = cli.command("eval", "acc@2/5/10 and EPE of models on held-out pairs: eval.json and a table");
  e.stops_on_interrupt();  // the scoring loop polls app::interrupted()
  frame_flags(e);
  e.flag_string("rows", "hog,cnn", "comma-separated models: hog, cnn (untrained, --seed) or run folders")
      .flag_int("pairs", 200, "held-out synthetic pairs").at_least(1)
      .flag_int("pair-seed", 1000, "seed of the held-out pairs").at_least(0)
      .flag_string("real", "motorcycle,aloe", "real pairs to score too: motorcycle, aloe (empty: none)")
      .flag_int("real-scale", 2, "reduction factor of the motorcycle pair (741 x 500)").at_least(1)
      .flag_int("aloe-scale", 4, "reduction factor of the Aloe pair (1282 x 1110)").at_least(1)
      .flag_int("real-radius", 48, "R_0 on the real pairs (disparities are larger than synthetic motions)")
      .at_least(1);
  model_flags(e, 0, "R_0 on synthetic pairs (0: each run's own, 16 for hog/cnn)");

  // `match IMG1 [IMG2] [flags]`: the (up to) two arguments right after the command become
  // --image1 / --image2; naming an image both ways is an error (the flag would win silently).
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() >= 3 && args[1] == "match") {
    size_t given = 0;
    while (given < 2 && 2 + given < args.size() && args[2 + given].rfind("-", 0) != 0) ++given;
    for (size_t i = given; i-- > 0;)
      args.insert(args.begin() + 2 + static_cast<std::ptrdiff_t>(i), i == 0 ? "--image1" : "--image2");
    for (size_t i = 0; i < given; ++i) {
      const std::string flag = i == 0 ? "--image1" : "--image2";
      const auto n = std::count_if(args.begin(), args.end(), [&](const std::string& s) {
        return s == flag || s.rfind(flag + "=", 0) == 0;
      });
      if (n > 1) {
        std::fprintf(stderr, "%s: match: image %zu given twice (as an argument and as %s)\n", kApp,
                     i + 1, flag.c_str());
        return 2;
      }
    }
  }
  std::vector<char*> av;
  for (std::string& s : args) av.push_back(s.data());
  return app::run_main(cli, static_cast<int>(av.size()), av.data(), [](const app::Args& a) {
    if (a.command() == "match") return match(a);
    if (a.command() == "eval") return eval(a);
    return train(a);
  });
}
