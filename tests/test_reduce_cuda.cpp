// The [cuda] parity of the row reductions on the GPU's split path (kernels/reduce_cuda.cu:
// long rows too few to fill the GPU are cut into chunks, one block each, whose States one warp
// per row combines), which the op registry's small samples never reach: every reducer kind
// against the CPU, float32 and float64, with the arg reducers' ties and NaNs placed in
// different chunks (the first one must win).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/reduce_math.h"
#include "kernels/unary.h"
#include "tests/support/test_utils.h"

using namespace cvg;

namespace {

// |a - b| <= tol (1 + |b|) elementwise, on the CPU.
bool close_rel(const Tensor& a, const Tensor& b, double tol) {
  const std::vector<double> x = a.to(kCPU).to_vector<double>(), y = b.to_vector<double>();
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (!(std::fabs(x[i] - y[i]) <= tol * (1 + std::fabs(y[i])))) return false;
  return true;
}

}  // namespace

TEST_CASE("reductions: long rows cut into chunks on the GPU match the CPU", "[cuda][reduce]") {
  manual_seed(9);
  struct Shape2 {
    int64_t outer, inner;
  };
  for (const DType dt : {DType::float32, DType::float64}) {
    const double tol = dt == DType::float32 ? 2e-5 : 1e-12;
    for (const Shape2 sh : {Shape2{1, int64_t{1} << 22}, Shape2{3, 100003}, Shape2{256, 65536},
                            Shape2{2, 5000}}) {
      INFO((dt == DType::float32 ? "float32 " : "float64 ") << sh.outer << " x " << sh.inner);
      const ReduceSplit split = reduce_split(sh.outer, sh.inner);
      REQUIRE(split.parts > 1);  // the cases take the split path
      const Tensor x = (randn({sh.outer, sh.inner}) * 2.0 + 0.5).to(dt);
      const Tensor g = x.to(kCUDA);
      CHECK(close_rel(sum(g, {1}), sum(x, {1}), tol * 10));
      CHECK(close_rel(mean(g, {1}), mean(x, {1}), tol));
      CHECK(close_rel(var(g, {1}), var(x, {1}), tol));
      CHECK(close_rel(logsumexp(g, {1}), logsumexp(x, {1}), tol));
      CHECK(close_rel(norm(g, 2.0, {1}), norm(x, 2.0, {1}), tol));
      CHECK(close_rel(norm(g, 1.0, {1}), norm(x, 1.0, {1}), tol));
      CHECK(max_abs_diff(amax(g, {1}).to(kCPU), amax(x, {1})) == 0);
      CHECK(max_abs_diff(amin(g, {1}).to(kCPU), amin(x, {1})) == 0);

      // Ties and NaNs in different chunks: the maximum 100 at the start of the second-to-last
      // chunk and at the last element; NaNs at the start of the second chunk and the end.
      std::vector<double> v = x.to(DType::float64).to_vector<double>();
      const int64_t early = (split.parts - 2) * split.chunk, late = sh.inner - 1;
      std::vector<double> with_nan = v;
      for (int64_t r = 0; r < sh.outer; ++r) {
        v[r * sh.inner + early] = v[r * sh.inner + late] = 100.0;
        v[r * sh.inner + late - 1] = -100.0;  // and a tied minimum across chunks
        v[r * sh.inner + split.chunk / 2] = -100.0;
        with_nan[r * sh.inner + split.chunk] = with_nan[r * sh.inner + late] =
            std::numeric_limits<double>::quiet_NaN();
      }
      const Tensor tied = from_vector(v, Shape{sh.outer, sh.inner}).to(dt);
      const Tensor nan = from_vector(with_nan, Shape{sh.outer, sh.inner}).to(dt);
      const std::vector<double> expect_max(sh.outer, static_cast<double>(early));
      const std::vector<double> expect_min(sh.outer, static_cast<double>(split.chunk / 2));
      const std::vector<double> expect_nan(sh.outer, static_cast<double>(split.chunk));
      CHECK(argmax(tied.to(kCUDA), 1).to(kCPU).to_vector<double>() == expect_max);
      CHECK(argmin(tied.to(kCUDA), 1).to(kCPU).to_vector<double>() == expect_min);
      CHECK(argmax(nan.to(kCUDA), 1).to(kCPU).to_vector<double>() == expect_nan);
      CHECK(std::isnan(amax(nan.to(kCUDA), {1}).to(kCPU).to_vector<double>()[0]));
      // The CPU agrees (the same first-wins rule).
      CHECK(argmax(tied, 1).to_vector<double>() == expect_max);
    }
  }
}
