// Tests of dropout (kernels/dropout.h): identity cases, the kept fraction and the scale on a
// large tensor, reproducibility from (seed, offset), the gradient (mask * scale), and the
// CPU/CUDA mask agreement. The registry entry runs dropout with a fixed seed, so gradcheck and
// the [cuda] column see one fixed mask.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/dropout.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

using Catch::Matchers::Contains;

// dropout with the generator at (seed, 0), leaving the global generator as it was.
Tensor seeded_dropout(const Tensor& x, double p, uint64_t seed) {
  const Generator saved = global_generator();
  manual_seed(seed);
  Tensor y = dropout(x, p);
  global_generator() = saved;
  return y;
}

OpFn seeded(double p) {
  return [p](const TensorList& xs) { return seeded_dropout(xs[0], p, 7); };
}

}  // namespace

CVG_REGISTER_OP(OpSpec{
    "dropout",
    seeded(0.3),
    [] {
      return std::vector<OpSample>{
          {"p = 0 is the identity", {t64({1, -2, 3}, {3})}, t64({1, -2, 3}, {3}, false), true,
           seeded(0.0)},
          {"eval is the identity",
           {t64({1, -2, 3}, {3})},
           t64({1, -2, 3}, {3}, false),
           true,
           [](const TensorList& xs) { return dropout(xs[0], 0.5, /*training=*/false); }},
          {"p = 0.3 on 4 x 5 x 6", {uniform64({4, 5, 6}, -2, 2, 1)}, Tensor(), true, nullptr},
          {"p = 0.8 on a transposed input", {uniform64({7, 9}, -2, 2, 2)}, Tensor(), true,
           [](const TensorList& xs) { return seeded_dropout(transpose(xs[0], 0, 1), 0.8, 11); }}};
    }});

TEST_CASE("dropout: p = 0 and eval return the input itself", "[ops][dropout]") {
  const Tensor x = randn({10});
  const uint64_t before = global_generator().offset;
  CHECK(dropout(x, 0.0).impl() == x.impl());
  CHECK(dropout(x, 0.7, false).impl() == x.impl());
  CHECK(global_generator().offset == before);  // no numbers drawn
}

TEST_CASE("dropout: kept fraction, scale and the generator offset", "[ops][dropout]") {
  manual_seed(123);
  const int64_t n = 1 << 20;
  const Tensor x = ones({n});
  const uint64_t before = global_generator().offset;
  for (double p : {0.1, 0.5, 0.9}) {
    INFO("p = " << p);
    const uint64_t off = global_generator().offset;
    const Tensor y = dropout(x, p);
    CHECK(global_generator().offset == off + static_cast<uint64_t>(n));
    const std::vector<float> v = y.to_vector<float>();
    int64_t kept = 0;
    bool values_ok = true;
    for (float e : v) {
      if (e != 0.0f) {
        ++kept;
        values_ok = values_ok && std::abs(e - static_cast<float>(1.0 / (1.0 - p))) < 1e-6f;
      }
    }
    CHECK(values_ok);
    // Binomial(n, 1 - p): 6 standard deviations are at most ~3000 of 2^20.
    const double sd = std::sqrt(n * p * (1 - p));
    CHECK(std::abs(static_cast<double>(kept) - n * (1 - p)) < 6 * sd);
  }
  CHECK(global_generator().offset == before + 3 * static_cast<uint64_t>(n));
}

TEST_CASE("dropout: the mask is a function of (seed, offset) only", "[ops][dropout]") {
  const Tensor x = uniform64({3, 50}, 1, 2, 5, false);
  const Tensor a = seeded_dropout(x, 0.5, 42), b = seeded_dropout(x, 0.5, 42);
  CHECK(allclose(a, b, 0, 0));
  CHECK_FALSE(allclose(a, seeded_dropout(x, 0.5, 43), 0, 0));
  // float32 and float64 inputs get the same mask.
  const Tensor a32 = seeded_dropout(x.to(DType::float32), 0.5, 42);
  CHECK(allclose(ne(a32, zeros_like(a32)), ne(a, zeros_like(a)), 0, 0));
  // Two calls continue the stream: the second equals the second half of one call on the
  // concatenation.
  manual_seed(9);
  const Tensor first = dropout(x, 0.5), second = dropout(x, 0.5);
  manual_seed(9);
  const Tensor both = dropout(reshape(expand(unsqueeze(x, 0), {2, 3, 50}), {6, 50}), 0.5);
  CHECK(allclose(first, slice(both, 0, 0, 3), 0, 0));
  CHECK(allclose(second, slice(both, 0, 3, 6), 0, 0));
  // The mask follows each element's row-major index, whatever the input's strides.
  const Tensor xt = uniform64({50, 3}, 1, 2, 6, false);
  CHECK(allclose(seeded_dropout(transpose(xt, 0, 1), 0.5, 3),
                 seeded_dropout(transpose(xt, 0, 1).contiguous(), 0.5, 3), 0, 0));
}

TEST_CASE("dropout: the gradient is the mask times 1 / (1 - p)", "[ops][dropout][grad]") {
  const double p = 0.25;
  const Tensor x = uniform64({200}, 1, 2, 8);
  const Tensor y = seeded_dropout(x, p, 77);
  const Tensor g = uniform64({200}, -1, 1, 9, false);
  const Tensor dx = grad({y}, {x}, {g})[0];
  const Tensor mask = ne(y, zeros_like(y)).to(DType::float64);
  CHECK(allclose(dx, g * mask * (1.0 / (1.0 - p)), 1e-15, 0));
  // Some of each, so the check above is not vacuous.
  const double kept = sum(mask).item();
  CHECK(kept > 100);
  CHECK(kept < 200);
}

TEST_CASE("dropout: errors", "[ops][dropout][errors]") {
  const Tensor x = zeros({4});
  CHECK_THAT(error_of([&] { dropout(x, 1.0); }), Contains("dropout: p must be in [0, 1), got 1"));
  CHECK_THAT(error_of([&] { dropout(x, -0.1); }), Contains("dropout: p must be in [0, 1), got -0.1"));
  CHECK_THAT(error_of([&] { dropout(zeros({4}, TensorOptions{}.with_dtype(DType::int32)), 0.5); }),
             Contains("dropout") && Contains("int32"));
}

TEST_CASE("dropout: CUDA draws the CPU's mask for the same seed and offset", "[.][cuda]") {
  if (!cuda_available()) return;
  const Tensor x = uniform64({3, 1000}, 1, 2, 10, false).to(DType::float32);
  for (uint64_t seed : {1ull, 2ull, 0x5eedull}) {
    const Generator saved = global_generator();
    manual_seed(seed);
    global_generator().offset = 12345;  // a nonzero offset too
    const Tensor cpu = dropout(x, 0.4);
    manual_seed(seed);
    global_generator().offset = 12345;
    const Tensor gpu = dropout(x.to(kCUDA), 0.4);
    global_generator() = saved;
    CHECK(gpu.device() == kCUDA);
    CHECK(allclose(gpu.to(kCPU), cpu, 0, 0));
  }
}
