// Resuming a run on the CPU continues it bit for bit: a tiny training run stopped after 5 of 10
// steps, checkpointed, loaded into freshly built model and optimizer objects (with the global
// generator moved elsewhere in between) and continued, gives exactly the losses and parameters
// of the run that was never interrupted.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>

#include "kernels/loss.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
namespace fs = std::filesystem;

namespace {

constexpr int kSteps = 10, kStop = 5;

std::shared_ptr<nn::Sequential> build_model(DType dtype) {
  auto m = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(4, 16), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(16, 3)});
  m->to(dtype);
  return m;
}

using MakeOptimizer = std::function<std::unique_ptr<nn::Optimizer>(std::vector<Tensor>)>;

// One step on a batch drawn from the global Philox generator: the batch sequence itself depends
// on the generator state, which the checkpoint must therefore restore.
double train_step(nn::Module& model, nn::Optimizer& opt, DType dtype) {
  const TensorOptions o = TensorOptions{}.with_dtype(dtype);
  const Tensor x = randn({8, 4}, o);
  const Tensor target = rand({8, 3}, o);
  opt.zero_grad();
  const Tensor loss = mse_loss(model.forward(x), target);
  loss.backward();
  opt.step();
  return loss.item();
}

struct Run {
  std::vector<double> losses;
  nn::StateDict params;
  nn::StateDict optim;
};

Run uninterrupted(const MakeOptimizer& make, DType dtype) {
  manual_seed(2024);
  auto model = build_model(dtype);
  auto opt = make(model->parameters());
  Run r;
  for (int step = 1; step <= kSteps; ++step) r.losses.push_back(train_step(*model, *opt, dtype));
  r.params = model->state_dict();
  r.optim = opt->state_dict();
  return r;
}

Run interrupted(const MakeOptimizer& make, DType dtype, const std::string& path) {
  Run r;
  {
    manual_seed(2024);
    auto model = build_model(dtype);
    auto opt = make(model->parameters());
    for (int step = 1; step <= kStop; ++step) r.losses.push_back(train_step(*model, *opt, dtype));
    nn::save_checkpoint(path, *model, opt.get(), kStop);
  }  // the first process ends: model and optimizer are gone
  // A new process: another seed, different initial weights, and a generator that has moved on.
  manual_seed(31337);
  auto model = build_model(dtype);
  auto opt = make(model->parameters());
  const nn::CheckpointInfo info = nn::load_checkpoint(path, *model, opt.get());
  REQUIRE(info.step == kStop);
  for (int64_t step = info.step + 1; step <= kSteps; ++step)
    r.losses.push_back(train_step(*model, *opt, dtype));
  r.params = model->state_dict();
  r.optim = opt->state_dict();
  return r;
}

void check_identical(const Run& a, const Run& b) {
  REQUIRE(a.losses.size() == b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    INFO("loss of step " << i + 1);
    CHECK(a.losses[i] == b.losses[i]);  // exactly, not approximately
  }
  REQUIRE(a.params.size() == b.params.size());
  for (auto& [name, t] : a.params) {
    INFO("parameter " << name);
    REQUIRE(b.params.count(name));
    CHECK(max_abs_diff(t, b.params.at(name)) == 0);
  }
  REQUIRE(a.optim.size() == b.optim.size());
  for (auto& [name, t] : a.optim) {
    INFO("optimizer state " << name);
    REQUIRE(b.optim.count(name));
    CHECK(max_abs_diff(t.to(DType::float64), b.optim.at(name).to(DType::float64)) == 0);
  }
}

}  // namespace

TEST_CASE("resume: an interrupted run continues bit for bit", "[nn][checkpoint][resume]") {
  const std::vector<std::pair<std::string, MakeOptimizer>> optimizers = {
      {"Adam", [](std::vector<Tensor> p) -> std::unique_ptr<nn::Optimizer> {
         return std::make_unique<nn::Adam>(std::move(p), nn::AdamOptions{.lr = 0.01});
       }},
      {"AdamW", [](std::vector<Tensor> p) -> std::unique_ptr<nn::Optimizer> {
         return std::make_unique<nn::AdamW>(std::move(p), nn::AdamOptions{.lr = 0.01, .weight_decay = 0.01});
       }},
      {"SGD momentum nesterov", [](std::vector<Tensor> p) -> std::unique_ptr<nn::Optimizer> {
         return std::make_unique<nn::SGD>(std::move(p),
                                          nn::SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
       }},
      {"RMSprop momentum", [](std::vector<Tensor> p) -> std::unique_ptr<nn::Optimizer> {
         return std::make_unique<nn::RMSprop>(std::move(p), nn::RmspropOptions{.lr = 0.01, .momentum = 0.5});
       }},
  };
  TempDir dir;
  for (DType dtype : {DType::float32, DType::float64}) {
    for (auto& [name, make] : optimizers) {
      SECTION(name + " " + dtype_name(dtype)) {
        const Run a = uninterrupted(make, dtype);
        const Run b = interrupted(make, dtype, dir.file("ckpt.safetensors"));
        // The loss must actually move, or matching would prove little.
        CHECK(a.losses.front() != a.losses.back());
        check_identical(a, b);
      }
    }
  }
}

TEST_CASE("resume: without restoring the generator the run diverges", "[nn][checkpoint][resume]") {
  // The control experiment: the bit-identical match above depends on the generator state in
  // the checkpoint (the batches are drawn from it), not on luck.
  auto make = [](std::vector<Tensor> p) -> std::unique_ptr<nn::Optimizer> {
    return std::make_unique<nn::Adam>(std::move(p), nn::AdamOptions{.lr = 0.01});
  };
  const Run a = uninterrupted(make, DType::float32);
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  {
    manual_seed(2024);
    auto model = build_model(DType::float32);
    auto opt = make(model->parameters());
    for (int step = 1; step <= kStop; ++step) train_step(*model, *opt, DType::float32);
    nn::save_checkpoint(path, *model, opt.get(), kStop);
  }
  manual_seed(31337);
  auto model = build_model(DType::float32);
  auto opt = make(model->parameters());
  nn::load_checkpoint(path, *model, opt.get(), /*restore_rng=*/false);
  const double loss6 = train_step(*model, *opt, DType::float32);
  CHECK(loss6 != a.losses[kStop]);
}
