// The [cuda] parity of the correlation forward and of its gradient in the descriptors beyond the
// op registry's samples. Forward: both versions (v2, the tiled kernel; v1, one thread per score)
// at a shape of the app's kind (64 channels, stride 8, a window of 41 x 41 over a target larger
// than one tile), and at one whose scratch exceeds shared memory (800 channels: v2 falls back
// to v1's kernel). On the GPU both versions sum each score over c in the same order with the
// same fused multiply-adds, so they must agree bitwise; against the CPU (no fused multiply-add)
// to rounding. The gradient: below.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>

#include "core/rng.h"
#include "kernels/deepmatch.h"
#include "kernels/unary.h"
#include "tests/support/test_utils.h"

using namespace cvg;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return ac.shape() == bc.shape() && ac.dtype() == bc.dtype() &&
         std::memcmp(ac.raw_data(), bc.raw_data(), ac.numel() * dtype_size(ac.dtype())) == 0;
}

}  // namespace

TEST_CASE("dm_correlation: the GPU's tiled and per-score forwards match the CPU", "[cuda][deepmatch]") {
  struct Geometry {
    int64_t d, h, w, ht, wt, r, stride, offset;
  };
  const Geometry shapes[] = {{64, 6, 11, 50, 90, 20, 8, 4}, {800, 3, 5, 30, 44, 10, 8, 4}};
  manual_seed(11);
  for (const Geometry& s : shapes) {
    for (const DType dt : {DType::float32, DType::float64}) {
      INFO("d " << s.d << ", grid " << s.h << " x " << s.w << ", target " << s.ht << " x " << s.wt
                << ", R " << s.r << ", " << dtype_name(dt));
      const Tensor ref = rand({2, s.d, s.h, s.w}).to(dt), tgt = rand({2, s.d, s.ht, s.wt}).to(dt);
      const Tensor want = dm_correlation(ref, tgt, s.r, s.stride, s.offset);
      const Tensor rg = ref.to(kCUDA), tg = tgt.to(kCUDA);
      Tensor v1, v2;
      {
        const DmCorrVersionGuard per_score(1);
        v1 = dm_correlation(rg, tg, s.r, s.stride, s.offset).to(kCPU);
      }
      v2 = dm_correlation(rg, tg, s.r, s.stride, s.offset).to(kCPU);
      CHECK(same_bits(v1, v2));
      const double tol = dt == DType::float32 ? 1e-4 : 1e-12;  // relative and absolute
      CHECK(allclose(v2, want, tol, tol));
    }
  }
}

// The gradient in the descriptors: the GPU's tiled kernel (v2, its default) and its one-block-
// per-point kernel (v1) against the CPU's gather, at a window of 3 parts (K = 41) with 64
// channels, and with 1100 channels (more than 4 x 256: v2's blocks do not fit, v1 runs).
TEST_CASE("dm_correlation_grad_ref: the GPU's tiled and per-point kernels match the CPU",
          "[cuda][deepmatch]") {
  struct Geometry {
    int64_t d, h, w, ht, wt, r, stride, offset;
  };
  const Geometry shapes[] = {{64, 6, 11, 50, 90, 20, 8, 4}, {1100, 2, 3, 20, 30, 6, 8, 4}};
  manual_seed(12);
  for (const Geometry& s : shapes) {
    for (const DType dt : {DType::float32, DType::float64}) {
      INFO("d " << s.d << ", grid " << s.h << " x " << s.w << ", target " << s.ht << " x " << s.wt
                << ", R " << s.r << ", " << dtype_name(dt));
      const int64_t k = 2 * s.r + 1;
      const Tensor g = (rand({2, s.h, s.w, k, k}) - 0.5).to(dt);
      const Tensor tgt = rand({2, s.d, s.ht, s.wt}).to(dt);
      const Tensor want = dm_correlation_grad_ref(g, tgt, s.stride, s.offset);
      const Tensor gg = g.to(kCUDA), tg = tgt.to(kCUDA);
      Tensor v1, v2;
      {
        const DmCorrVersionGuard per_point(1);
        v1 = dm_correlation_grad_ref(gg, tg, s.stride, s.offset).to(kCPU);
      }
      v2 = dm_correlation_grad_ref(gg, tg, s.stride, s.offset).to(kCPU);
      const double tol = dt == DType::float32 ? 1e-4 : 1e-10;
      CHECK(allclose(v1, want, tol, tol));
      CHECK(allclose(v2, want, tol, tol));
    }
  }
}

// The gradient in the target: the GPU's tiled kernel (v2, its default) and its per-pixel kernel
// (v1) add the same terms in the same order, so they agree bitwise on the GPU, and with the CPU
// to rounding; at 64 channels (4 groups, 64 columns per block) and 200 (13 groups, 19 columns).
TEST_CASE("dm_correlation_grad_target: the GPU's tiled and per-pixel kernels match the CPU",
          "[cuda][deepmatch]") {
  struct Geometry {
    int64_t d, h, w, ht, wt, r, stride, offset;
  };
  const Geometry shapes[] = {{64, 6, 11, 50, 90, 20, 8, 4}, {200, 3, 20, 12, 160, 6, 4, 2}};
  manual_seed(13);
  for (const Geometry& s : shapes) {
    for (const DType dt : {DType::float32, DType::float64}) {
      INFO("d " << s.d << ", grid " << s.h << " x " << s.w << ", target " << s.ht << " x " << s.wt
                << ", R " << s.r << ", " << dtype_name(dt));
      const int64_t k = 2 * s.r + 1;
      const Tensor g = (rand({2, s.h, s.w, k, k}) - 0.5).to(dt);
      const Tensor ref = rand({2, s.d, s.h, s.w}).to(dt);
      const std::array<int64_t, 2> size{s.ht, s.wt};
      const Tensor want = dm_correlation_grad_target(g, ref, size, s.stride, s.offset);
      const Tensor gg = g.to(kCUDA), rg = ref.to(kCUDA);
      Tensor v1, v2;
      {
        const DmCorrVersionGuard per_pixel(1);
        v1 = dm_correlation_grad_target(gg, rg, size, s.stride, s.offset).to(kCPU);
      }
      v2 = dm_correlation_grad_target(gg, rg, size, s.stride, s.offset).to(kCPU);
      CHECK(same_bits(v1, v2));
      const double tol = dt == DType::float32 ? 1e-4 : 1e-10;
      CHECK(allclose(v2, want, tol, tol));
    }
  }
}
