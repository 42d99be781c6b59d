// CPU benchmark of one training step of the landmarks app (models/landmarks/objective.h):
// warps, forward of the SIMPLE detector over the image pair, losses, backward, Adam. The same
// step in PyTorch: bench/torch_ops/landmarks.py (compare_torch.py times both on the same
// shapes). Shapes: batch 16, 70 x 70 RGB, K = 30, full-width net (the CPU target), and
// the app's quick preset (batch 16, 48 x 48, K = 10, but full width here for comparability).
#include <benchmark/benchmark.h>

#include "core/rng.h"
#include "kernels/unary.h"
#include "models/landmarks/objective.h"
#include "nn/optim.h"

namespace {

using namespace cvg;

// crop 15 at 70 px (the thesis code's CelebA setting), a sixth of the size otherwise.
int64_t crop_for(int64_t size) { return size == 70 ? 15 : std::max<int64_t>(1, size / 6); }
// The diversity cell must divide the output size: 2, or 5 for the 35 x 35 maps of 70 px inputs.
int64_t cell_for(int64_t size) { return (size / 2) % 2 == 0 ? 2 : 5; }

void bm_landmarks_step(benchmark::State& state, int64_t n, int64_t k, int64_t size, Device device) {
  manual_seed(5);
  landmarks::Detector det(landmarks::DetectorOptions{.landmarks = k, .in_channels = 3, .width = 1.0});
  det.to(device);
  nn::Adam opt(det.parameters(), nn::AdamOptions{.lr = 1e-3, .weight_decay = 5e-4});
  landmarks::ObjectiveOptions o;
  o.crop = crop_for(size);
  o.cell = cell_for(size);
  const Tensor images = rand({n, 3, size + 2 * o.crop, size + 2 * o.crop}).to(device);
  for (auto _ : state) {
    opt.zero_grad();
    const landmarks::ObjectiveParts parts = landmarks::training_objective(det, images, o);
    parts.total.backward();
    opt.step();
    benchmark::DoNotOptimize(parts.total.item());
  }
}

void register_all() {
  for (auto [n, k, size] : {std::array<int64_t, 3>{16, 30, 70}, std::array<int64_t, 3>{16, 10, 48}}) {
    const std::string name = "cpu/landmarks_step_k" + std::to_string(k) + "/" + std::to_string(n) +
                             "x3x" + std::to_string(size) + "x" + std::to_string(size);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
      bm_landmarks_step(s, n, k, size, kCPU);
    })->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
  }
}

const bool registered = (register_all(), true);

}  // namespace
