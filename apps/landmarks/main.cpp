// cvg-landmarks: unsupervised object landmarks by factorized spatial embeddings (Thewlis, Bilen
// and Vedaldi, ICCV 2017; Thewlis's thesis chapter 4). A CNN learns K landmark detectors from
// unlabelled images and randomly warped copies of them; the landmarks that emerge sit on the
// same object parts in every image, and a linear map from them predicts annotated points.
//   cvg-landmarks train            unsupervised training into the run folder (--out)
//   cvg-landmarks fit-regressor    bias-free linear regressors from N labelled images
//   cvg-landmarks eval             eval.json: regressed-point error (inter-ocular), mean-shape
//                                  baseline, equivariance error under held-out warps
//   cvg-landmarks show             landmarks.png and heatmaps.png of held-out images
// Model, losses and warps: models/landmarks/. Defaults are the quick CPU preset (synthetic
// faces at 48 x 48, half-width network); apps/landmarks/full.json is the thesis-scale setting.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cvg_git_commit.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "core/serialization.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/sample.h"
#include "kernels/shape.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/landmarks/data.h"
#include "models/landmarks/detector.h"
#include "models/landmarks/losses.h"
#include "models/landmarks/objective.h"
#include "models/landmarks/regressor.h"
#include "nn/app/app.h"
#include "nn/checkpoint.h"
#include "nn/data/loader.h"
#include "nn/optim.h"
#include "nn/viz/colormap.h"
#include "nn/viz/draw.h"
#include "nn/viz/png.h"

using namespace cvg;
using namespace cvg::landmarks;
namespace fs = std::filesystem;

namespace {

constexpr const char* kApp = "cvg-landmarks";

// ---- configuration shared by the commands -------------------------------------------------

// The run's training configuration, as train saved it (config.json and the checkpoint).
struct RunConfig {
  DataSpec data;
  DetectorOptions detector;
  int64_t image_size = 48, crop = 8;
  ObjectiveOptions objective;
};

RunConfig config_from_json(const nlohmann::json& j) {
  RunConfig c;
  c.image_size = j.value("image-size", int64_t{48});
  c.crop = j.value("crop", int64_t{8});
  c.data.source = j.value("data", std::string("synth"));
  c.data.data_dir = j.value("data-dir", std::string("data"));
  c.data.size = c.image_size + 2 * c.crop;
  c.data.face_scale = j.value("face-scale", 0.7);
  c.data.train_count = j.value("train-images", int64_t{20000});
  c.data.test_count = j.value("test-images", int64_t{1000});
  c.data.seed = j.value("data-seed", int64_t{0});
  c.detector.landmarks = j.value("landmarks", int64_t{10});
  c.detector.width = j.value("width", 0.5);
  c.objective.crop = c.crop;
  c.objective.gamma = j.value("gamma", 1.0);
  c.objective.cell = j.value("cell", int64_t{2});
  c.objective.align = j.value("loss", std::string("prob")) == "align";
  return c;
}

// The detector of a finished (or interrupted) run, in eval mode, and its configuration.
struct TrainedRun {
  RunConfig config;
  LandmarkData data;
  std::shared_ptr<Detector> detector;
};

// data_dir: the --data-dir of fit-regressor / eval / show, "" for the run's own. The images
// must be the ones the run trained on: a relative data-dir is resolved against the current
// folder, and from another folder synth would quietly draw procedural backgrounds instead of
// the photos (checked against the description train stored in the checkpoint).
TrainedRun open_run(const std::string& dir, Device device, const std::string& data_dir) {
  const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
  CVG_CHECK(fs::exists(ckpt), kApp, ": no checkpoint in ", dir, " (run `", kApp,
            " train --out ", dir, "` first)");
  const nn::CheckpointInfo info = nn::read_checkpoint_info(ckpt);
  CVG_CHECK(info.meta.app == kApp, kApp, ": ", ckpt, " was written by '", info.meta.app,
            "', not ", kApp);
  TrainedRun r;
  r.config = config_from_json(nlohmann::json::parse(info.meta.config));
  if (!data_dir.empty()) r.config.data.data_dir = data_dir;
  r.data = open_landmark_data(r.config.data);
  const auto trained_on = info.meta.extra.find("data");
  CVG_CHECK(trained_on == info.meta.extra.end() || trained_on->second == r.data.description, kApp,
            ": ", ckpt, " was trained on ", trained_on->second, ", but --data-dir '",
            r.config.data.data_dir, "' gives ", r.data.description, " from ",
            fs::current_path().string(), ": run from the folder train ran in, or pass --data-dir");
  r.config.detector.in_channels = r.data.channels;
  r.detector = std::make_shared<Detector>(r.config.detector);
  nn::load_checkpoint(ckpt, *r.detector, nullptr, /*restore_rng=*/false);
  r.detector->to(device);
  r.detector->eval();
  return r;
}

// Examples [begin, begin + count) of a dataset, stacked: images and (if any) targets.
data::Batch take(const data::Dataset& ds, int64_t begin, int64_t count) {
  CVG_CHECK(begin >= 0 && count >= 1 && begin + count <= ds.size(), kApp, ": asked for examples ",
            begin, "..", begin + count - 1, " of a dataset of ", ds.size());
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[static_cast<size_t>(i)] = begin + i;
  data::DataLoader loader(std::shared_ptr<const data::Dataset>(&ds, [](const data::Dataset*) {}),
                          {.batch_size = count});
  return loader.make_batch(order, 0, 0);
}

Tensor center_crop(const Tensor& images, int64_t crop) {
  const int64_t out = images.size(2) - 2 * crop;
  return narrow(narrow(images, 2, crop, out), 3, crop, out).contiguous();
}

// Detected landmarks of S x S images (centre-cropped to the detector's input): N x K x 2 in
// input pixels of the crop, float64 on the CPU. Runs in batches of 64 without autograd.
Tensor detect(Detector& det, const Tensor& images, int64_t crop, Device device) {
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < images.size(0); b += 64) {
    const int64_t n = std::min<int64_t>(64, images.size(0) - b);
    const Tensor x = center_crop(narrow(images, 0, b, n), crop).to(device);
    parts.push_back(output_to_input_pixels(soft_argmax(det.forward(x))).to(kCPU).to(DType::float64));
  }
  return cat(parts, 0);
}

