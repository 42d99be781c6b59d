// cvg-demo: a tiny MLP learns to tell three interleaved spirals apart, in seconds.
// It is the smallest complete use of the library: tensors, a Module, cross_entropy, backward()
// and an optimizer step, inside the conventions every app follows (nn/app): flags and --config,
// a run folder with config.json, metrics.jsonl and loss.svg, a progress display, checkpoints,
// --resume, and Ctrl-C stopping after a checkpoint. The loss falls from ~1.1 (chance for three
// classes) towards 0 as the network carves the plane into spiral arms. The exit code is 0, or 1
// (with a message) when training diverged: the loss is not finite.
//   cvg-demo                          train with the defaults into runs/demo
//   cvg-demo --steps 2000 --lr 0.003  flags override the defaults (and --config FILE.json)
//   cvg-demo --resume runs/demo/checkpoint.safetensors --steps 800   continue a run
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "cvg_git_commit.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"
#include "nn/app/app.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/optim.h"

using namespace cvg;

namespace {

// Three spirals: class c's k-th point at radius r = k/n, angle 4r + 2 pi c / 3, plus noise.
void spirals(int64_t n, Tensor& x, Tensor& y) {
  std::vector<double> xs, noise = randn({3 * n * 2}, TensorOptions{}.with_dtype(DType::float64))
                                      .to_vector<double>();
  std::vector<int64_t> ys;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t k = 0; k < n; ++k) {
      const double r = static_cast<double>(k) / static_cast<double>(n);
      const double t = 4.0 * r + 2.0 * M_PI * static_cast<double>(c) / 3.0;
      const size_t i = static_cast<size_t>(c * n + k);
      xs.push_back(r * std::sin(t) + 0.03 * noise[2 * i]);
      xs.push_back(r * std::cos(t) + 0.03 * noise[2 * i + 1]);
      ys.push_back(c);
    }
  x = from_vector(xs, {3 * n, 2});
  y = from_vector(ys, {3 * n}, TensorOptions{}.with_dtype(DType::int64));
}

int train(const app::Args& a) {
  const int64_t steps = a.get_int("steps"), points = a.get_int("points"),
                hidden = a.get_int("hidden"), every = a.get_int("checkpoint-every");
  const Device device = a.device();

  // Everything that can fail on bad input happens before the run folder exists.
  manual_seed(a.seed());
  Tensor x, y;
  spirals(points, x, y);
  x = x.to(device);
  y = y.to(device);
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(2, hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(hidden, hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(hidden, 3)});
  model->to(device);
  nn::Adam opt(model->parameters(), nn::AdamOptions{.lr = a.get_number("lr")});
  int64_t start = 0;
  if (!a.resume().empty()) {
    app::check_resume(a, "cvg-demo", {"checkpoint-every", "steps"});  // constant learning rate
    start = nn::load_checkpoint(a.resume(), *model, &opt).step;
  }
  CVG_CHECK(start < steps, "--resume: the checkpoint is at step ", start, ", nothing left for --steps ",
            steps);

  std::optional<app::RunDir> run;
  if (!a.out().empty())
    run.emplace(a.out(), a.config(), app::resume_point(a.resume(), start),
                a.overwrite());
  nn::CheckpointMeta meta;
  meta.app = "cvg-demo";
  meta.config = a.config().dump();
  meta.commit = CVG_GIT_COMMIT;

  const std::string resumed = start > 0 ? ", resumed at step " + std::to_string(start) : "";
  std::printf("cvg-demo: %lld points in 3 spirals on %s%s, model:\n%s",
              static_cast<long long>(3 * points), device.str().c_str(), resumed.c_str(),
              model->summary().c_str());
  std::fflush(stdout);
  app::Progress progress = app::Progress::on_stdout(
      {.total = steps, .first_step = start, .items_per_step = 3 * points});
  double first = NAN, last = NAN;
  for (int64_t step = start + 1; step <= steps; ++step) {
    opt.zero_grad();
    const Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    last = loss.item();
    if (std::isnan(first)) first = last;
    progress.update(step, last);
    if (run) {
      run->log({{"step", step}, {"loss", last}});
      if (step % every == 0 || step == steps || app::interrupted())
        nn::save_checkpoint(run->checkpoint_path(), *model, &opt, step, meta);
    }
    if (app::interrupted()) {
      progress.finish();
      if (run) {
        run->plot();
        std::printf("interrupted at step %lld; continue with: cvg-demo train %s\n",
                    static_cast<long long>(step), run->resume_flags().c_str());
      } else {
        std::printf("interrupted at step %lld (no --out, so no checkpoint)\n",
                    static_cast<long long>(step));
      }
      return app::kInterruptedExitCode;
    }
  }
  progress.finish();

  const Tensor pred = argmax(model->forward(x), 1);
  const double acc = mean(eq(pred, y).to(DType::float32)).item();
  std::printf("loss %.4f -> %.4f, training accuracy %.1f%%\n", first, last, 100 * acc);
  if (run) {
    run->plot();
    std::printf("run folder %s: config.json, metrics.jsonl, loss.svg, checkpoint.safetensors\n",
                run->dir().c_str());
  }
  return app::training_exit_code(last, "cvg-demo");
}

}  // namespace

int main(int argc, char** argv) {
  app::Cli cli("cvg-demo", "Trains a 2-hidden-layer MLP on three spirals with Adam and prints the loss.");
  cli.set_default_command("train");
  cli.set_default_seed(1);
  cli.set_default_out("runs/demo");
  cli.command("train", "train the MLP")
      .resumable()
      .stops_on_interrupt()
      .flag_int("steps", 400, "optimizer steps").at_least(1)
      .flag_int("points", 150, "points per spiral").at_least(1).at_most(1000000)
      .flag_int("hidden", 64, "hidden units per layer").at_least(1).at_most(65536)
      .flag_number("lr", 0.01, "Adam learning rate").above(0)
      .flag_int("checkpoint-every", 100, "steps between checkpoints").at_least(1);
  return app::run_main(cli, argc, argv, train);
}
