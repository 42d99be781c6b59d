// The [cuda] parity of the correlation forward beyond the op registry's samples: both versions
// (v2, the tiled kernel; v1, one thread per score) at a shape of the app's kind (64 channels,
// stride 8, a window of 41 x 41 over a target larger than one tile), and at one whose scratch
// exceeds shared memory (800 channels: v2 falls back to v1's kernel). On the GPU both versions
// sum each score over c in the same order with the same fused multiply-adds, so they must agree
// bitwise; against the CPU (no fused multiply-add) to rounding.
#include <catch2/catch.hpp>

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