// Annotated points of S x S images, moved into the centre crop's pixels.
Tensor points_in_crop(const Tensor& targets, int64_t crop) {
  return targets.to(DType::float64) - static_cast<double>(crop);
}

// ---- train ----------------------------------------------------------------------------------

int train(const app::Args& a) {
  const Device device = a.device();
  manual_seed(a.seed());
  RunConfig cfg = config_from_json(a.config());
  CVG_CHECK(cfg.image_size % 2 == 0, "--image-size must be even (stride-2 detector), got ",
            cfg.image_size);
  CVG_CHECK((cfg.image_size / 2) % cfg.objective.cell == 0, "--cell ", cfg.objective.cell,
            " must divide the output size ", cfg.image_size / 2);
  const int64_t steps = a.get_int("steps"), batch = a.get_int("batch-size"),
                every = a.get_int("checkpoint-every");
  const LandmarkData data = open_landmark_data(cfg.data);
  cfg.detector.in_channels = data.channels;

  auto model = std::make_shared<Detector>(cfg.detector);
  model->to(device);
  nn::Adam opt(model->parameters(),
               nn::AdamOptions{.lr = a.get_number("lr"), .weight_decay = a.get_number("weight-decay")});
  // The step after which the rate drops x0.1 (the step_size of the schedule).
  const auto drop_step = [&](int64_t of_steps) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::llround(a.get_number("lr-drop") *
                                                                  static_cast<double>(of_steps))));
  };
  const nn::StepLR schedule{a.get_number("lr"), drop_step(steps), 0.1};
  int64_t start = 0;
  if (!a.resume().empty()) {
    const nn::CheckpointInfo info = app::check_resume(a, kApp, {"checkpoint-every", "steps"});
    // Another --steps moves the drop of the learning rate. The run stays what a fresh run of the
    // new --steps would be while neither drop has happened by the checkpoint's step: a longer
    // run may be continued up to there, not after its rate dropped.
    const int64_t trained_for = app::saved_flag(info, "steps").value_or(nlohmann::json(steps)).get<int64_t>();
    if (trained_for != steps && info.step > std::min(drop_step(trained_for), drop_step(steps)))
      throw app::UsageError(str_cat("--resume: ", a.resume(), " was trained for --steps ", trained_for,
                                    " and its learning rate dropped after step ", drop_step(trained_for),
                                    "; at step ", info.step, " another --steps (", steps,
                                    ", drop after step ", drop_step(steps), ") would change the schedule "
                                    "mid-run: resume with --steps ", trained_for, ", or start a new run"));
    start = nn::load_checkpoint(a.resume(), *model, &opt).step;
  }
  CVG_CHECK(start < steps, "--resume: the checkpoint is at step ", start,
            ", nothing left for --steps ", steps);

  data::DataLoader loader(data.train, {.batch_size = batch, .shuffle = true, .seed = a.seed(),
                                       .drop_last = true, .prefetch = 2});
  CVG_CHECK(loader.num_batches() >= 1, "--batch-size ", batch, " exceeds the ",
            data.train->size(), " training images");

  std::optional<app::RunDir> run;
  if (!a.out().empty())
    run.emplace(a.out(), a.config(), app::resume_point(a.resume(), start),
                a.overwrite());
  nn::CheckpointMeta meta;
  meta.app = kApp;
  meta.config = a.config().dump();
  meta.extra["data"] = data.description;  // open_run checks that eval sees the same images
  meta.commit = CVG_GIT_COMMIT;

  std::printf("%s: K = %lld landmarks on %s, %s, batch %lld (+ its warped copies)\n%s", kApp,
              static_cast<long long>(cfg.detector.landmarks), device.str().c_str(),
              data.description.c_str(), static_cast<long long>(batch), model->summary().c_str());
  std::fflush(stdout);

  app::Progress progress = app::Progress::on_stdout(
      {.total = steps, .first_step = start, .items_per_step = batch});
  int64_t epoch = start / loader.num_batches();
  std::optional<data::Epoch> it(loader.epoch(epoch));
  // A resumed run continues inside its epoch: skip the batches already consumed.
  for (int64_t s = 0; s < start % loader.num_batches(); ++s) it->next();
  double last = NAN;
  for (int64_t step = start + 1; step <= steps; ++step) {
    std::optional<data::Batch> b = it->next();
    if (!b) {
      it.emplace(loader.epoch(++epoch));
      b = it->next();
    }
    model->train();
    opt.set_lr(schedule(step - 1));
    opt.zero_grad();
    const ObjectiveParts parts = training_objective(*model, b->input.to(device), cfg.objective);
    parts.total.backward();
    opt.step();
    last = parts.total.item();
    progress.update(step, last);
    if (run) {
      run->log({{"step", step}, {"loss", last}, {"equivariance", parts.equivariance.item()},
                {"diversity", parts.diversity.item()}, {"lr", opt.lr()}});
      if (step % every == 0 || step == steps || app::interrupted())
        nn::save_checkpoint(run->checkpoint_path(), *model, &opt, step, meta);
    }
    if (app::interrupted()) {
      progress.finish();
      if (run) run->plot({"loss", "equivariance", "diversity"});
      std::printf("interrupted at step %lld%s\n", static_cast<long long>(step),
                  run ? (std::string("; continue with: ") + kApp + " train " + run->resume_flags()).c_str()
                      : "");
      return app::kInterruptedExitCode;
    }
  }
  progress.finish();
  std::printf("final loss %.4f\n", last);
  if (run) {
    run->plot({"loss", "equivariance", "diversity"});
    std::printf("run folder %s: config.json, metrics.jsonl, loss.svg, checkpoint.safetensors\n"
                "next: %s fit-regressor --out %s && %s eval --out %s && %s show --out %s\n",
                run->dir().c_str(), kApp, run->dir().c_str(), kApp, run->dir().c_str(), kApp,
                run->dir().c_str());
  }
  return app::training_exit_code(last, kApp);
}

