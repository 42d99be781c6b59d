// GPU benchmark of one training step of the landmarks app (the target: batch 32,
// 70 x 70, K = 30, full-width SIMPLE net, against the same step in PyTorch on the same GPU:
// bench/torch_ops/landmarks.py). Timed with CUDA events around the whole step (warps, forward,
// losses, backward, Adam), including the host work between launches. Rows: the default
// convolution backend (in builds with cuDNN its timed search; the label names it) against
// PyTorch's default (cuDNN's heuristics: torch.backends.cudnn.benchmark off), what each side
// runs unasked; the handwritten v2 ("_v2"); and, with cuDNN, the two like-for-like pairs:
// heuristics on both sides ("_cudnn") and timed search on both ("_cudnnfind": PyTorch with
// cudnn.benchmark on, set by bench/compare_torch.py for every "cudnnfind" row).
#include <benchmark/benchmark.h>

#include <optional>

#include "bench/gpu_timer.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/unary.h"
#include "models/landmarks/objective.h"
#include "nn/optim.h"

namespace {

using namespace cvg;

// backend: a conv backend for ConvBackendGuard, or -1 for the default.
void bm_step(benchmark::State& state, int64_t n, int64_t k, int64_t size, int backend) {
  std::optional<ConvBackendGuard> guard;
  if (backend >= 0) guard.emplace(backend);
  state.SetLabel(str_cat("conv: ", conv_cuda_version_name(conv_cuda_version())));
  manual_seed(5);
  landmarks::Detector det(landmarks::DetectorOptions{.landmarks = k, .in_channels = 3, .width = 1.0});
  det.to(kCUDA);
  nn::Adam opt(det.parameters(), nn::AdamOptions{.lr = 1e-3, .weight_decay = 5e-4});
  landmarks::ObjectiveOptions o;
  o.crop = size == 70 ? 15 : std::max<int64_t>(1, size / 6);
  o.cell = (size / 2) % 2 == 0 ? 2 : 5;  // must divide the output size (35 at 70 px)
  const Tensor images = rand({n, 3, size + 2 * o.crop, size + 2 * o.crop}).to(kCUDA);
  bench::time_gpu(state, [&] {
    opt.zero_grad();
    const landmarks::ObjectiveParts parts = landmarks::training_objective(det, images, o);
    parts.total.backward();
    opt.step();
  }, 0, 0);
}

const bool registered = [] {
  bench::reg_gpu("cuda/landmarks_step_k30/32x3x70x70",
                 [](benchmark::State& s) { bm_step(s, 32, 30, 70, -1); });
  bench::reg_gpu("cuda/landmarks_step_k30_v2/32x3x70x70",
                 [](benchmark::State& s) { bm_step(s, 32, 30, 70, 2); });
  if (conv_cudnn_built()) {
    bench::reg_gpu("cuda/landmarks_step_k30_cudnn/32x3x70x70",
                   [](benchmark::State& s) { bm_step(s, 32, 30, 70, kConvCudnn); });
    bench::reg_gpu("cuda/landmarks_step_k30_cudnnfind/32x3x70x70",
                   [](benchmark::State& s) { bm_step(s, 32, 30, 70, kConvCudnnFind); });
  }
  return true;
}();

}  // namespace
