// The [cuda] parity of batch_norm's training step beyond the op registry's samples (which check
// y and the gradients): the running statistics, which the GPU updates in one fused kernel
// (norm_running_update_cuda), against the CPU's update, for a channel count that takes the
// split statistics path (20 channels, kernels/norm_cuda.cu) and for non-contiguous running
// buffers (updated through a copy and written back).
#include <catch2/catch.hpp>

#include "core/rng.h"
#include "kernels/norm.h"
#include "kernels/view.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "tests/support/test_utils.h"

using namespace cvg;

TEST_CASE("batch_norm: CUDA running statistics match the CPU's", "[cuda][norm]") {
  manual_seed(8);
  const Tensor x = randn({16, 20, 9, 7}) * 1.5 + 0.5;
  for (const bool strided : {false, true}) {
    INFO((strided ? "running buffers: every other element of a 40-vector" : "contiguous"));
    auto buffers = [&](Device dev) {
      // Every other element of a 40-vector (stride 2), or a plain 20-vector.
      const Tensor rm = strided ? zeros({40}).to(dev) : zeros({20}).to(dev);
      const Tensor rv = strided ? ones({40}).to(dev) : ones({20}).to(dev);
      return strided ? std::pair{slice(rm, 0, 0, 40, 2), slice(rv, 0, 0, 40, 2)}
                     : std::pair{rm, rv};
    };
    auto [rm_c, rv_c] = buffers(kCPU);
    auto [rm_g, rv_g] = buffers(kCUDA);
    for (int step = 0; step < 3; ++step) {
      const Tensor xs = x * (1.0 + 0.25 * step);
      const Tensor yc = batch_norm(xs, Tensor(), Tensor(), rm_c, rv_c, true, 0.1);
      const Tensor yg = batch_norm(xs.to(kCUDA), Tensor(), Tensor(), rm_g, rv_g, true, 0.1);
      CHECK(max_abs_diff(yg.to(kCPU), yc) < 1e-4);
    }
    CHECK(max_abs_diff(rm_g.to(kCPU), rm_c) < 1e-5);
    CHECK(max_abs_diff(rv_g.to(kCPU), rv_c) < 1e-4);
    // Three steps moved the running mean off its initial zeros.
    CHECK(amax(abs(rm_c)).item() > 0.05);
  }
}