// ---- fit-regressor --------------------------------------------------------------------------

std::vector<int64_t> parse_counts(const std::string& list, int64_t all) {
  std::vector<int64_t> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "all") {
      out.push_back(all);
      continue;
    }
    try {
      size_t used = 0;
      const int64_t n = std::stoll(item, &used);
      if (used == item.size() && n >= 1 && n <= all) {
        out.push_back(n);
        continue;
      }
    } catch (const std::exception&) {
    }
    throw app::UsageError(str_cat("--labelled: expected a comma-separated list of counts in 1..",
                                  all, " or 'all', got '", item, "'"));
  }
  CVG_CHECK(!out.empty(), "--labelled: empty list");
  return out;
}

std::string regressor_path(const std::string& dir, int64_t n) {
  return (fs::path(dir) / ("regressor_" + std::to_string(n) + ".safetensors")).string();
}

// The identity of a run folder's detector, which each regressor records (nn::checkpoint_id). A
// regressor fitted before the folder was trained again (--overwrite, or a resume that went on)
// no longer fits the detector eval loads, and is left out.
std::string detector_id(const std::string& dir) {
  return nn::checkpoint_id((fs::path(dir) / "checkpoint.safetensors").string());
}

// Warped copies of the first m labelled images (augment per image), their detected landmarks
// and their annotated points moved by the same warps (warps.h, warp_points): more equations
// for the regressors that see only a few labelled faces, as the thesis trains its regressor
// "with the same warps as augmentation".
std::pair<Tensor, Tensor> augmented(const TrainedRun& r, const data::Batch& b, int64_t m,
                                    int64_t augment, Device device) {
  NoGradGuard no_grad;
  const int64_t size = b.input.size(2), crop = r.config.crop;
  const Tensor images = narrow(b.input, 0, 0, m);
  const Tensor rep = reshape(expand(unsqueeze(images, 1), {m, augment, images.size(1), size, size}),
                             {m * augment, images.size(1), size, size});
  const Tensor g = warp_grid(random_tps_params(m * augment, r.config.objective.warps, 1.0, kCPU),
                             size, r.config.objective.warps.control_grid);
  const Tensor warped = grid_sample(rep, g, GridSampleMode::Bilinear, GridPadding::Border);
  const Tensor pts = reshape(expand(unsqueeze(points_in_crop(narrow(b.target, 0, 0, m), crop), 1),
                                    {m, augment, b.target.size(1), 2}),
                             {m * augment, b.target.size(1), 2});
  return {detect(*r.detector, warped, crop, device),
          warp_points(grid_to_cropped_pixels(g, size, crop), pts)};
}

int fit_regressor(const app::Args& a) {
  const TrainedRun r = open_run(a.out(), a.device(), a.get_string("data-dir"));
  const std::string id = detector_id(a.out());
  CVG_CHECK(r.data.labelled, kApp, " fit-regressor: the run's data (", r.config.data.source,
            ") has no annotated points; only synth is labelled");
  manual_seed(a.seed());
  const int64_t pool = std::min(a.get_int("labelled-images"), r.data.train->size());
  const int64_t augment = a.get_int("augment"), augment_below = a.get_int("augment-below");
  const std::vector<int64_t> counts = parse_counts(a.get_string("labelled"), pool);
  const data::Batch b = take(*r.data.train, 0, pool);
  const Tensor detected = detect(*r.detector, b.input, r.config.crop, a.device());
  const Tensor points = points_in_crop(b.target, r.config.crop);
  // The augmented copies of the first m images serve every count below augment_below.
  int64_t m = 0;
  for (const int64_t n : counts)
    if (n < augment_below) m = std::max(m, n);
  Tensor aug_x, aug_y;
  if (augment > 0 && m > 0) std::tie(aug_x, aug_y) = augmented(r, b, m, augment, a.device());
  for (const int64_t n : counts) {
    Tensor x = narrow(detected, 0, 0, n), y = narrow(points, 0, 0, n);
    if (aug_x.defined() && n < augment_below) {
      x = cat({x, narrow(aug_x, 0, 0, n * augment)}, 0);
      y = cat({y, narrow(aug_y, 0, 0, n * augment)}, 0);
    }
    const Tensor w = fit_linear_regressor(x, y, a.get_number("ridge"));
    const double err = iod_error(apply_regressor(w, narrow(detected, 0, 0, n)),
                                 narrow(points, 0, 0, n), kLeftEye, kRightEye);
    save_safetensors(regressor_path(a.out(), n), {{"W", w.to(DType::float32)}},
                     {{"labelled_images", std::to_string(n)}, {"app", kApp}, {"detector", id}});
    const std::string with = x.size(0) > n ? str_cat(" + ", x.size(0) - n, " warped copies") : "";
    std::printf("regressor from %lld labelled images%s: training error %.2f%% of the "
                "inter-ocular distance -> %s\n",
                static_cast<long long>(n), with.c_str(), 100 * err, regressor_path(a.out(), n).c_str());
  }
  return 0;
}

// ---- eval -----------------------------------------------------------------------------------

int eval(const app::Args& a) {
  const Device device = a.device();
  const TrainedRun r = open_run(a.out(), device, a.get_string("data-dir"));
  const int64_t crop = r.config.crop;
  nlohmann::json out = {{"app", kApp}, {"run", a.out()}, {"landmarks", r.config.detector.landmarks},
                        {"data", r.data.description}};
  // Equivariance under held-out warps: fresh TPS pairs of test images (the same draws on every
  // eval, from --seed), error in output pixels.
  {
    manual_seed(a.seed());
    const int64_t n = std::min(a.get_int("warp-pairs"), r.data.test->size());
    const data::Batch b = take(*r.data.test, 0, n);
    NoGradGuard no_grad;
    // Per landmark: the equivariance error and the spread of its maps (a diffuse map's
    // soft-argmax sits near the image centre whatever the warp, so it shows which landmarks
    // carry the error).
    TensorList errors, spreads;
    for (int64_t i = 0; i < n; i += 64) {
      const int64_t m = std::min<int64_t>(64, n - i);
      const Triplet t = make_triplets(narrow(b.input, 0, i, m).to(device), crop, r.config.objective.warps);
      const Tensor p = spatial_softmax(r.detector->forward(t.x));
      const Tensor p2 = spatial_softmax(r.detector->forward(t.x2));
      errors.push_back(equivariance_errors(p, p2, t.grid).to(kCPU));
      spreads.push_back(map_spread(p).to(kCPU));
    }
    const Tensor err = cat(errors, 0), spread = cat(spreads, 0);
    const int64_t seen = err.size(0);
    out["equivariance_error_output_px"] = mean(err).item();
    {
      std::vector<double> all = err.contiguous().to_vector<double>();
      std::sort(all.begin(), all.end());
      out["equivariance_error_median_px"] = all[all.size() / 2];
      out["equivariance_error_p90_px"] = all[all.size() * 9 / 10];
    }
    out["equivariance_error_per_landmark"] = mean(err, {0}).to_vector<double>();
    out["map_spread_per_landmark_output_px"] = mean(spread, {0}).to_vector<double>();
    out["warp_pairs"] = seen;
  }
  if (r.data.labelled) {
    const int64_t n = std::min(a.get_int("test-images"), r.data.test->size());
    const data::Batch test = take(*r.data.test, 0, n);
    const Tensor truth = points_in_crop(test.target, crop);
    const Tensor detected = detect(*r.detector, test.input, crop, device);
    // The mean-shape baseline, from the labelled pool the regressors were fitted on.
    const int64_t pool = std::min<int64_t>(1000, r.data.train->size());
    const Tensor shape = mean_shape(points_in_crop(take(*r.data.train, 0, pool).target, crop));
    out["test_images"] = n;
    out["mean_shape_error_iod"] = iod_error(expand(shape, truth.shape()).contiguous(), truth,
                                            kLeftEye, kRightEye);
    nlohmann::json regs = nlohmann::json::array();
    // regressor_<N>.safetensors fitted to this checkpoint (fit-regressor's names; other files
    // are not regressors, and ones fitted to an earlier detector are left out, with a note).
    const std::string id = detector_id(a.out());
    std::vector<std::pair<int64_t, SafetensorsFile>> found;
    std::vector<std::string> stale;
    for (const auto& e : fs::directory_iterator(a.out())) {
      const std::string name = e.path().filename().string(), stem = e.path().stem().string();
      if (name.rfind("regressor_", 0) != 0 || e.path().extension() != ".safetensors") continue;
      const std::string digits = stem.substr(10);
      if (digits.empty() || digits.size() > 9 ||
          digits.find_first_not_of("0123456789") != std::string::npos)
        continue;
      SafetensorsFile f = load_safetensors(e.path().string());
      auto d = f.metadata.find("detector");
      if (d == f.metadata.end() || d->second != id)
        stale.push_back(name);
      else
        found.emplace_back(std::stoll(digits), std::move(f));
    }
    std::sort(found.begin(), found.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    std::sort(stale.begin(), stale.end());
    std::string left_out;
    for (const std::string& n : stale) left_out += (left_out.empty() ? "" : ", ") + n;
    CVG_CHECK(!found.empty(), kApp, " eval: no regressor fitted to the checkpoint in ", a.out(),
              stale.empty() ? "" : " (" + left_out + " belong to an earlier detector)",
              "; run `", kApp, " fit-regressor --out ", a.out(), "` first");
    if (!stale.empty())
      std::fprintf(stderr, "%s eval: left out %s, fitted to an earlier detector in %s\n", kApp,
                   left_out.c_str(), a.out().c_str());
    for (const auto& [count, file] : found) {
      const Tensor w = file.at("W").to(DType::float64);
      regs.push_back({{"labelled_images", count},
                      {"error_iod", iod_error(apply_regressor(w, detected), truth, kLeftEye, kRightEye)}});
    }
    out["regressors"] = regs;
  }
  const std::string path = (fs::path(a.out()) / "eval.json").string();
  std::ofstream(path) << out.dump(2) << "\n";
  std::printf("%s\nwritten to %s\n", out.dump(2).c_str(), path.c_str());
  return 0;
}

// ---- show -----------------------------------------------------------------------------------

// Landmark r's colour: the 10-colour palette, then evenly spaced hues for larger K.
viz::Color landmark_color(int64_t r, int64_t k) {
  if (k <= 10) return viz::palette(r);
  const double h = 6.0 * static_cast<double>(r) / static_cast<double>(k);
  const double f = h - std::floor(h);
  auto c = [](double v) { return static_cast<uint8_t>(std::lround(40 + 215 * v)); };
  switch (static_cast<int>(h) % 6) {
    case 0: return {c(1), c(f), c(0)};
    case 1: return {c(1 - f), c(1), c(0)};
    case 2: return {c(0), c(1), c(f)};
    case 3: return {c(0), c(1 - f), c(1)};
    case 4: return {c(f), c(0), c(1)};
    default: return {c(1), c(0), c(1 - f)};
  }
}

// Nearest-neighbour enlargement of a C x H x W float image.
Tensor zoom(const Tensor& chw, int64_t z) {
  const int64_t c = chw.size(0), h = chw.size(1), w = chw.size(2);
  return reshape(expand(reshape(chw, {c, h, 1, w, 1}), {c, h, z, w, z}), {c, h * z, w * z}).contiguous();
}

int show(const app::Args& a) {
  const Device device = a.device();
  const TrainedRun r = open_run(a.out(), device, a.get_string("data-dir"));
  const int64_t n = std::min(a.get_int("count"), r.data.test->size()), z = a.get_int("zoom");
  const int64_t k = r.config.detector.landmarks, crop = r.config.crop;
  const data::Batch b = take(*r.data.test, 0, n);
  const Tensor images = center_crop(b.input, crop);
  Tensor maps;
  {
    NoGradGuard no_grad;
    maps = spatial_softmax(r.detector->forward(images.to(device))).to(kCPU);
  }
  const Tensor detected = detect(*r.detector, b.input, crop, device);
  TensorList drawn, heat;
  for (int64_t i = 0; i < n; ++i) {
    const Tensor canvas = viz::to_rgb(zoom(data::row(images, i), z));
    const std::vector<double> pts = data::row(detected, i).contiguous().to_vector<double>();
    for (int64_t j = 0; j < k; ++j) {
      // Pixel centre c of the original sits at (c + 0.5) z - 0.5 in the enlarged image.
      const double x = (pts[2 * j] + 0.5) * static_cast<double>(z) - 0.5;
      const double y = (pts[2 * j + 1] + 0.5) * static_cast<double>(z) - 0.5;
      viz::draw_point(canvas, x, y, landmark_color(j, k), std::max(2, static_cast<int>(z / 2)));
    }
    drawn.push_back(canvas);
    // All K maps at once: the maximum over landmarks, on the image.
    const Tensor top = amax(data::row(maps, i), {0});
    const Tensor hm = viz::heatmap(select(zoom(unsqueeze(top, 0), 2 * z), 0, 0));
    heat.push_back(viz::blend(viz::to_rgb(zoom(data::row(images, i), z)), hm, 0.6));
  }
  const std::string pl = (fs::path(a.out()) / "landmarks.png").string();
  const std::string ph = (fs::path(a.out()) / "heatmaps.png").string();
  viz::write_png(pl, viz::make_grid(drawn));
  viz::write_png(ph, viz::make_grid(heat));
  std::printf("%lld held-out images with K = %lld landmarks (the same colour is the same landmark "
              "in every image): %s\nthe landmarks' probability maps (max over landmarks): %s\n",
              static_cast<long long>(n), static_cast<long long>(k), pl.c_str(), ph.c_str());
  return 0;
}

void data_flags(app::Command& c) {
  c.flag_string("data", "synth", "image source: synth, folder:PATH, fashion-mnist:CLASS, mnist:DIGIT")
      .flag_string("data-dir", "data", "where scripts/fetch-data put the datasets").metavar("DIR")
      .flag_int("data-seed", 0, "seed of the synthetic faces (train; test uses a derived seed)")
      .at_least(0)
      .flag_int("train-images", 20000, "training images (synth: generated on the fly)").at_least(1)
      .flag_int("test-images", 1000, "held-out images (synth; folder: and mnist: hold out the last "
                "tenth of what they load, fashion-mnist: its test file)")
      .at_least(1)
      .flag_int("image-size", 48, "detector input size (pixels, even)").at_least(8).at_most(1024)
      .flag_int("crop", 8, "border cut after warping; images are rendered at image-size + 2 crop")
      .at_least(0).at_most(256)
      .flag_number("face-scale", 0.7, "synth: largest head height, as a fraction of the render")
      .above(0).at_most(1.5);
}

// --data-dir of the commands that open a trained run (open_run).
app::Command& run_data_flag(app::Command& c) {
  return c.flag_string("data-dir", "",
                       "where the run's data lives, if not where train found it (default: the "
                       "run's --data-dir)")
      .metavar("DIR");
}

}  // namespace

int main(int argc, char** argv) {
  app::Cli cli(kApp,
               "Unsupervised object landmarks from image warps (Thewlis et al. 2017): train a detector "
               "of K landmarks without labels, regress annotated points from them, evaluate, look.");
  cli.set_default_command("train");
  cli.set_default_seed(1);
  cli.set_default_out("runs/landmarks");
  app::Command& t = cli.command("train", "unsupervised training of the landmark detector");
  t.resumable().stops_on_interrupt();  // the step loop polls app::interrupted()
  data_flags(t);
  t.flag_int("landmarks", 10, "K, the number of landmarks").at_least(1).at_most(512)
      .flag_number("width", 0.5, "filters relative to the thesis's SIMPLE net (20, 48, 64, 80, 256)")
      .above(0).at_most(8)
      .flag_int("steps", 1500, "optimizer steps").at_least(1)
      .flag_int("batch-size", 16, "images per step (each with its warped copy)").at_least(1)
      .flag_number("lr", 1e-3, "Adam learning rate").above(0)
      .flag_number("lr-drop", 0.8, "fraction of the steps after which the rate drops x0.1").above(0).at_most(1)
      .flag_number("weight-decay", 5e-4, "L2 weight decay (the thesis's lambda)").at_least(0)
      .flag_number("gamma", 1.0, "weight of the diversity loss").at_least(0)
      .flag_int("cell", 2, "m, the diversity loss's sum-pooling cell (output pixels)").at_least(1)
      .flag_string("loss", "prob", "prob: probability-map loss (eq. 6); align: soft-argmax loss (eq. 5)")
      .one_of({"prob", "align"})
      .flag_int("checkpoint-every", 250, "steps between checkpoints").at_least(1);
  run_data_flag(cli.command("fit-regressor", "fit linear maps from the landmarks to the annotated points"))
      .flag_string("labelled", "1,5,10,20,all", "labelled-image counts, one regressor each")
      .flag_int("labelled-images", 1000, "the labelled pool ('all')").at_least(1)
      .flag_int("augment", 20, "warped copies per labelled image (0: none)").at_least(0).at_most(1000)
      .flag_int("augment-below", 100,
                "augment only the regressors from fewer labelled images (the warps are drawn "
                "for the largest such count of --labelled: give the same list to reproduce a "
                "regressor)")
      .at_least(0)
      .flag_number("ridge", 1e-4, "ridge regularisation (relative to the data's scale)").above(0);
  run_data_flag(cli.command("eval", "write eval.json: regression error, mean-shape baseline, equivariance error"))
      .flag_int("test-images", 1000, "held-out images for the regression error").at_least(1)
      .flag_int("warp-pairs", 256, "held-out warp pairs for the equivariance error").at_least(1);
  run_data_flag(cli.command("show", "draw the landmarks and their heatmaps on held-out images"))
      .flag_int("count", 16, "images to draw").at_least(1).at_most(256)
      .flag_int("zoom", 4, "enlargement").at_least(1).at_most(16);
  return app::run_main(cli, argc, argv, [](const app::Args& a) {
    if (a.command() == "fit-regressor") return fit_regressor(a);
    if (a.command() == "eval") return eval(a);
    if (a.command() == "show") return show(a);
    return train(a);
  });
}
