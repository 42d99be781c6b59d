// Tests of the Deep Matching 4-D layers (kernels/deepmatch.h): registry entries with hand cases
// (padding, ties, -inf infill, border children, power at 0, loss masking) and float64 gradcheck
// samples on tie-free inputs for every layer and backward op; plain tests of the -inf gradient
// rules, of the correlation against its definition and of the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

// Scores without -inf: finite differences cannot see through -inf, and the layers route no
// gradient there, so gradcheck samples read -inf entries as 0 (a piecewise-constant mask).
Tensor finite_part(const Tensor& y) {
  const Tensor finite = gt(y.detach(), full({}, -kInf, y.options()));
  return where(finite, y, zeros({}, y.options()));
}

// Switches of pooling / disaggregating a tie-free tensor, as valid inputs of the routing ops.
Tensor pool_switches(const Shape& fine, uint64_t seed) {
  NoGradGuard no_grad;
  return dm_max_pool(distinct64(fine, 0.01, seed, false)).switches;
}
Tensor disagg_switches(const Shape& s, int64_t level, uint64_t seed) {
  NoGradGuard no_grad;
  return dm_disaggregate(distinct64(s, 0.01, seed, false), level).switches;
}

Tensor u8(const std::vector<int>& v, const Shape& shape) {
  std::vector<uint8_t> b(v.begin(), v.end());
  return from_vector<uint8_t>(b, shape, TensorOptions{}.with_dtype(DType::uint8));
}

// The 3 x 3 plane 1..9 of one reference point, and what 3x3/2 pooling with pad 2 makes of it
// (R = 1 -> R' = 1): windows {0}, {0..2}, {2} per axis.
Tensor plane9(bool grad = true) {
  return t64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 1, 3, 3}, grad);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// correlation

CVG_REGISTER_OP(OpSpec{
    "dm_correlation",
    [](const TensorList& xs) { return dm_correlation(xs[0], xs[1], 3, 5, 2); },
    [] {
      return std::vector<OpSample>{
          // p = (0, 0): offsets -1..1 see the 2 x 2 target [1 2; 3 4] at (0..1, 0..1), 0 outside.
          {"hand radius 1, windows off the target",
           {t64({2}, {1, 1, 1, 1}), t64({1, 2, 3, 4}, {1, 1, 2, 2})},
           t64({0, 0, 0, 0, 2, 4, 0, 6, 8}, {1, 1, 1, 3, 3}, false),
           false,
           [](const TensorList& xs) { return dm_correlation(xs[0], xs[1], 1, 1, 0); }},
          {"2 x 3 x 3x4 refs, 20x22 target, R 3 stride 5 offset 2",
           {uniform64({2, 3, 3, 4}, 0, 1, 1), uniform64({2, 3, 20, 22}, 0, 1, 2)},
           Tensor(), true, nullptr},
          {"windows past every border (R 4, stride 3, offset -1)",
           {uniform64({1, 2, 3, 3}, 0, 1, 3), uniform64({1, 2, 7, 6}, 0, 1, 4)},
           Tensor(), true,
           [](const TensorList& xs) { return dm_correlation(xs[0], xs[1], 4, 3, -1); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_correlation_grad_ref",
    [](const TensorList& xs) { return dm_correlation_grad_ref(xs[0], xs[1], 3, 1); },
    [] {
      return std::vector<OpSample>{
          {"R 2 stride 3 offset 1",
           {uniform64({2, 3, 2, 5, 5}, -1, 1, 5), uniform64({2, 4, 9, 8}, -1, 1, 6)},
           Tensor(), true, nullptr},
          // For the CUDA kernel (one block of 256 threads per point, channels in chunks of 8):
          // 361 offsets per point, 11 channels (a full chunk and a partial one), windows past
          // the top and left borders. Too large to be worth a gradcheck; parity and float32.
          {"R 9: K^2 above a block, 11 channels",
           {uniform64({1, 2, 3, 19, 19}, -1, 1, 31), uniform64({1, 11, 24, 26}, -1, 1, 32)},
           Tensor(), false, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_correlation_grad_target",
    [](const TensorList& xs) { return dm_correlation_grad_target(xs[0], xs[1], {9, 8}, 3, 1); },
    [] {
      return std::vector<OpSample>{
          {"R 2 stride 3 offset 1",
           {uniform64({2, 3, 2, 5, 5}, -1, 1, 7), uniform64({2, 4, 3, 2}, -1, 1, 8)},
           Tensor(), true, nullptr},
          // Stride 1 and R 3: each target pixel collects from up to 7 x 7 references.
          {"dense references, R 3",
           {uniform64({1, 5, 5, 7, 7}, -1, 1, 9), uniform64({1, 2, 5, 5}, -1, 1, 10)},
           Tensor(), true,
           [](const TensorList& xs) {
             return dm_correlation_grad_target(xs[0], xs[1], {6, 7}, 1, 0);
           }}};
    }});

// ---------------------------------------------------------------------------------------------
// max pooling over q

CVG_REGISTER_OP(OpSpec{
    "dm_max_pool",
    [](const TensorList& xs) { return dm_max_pool(xs[0]).values; },
    [] {
      return std::vector<OpSample>{
          // Rows/cols pool {0}, {0, 1, 2}, {2}: the padding (-inf) never wins.
          {"hand K 3 -> 3 (pad 2)", {plane9()},
           t64({1, 3, 3, 7, 9, 9, 7, 9, 9}, {1, 1, 1, 3, 3}, false), false, nullptr},
          {"hand negative scores: padding is -inf, not 0",
           {t64({-1, -2, -3, -4, -5, -6, -7, -8, -9}, {1, 1, 1, 3, 3})},
           t64({-1, -1, -3, -1, -1, -3, -7, -7, -9}, {1, 1, 1, 3, 3}, false), false, nullptr},
          {"R 3 (odd, pad 2) K 7 -> 5", {distinct64({2, 2, 3, 7, 7}, 0.01, 11)}, Tensor(), true,
           nullptr},
          {"R 4 (even, pad 1) K 9 -> 5", {distinct64({1, 3, 2, 9, 9}, 0.01, 12)}, Tensor(), true,
           nullptr},
          {"R 0: K 1 -> 1", {distinct64({2, 2, 2, 1, 1}, 0.01, 13)}, Tensor(), true, nullptr},
          {"non-contiguous input",
           {distinct64({2, 3, 2, 5, 5}, 0.01, 14)}, Tensor(), true,
           [](const TensorList& xs) {
             return dm_max_pool(permute(xs[0], {0, 2, 1, 4, 3})).values;
           }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_max_pool (switches)",
    [](const TensorList& xs) { return dm_max_pool(xs[0]).switches.to(DType::float64); },
    [] {
      return std::vector<OpSample>{
          // Window-local 3 dy + dx; the window of coarse c starts at fine 2 c - 2.
          {"hand K 3", {plane9(false)},
           t64({8, 8, 6, 8, 8, 6, 2, 2, 0}, {1, 1, 1, 3, 3}, false), false, nullptr},
          // All ties: the first in-range tap of each window (padding is skipped).
          {"hand ties: first in-range tap",
           {t64(std::vector<double>(9, 0.5), {1, 1, 1, 3, 3}, false)},
           t64({8, 6, 6, 2, 0, 0, 2, 0, 0}, {1, 1, 1, 3, 3}, false), false, nullptr}};
    },
    /*gradgrad=*/false,
    /*differentiable=*/false});

CVG_REGISTER_OP(OpSpec{
    "dm_max_pool_backward",
    [](const TensorList& xs) { return dm_max_pool_backward(xs[0], xs[1], 7); },
    [] {
      return std::vector<OpSample>{
          // Coarse (0, 1) and (0, 2) both point at fine (0, 2): it collects 2 + 3.
          {"hand overlapping windows sum",
           {t64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 1, 3, 3}),
            u8({8, 8, 6, 8, 8, 6, 2, 2, 0}, {1, 1, 1, 3, 3})},
           t64({1, 0, 5, 0, 0, 0, 11, 0, 28}, {1, 1, 1, 3, 3}, false), true,
           [](const TensorList& xs) { return dm_max_pool_backward(xs[0], xs[1], 3); }},
          {"K 7 -> 5", {uniform64({2, 2, 3, 5, 5}, -1, 1, 15), pool_switches({2, 2, 3, 7, 7}, 16)},
           Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_pool_gather",
    [](const TensorList& xs) { return dm_pool_gather(xs[0], xs[1]); },
    [] {
      return std::vector<OpSample>{
          {"K 9 -> 5", {uniform64({1, 2, 3, 9, 9}, -1, 1, 17), pool_switches({1, 2, 3, 9, 9}, 18)},
           Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// aggregation and power

CVG_REGISTER_OP(OpSpec{
    "dm_aggregate",
    [](const TensorList& xs) { return dm_aggregate(xs[0], 0); },
    [] {
      return std::vector<OpSample>{
          // Level 0, H 2, W 1, K 1: point 0 averages children 0 and 1 (column +1 is off the grid),
          // point 1 has only itself.
          {"hand level 0, border children left out", {t64({2, 6}, {1, 2, 1, 1, 1})},
           t64({4, 6}, {1, 2, 1, 1, 1}, false), false, nullptr},
          // Level 1, H 3, W 3: children (i +- 1, j +- 1). The centre has all four corners, the
          // corner (0, 0) only (1, 1), the edge (0, 1) the two (1, 0) and (1, 2).
          {"hand level 1, 3 x 3 grid",
           {t64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1, 1})},
           t64({5, 5, 5, 5, 5, 5, 5, 5, 5}, {1, 3, 3, 1, 1}, false), false,
           [](const TensorList& xs) { return dm_aggregate(xs[0], 1); }},
          {"level 0", {uniform64({2, 3, 4, 3, 3}, 0, 1, 19)}, Tensor(), true, nullptr},
          {"level 1", {uniform64({1, 4, 5, 3, 3}, 0, 1, 20)}, Tensor(), true,
           [](const TensorList& xs) { return dm_aggregate(xs[0], 1); }},
          {"level 2 (shift 2, points without children)", {uniform64({1, 5, 3, 3, 3}, 0, 1, 21)},
           Tensor(), true, [](const TensorList& xs) { return dm_aggregate(xs[0], 2); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_aggregate_backward",
    [](const TensorList& xs) { return dm_aggregate_backward(xs[0], 1); },
    [] {
      return std::vector<OpSample>{
          {"level 1", {uniform64({2, 4, 5, 3, 3}, -1, 1, 22)}, Tensor(), true, nullptr},
          {"level 0", {uniform64({1, 3, 4, 1, 1}, -1, 1, 23)}, Tensor(), true,
           [](const TensorList& xs) { return dm_aggregate_backward(xs[0], 0); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_power",
    [](const TensorList& xs) { return dm_power(xs[0], xs[1]); },
    [] {
      return std::vector<OpSample>{
          // 5 and 7 elements: the kernel's items take 4 elements a quarter apart, with a tail.
          {"hand A^0.5, 0 at A <= 0", {t64({4, 0, -1, 0.25, 9}, {5}), t64({0.5}, {1})},
           t64({2, 0, 0, 0.5, 3}, {5}, false), false, nullptr},
          {"7 elements", {uniform64({1, 1, 7, 1, 1}, 0.05, 1, 26), t64({1.3}, {1})}, Tensor(),
           true, nullptr},
          {"scores, nu 1.4 (0-d)", {uniform64({2, 3, 2, 3, 3}, 0.05, 1, 24), t64({1.4}, {})},
           Tensor(), true, nullptr},
          {"nu 0.7", {uniform64({1, 2, 2, 5, 5}, 0.05, 2, 25), t64({0.7}, {1})}, Tensor(), true,
           nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// disaggregation

CVG_REGISTER_OP(OpSpec{
    "dm_disaggregate",
    [](const TensorList& xs) { return finite_part(dm_disaggregate(xs[0], 1).values); },
    [] {
      return std::vector<OpSample>{
          // Level 0, H 2, W 1: child 0 has parent 0 only, child 1 parents 1 and 0 (maxed).
          {"hand level 0, maxed overlaps", {t64({3, 5}, {1, 2, 1, 1, 1})},
           t64({3, 5}, {1, 2, 1, 1, 1}, false), false,
           [](const TensorList& xs) { return dm_disaggregate(xs[0], 0).values; }},
          {"hand -inf parent", {t64({-kInf, 5}, {1, 2, 1, 1, 1})},
           t64({-kInf, 5}, {1, 2, 1, 1, 1}, false), false,
           [](const TensorList& xs) { return dm_disaggregate(xs[0], 0).values; }},
          // Level 1 on a 2 x 2 grid: parents (i -+ 1, j -+ 1); only the opposite corner is in.
          {"hand level 1, one parent per child", {t64({1, 2, 3, 4}, {1, 2, 2, 1, 1})},
           t64({4, 3, 2, 1}, {1, 2, 2, 1, 1}, false), false,
           [](const TensorList& xs) { return dm_disaggregate(xs[0], 1).values; }},
          {"hand level 1, no parent in the grid: -inf", {t64({3}, {1, 1, 1, 1, 1})},
           t64({-kInf}, {1, 1, 1, 1, 1}, false), false,
           [](const TensorList& xs) { return dm_disaggregate(xs[0], 1).values; }},
          {"level 1", {distinct64({2, 4, 5, 3, 3}, 0.01, 26)}, Tensor(), true, nullptr},
          {"level 0", {distinct64({1, 3, 4, 3, 3}, 0.01, 27)}, Tensor(), true,
           [](const TensorList& xs) { return dm_disaggregate(xs[0], 0).values; }},
          {"level 2 (-inf where no parent)", {distinct64({1, 5, 5, 1, 1}, 0.01, 28)}, Tensor(),
           true,
           [](const TensorList& xs) { return finite_part(dm_disaggregate(xs[0], 2).values); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_disaggregate (switches)",
    [](const TensorList& xs) { return dm_disaggregate(xs[0], 0).switches.to(DType::float64); },
    [] {
      return std::vector<OpSample>{
          // Child (1, 1) of a 2 x 2 grid: parents e = 0..3 are (1,1) (1,0) (0,1) (0,0).
          {"hand level 0", {t64({4, 1, 2, 3}, {1, 2, 2, 1, 1}, false)},
           t64({0, 1, 2, 3}, {1, 2, 2, 1, 1}, false), false, nullptr},
          {"hand ties: lowest corner; 0xFF without a finite parent",
           {t64({-kInf, 7, 7, 7}, {1, 2, 2, 1, 1}, false)},
           t64({255, 0, 0, 0}, {1, 2, 2, 1, 1}, false), false, nullptr}};
    },
    /*gradgrad=*/false,
    /*differentiable=*/false});

CVG_REGISTER_OP(OpSpec{
    "dm_disaggregate_backward",
    [](const TensorList& xs) { return dm_disaggregate_backward(xs[0], xs[1], 1); },
    [] {
      return std::vector<OpSample>{
          {"level 1", {uniform64({2, 4, 5, 3, 3}, -1, 1, 29), disagg_switches({2, 4, 5, 3, 3}, 1, 30)},
           Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_disaggregate_gather",
    [](const TensorList& xs) { return dm_disaggregate_gather(xs[0], xs[1], 0); },
    [] {
      return std::vector<OpSample>{
          {"level 0", {uniform64({1, 4, 3, 3, 3}, -1, 1, 31), disagg_switches({1, 4, 3, 3, 3}, 0, 32)},
           Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// unpooling + skip

CVG_REGISTER_OP(OpSpec{
    "dm_unpool",
    [](const TensorList& xs) { return finite_part(dm_unpool(xs[0], xs[1], xs[2])); },
    [] {
      return std::vector<OpSample>{
          // Switches of plane9: fine (0,2) is named by coarse (0,1) and (0,2) -> max 12; fine
          // (2,2) by (1,1) (1,2) (2,1) (2,2) -> 18; elements no switch names are -inf.
          {"hand -inf infill and max-combining",
           {t64({10, 11, 12, 13, 14, 15, 16, 17, 18}, {1, 1, 1, 3, 3}),
            u8({8, 8, 6, 8, 8, 6, 2, 2, 0}, {1, 1, 1, 3, 3}),
            t64({0.5, 0, 1, 0, 0, 0, 0, 0, 2}, {1, 1, 1, 3, 3})},
           t64({10.5, -kInf, 13, -kInf, -kInf, -kInf, 16, -kInf, 20}, {1, 1, 1, 3, 3}, false),
           false,
           [](const TensorList& xs) { return dm_unpool(xs[0], xs[1], xs[2]); }},
          {"K 5 <- 7", {distinct64({2, 2, 3, 5, 5}, 0.01, 33), pool_switches({2, 2, 3, 7, 7}, 34),
                        uniform64({2, 2, 3, 7, 7}, 0, 1, 35)},
           Tensor(), true, nullptr},
          {"K 5 <- 9", {distinct64({1, 3, 2, 5, 5}, 0.01, 36), pool_switches({1, 3, 2, 9, 9}, 37),
                        uniform64({1, 3, 2, 9, 9}, 0, 1, 38)},
           Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_unpool_backward",
    [](const TensorList& xs) { return dm_unpool_backward(xs[0], xs[1], xs[2], 7); },
    [] {
      return std::vector<OpSample>{
          {"K 7 -> 5", {uniform64({2, 2, 3, 7, 7}, -1, 1, 39), distinct64({2, 2, 3, 5, 5}, 0.01, 40, false),
                        pool_switches({2, 2, 3, 7, 7}, 41)},
           Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "dm_unpool_adjoint",
    [](const TensorList& xs) { return dm_unpool_adjoint(xs[0], xs[1], xs[2], 9); },
    [] {
      return std::vector<OpSample>{
          {"K 5 -> 9", {uniform64({1, 3, 2, 5, 5}, -1, 1, 42), distinct64({1, 3, 2, 5, 5}, 0.01, 43, false),
                        pool_switches({1, 3, 2, 9, 9}, 44)},
           Tensor(), true, nullptr}};
    }});

namespace {

// dm_unpool's output for pooling-made switches: -inf where no switch names an element.
Tensor unpooled_q(const Shape& coarse, const Shape& fine, uint64_t seed) {
  NoGradGuard no_grad;
  return dm_unpool(distinct64(coarse, 0.01, seed, false), pool_switches(fine, seed + 1),
                   uniform64(fine, 0, 1, seed + 2, false));
}

}  // namespace

CVG_REGISTER_OP(OpSpec{
    "dm_unpool_skip_backward",
    [](const TensorList& xs) { return dm_unpool_skip_backward(xs[0], xs[1]); },
    [] {
      return std::vector<OpSample>{
          {"hand: 0 where q is -inf",
           {t64({1, -2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 1, 3, 3}),
            t64({0.5, -kInf, 0, -kInf, -kInf, -kInf, -3, -kInf, 20}, {1, 1, 1, 3, 3}, false)},
           t64({1, 0, 3, 0, 0, 0, 7, 0, 9}, {1, 1, 1, 3, 3}, false),
           true,
           nullptr},
          // 49 elements: not a multiple of the kernel's 4 elements per item.
          {"K 7 <- 5, dm_unpool's -inf", {uniform64({1, 1, 1, 7, 7}, -1, 1, 46),
                                          unpooled_q({1, 1, 1, 5, 5}, {1, 1, 1, 7, 7}, 47)},
           Tensor(), true, nullptr},
          {"K 9 <- 5", {uniform64({1, 3, 2, 9, 9}, -1, 1, 49),
                        unpooled_q({1, 3, 2, 5, 5}, {1, 3, 2, 9, 9}, 50)},
           Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// structured hinge loss

namespace {

Tensor gt32(const std::vector<int32_t>& v, const Shape& shape) {
  return from_vector<int32_t>(v, shape, TensorOptions{}.with_dtype(DType::int32));
}

// One point, K 3, all scores 0 and gt at the centre: the 4 edge neighbours cost 1 - e^-1/2, the
// 4 corners 1 - e^-1 (sigma 1), the centre 0; mean over the 9 terms.
Tensor hinge_flat_expected() {
  const double v = (4 * (1 - std::exp(-0.5)) + 4 * (1 - std::exp(-1.0))) / 9;
  return t64({v}, {}, false);
}

}  // namespace

CVG_REGISTER_OP(OpSpec{
    "dm_hinge_loss",
    [](const TensorList& xs) { return dm_hinge_loss(xs[0], xs[1], 1.5); },
    [] {
      return std::vector<OpSample>{
          {"hand flat scores", {t64(std::vector<double>(9, 0.0), {1, 1, 1, 3, 3}), gt32({1, 1}, {1, 1, 1, 2})},
           hinge_flat_expected(), false,
           [](const TensorList& xs) { return dm_hinge_loss(xs[0], xs[1], 1.0); }},
          // -inf scores are never active terms; a point with gt off the window or at a -inf
          // score is skipped (the mean still counts all N H W K^2 terms).
          {"hand -inf masking and skipped points",
           {t64({0, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf,   // only gt finite
                 0, 0, 0, 0, 0, 0, 0, 0, 0,                                    // gt off the window
                 -kInf, 5, 5, 5, 5, 5, 5, 5, 5},                               // gt score -inf
                {1, 1, 3, 3, 3}),
            gt32({0, 0, 3, 0, 0, 0}, {1, 1, 3, 2})},
           t64({0}, {}, false), false,
           [](const TensorList& xs) { return dm_hinge_loss(xs[0], xs[1], 1.0); }},
          {"2 x 3x2 points, K 5, some gt off the window",
           {uniform64({2, 3, 2, 5, 5}, 0, 1, 45),
            gt32({0, 0, 4, 4, 2, 1, -1, 2, 3, 3, 1, 4, 2, 2, 5, 0, 0, 4, 3, 1, 1, 1, 4, 0},
                 {2, 3, 2, 2})},
           Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// Plain tests

TEST_CASE("dm_correlation equals the dot products of its definition", "[ops][deepmatch]") {
  const Tensor ref = uniform64({2, 4, 3, 2}, -1, 1, 50, false);
  const Tensor tgt = uniform64({2, 4, 11, 9}, -1, 1, 51, false);
  const int64_t r = 3, stride = 4, offset = 1, k = 2 * r + 1;
  const Tensor s = dm_correlation(ref, tgt, r, stride, offset);
  REQUIRE(s.shape() == Shape{2, 3, 2, k, k});
  const auto a = ref.to_vector<double>(), b = tgt.to_vector<double>(), got = s.to_vector<double>();
  double worst = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t y = stride * i + offset + ky - r, x = stride * j + offset + kx - r;
            double want = 0;
            if (y >= 0 && y < 11 && x >= 0 && x < 9)
              for (int64_t c = 0; c < 4; ++c)
                want += a[((n * 4 + c) * 3 + i) * 2 + j] * b[((n * 4 + c) * 11 + y) * 9 + x];
            const double v = got[(((n * 3 + i) * 2 + j) * k + ky) * k + kx];
            worst = std::max(worst, std::fabs(v - want));
          }
  CHECK(worst < 1e-14);
}

TEST_CASE("dm_unpool routes no gradient through -inf outputs", "[ops][deepmatch]") {
  // plane9's switches name only fine (0,0), (0,2), (2,0), (2,2); the rest is -inf.
  Tensor qh = t64({10, 11, 12, 13, 14, 15, 16, 17, 18}, {1, 1, 1, 3, 3});
  Tensor s = t64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 1, 3, 3});
  const Tensor sw = u8({8, 8, 6, 8, 8, 6, 2, 2, 0}, {1, 1, 1, 3, 3});
  const Tensor q = dm_unpool(qh, sw, s);
  const TensorList g = grad({q}, {qh, s}, {ones_like(q)});
  // Winners: (0,0) <- 10, (0,2) <- 12, (2,0) <- 16, (2,2) <- 18; losers get 0.
  CHECK(allclose(g[0], t64({1, 0, 1, 0, 0, 0, 1, 0, 1}, {1, 1, 1, 3, 3}, false)));
  CHECK(allclose(g[1], t64({1, 0, 1, 0, 0, 0, 1, 0, 1}, {1, 1, 1, 3, 3}, false)));
}

TEST_CASE("dm_disaggregate routes no gradient to -inf outputs", "[ops][deepmatch]") {
  Tensor q = t64({-kInf, 7, 7, 7}, {1, 2, 2, 1, 1});
  const Tensor y = dm_disaggregate(q, 0).values;
  // Children: 0 <- -inf (no gradient), 1 <- parent 1 (e 0), 2 <- parent 2, 3 <- parent 3 (tie
  // with 1 and 2, lowest e = 0 is itself).
  const TensorList g = grad({y}, {q}, {t64({1, 2, 3, 4}, {1, 2, 2, 1, 1}, false)});
  CHECK(allclose(g[0], t64({0, 2, 3, 4}, {1, 2, 2, 1, 1}, false)));
}

TEST_CASE("dm_power's gradient in nu vanishes at A = 0", "[ops][deepmatch]") {
  Tensor a = t64({0, 0.5}, {2});
  Tensor nu = t64({1.4}, {});
  const TensorList g = grad({sum(dm_power(a, nu))}, {a, nu});
  CHECK(g[0].to_vector<double>()[0] == 0.0);
  CHECK(std::fabs(g[1].item() - std::pow(0.5, 1.4) * std::log(0.5)) < 1e-14);
  CHECK(std::fabs(g[0].to_vector<double>()[1] - 1.4 * std::pow(0.5, 0.4)) < 1e-14);
}

TEST_CASE("deepmatch layers reject bad arguments with messages naming them", "[ops][deepmatch]") {
  const Tensor s = zeros({1, 2, 2, 5, 5});
  CHECK_THAT(error_of([&] { dm_max_pool(zeros({1, 2, 2, 4, 4})); }),
             Contains("dm_max_pool") && Contains("K = 2 R + 1 odd"));
  CHECK_THAT(error_of([&] { dm_max_pool(zeros({2, 5, 5})); }),
             Contains("N x H x W x K x K"));
  CHECK_THAT(error_of([&] { dm_aggregate(s, -1); }), Contains("level"));
  CHECK_THAT(error_of([&] { dm_power(s, t64({1, 2}, {2}, false)); }), Contains("one exponent"));
  CHECK_THAT(error_of([&] { dm_power(s, t64({1.4}, {}, false)); }),
             Contains("dm_power") && Contains("float32") && Contains("float64"));
  CHECK_THAT(error_of([&] { dm_correlation(zeros({1, 3, 2, 2}), zeros({1, 4, 5, 5}), 1, 1, 0); }),
             Contains("same N and d"));
  CHECK_THAT(error_of([&] { dm_correlation(zeros({1, 3, 2, 2}), zeros({1, 3, 5, 5}), 1, 0, 0); }),
             Contains("stride"));
  const DmPooled p = dm_max_pool(s);
  CHECK_THAT(error_of([&] { dm_unpool(p.values, p.switches.to(DType::int32), s); }),
             Contains("switches must be uint8"));
  CHECK_THAT(error_of([&] { dm_unpool(p.values, p.switches, zeros({1, 2, 2, 7, 7})); }),
             Contains("q_half must have shape"));
  CHECK_THAT(error_of([&] { dm_unpool_grads(s, p.values, p.switches, zeros({1, 2, 2, 7, 7})); }),
             Contains("dm_unpool_grads") && Contains("grad and q must have one shape"));
  CHECK_THAT(error_of([&] {
               const GradModeGuard record(true);
               Tensor g = zeros(s.shape());
               g.set_requires_grad(true);
               dm_unpool_grads(g, p.values, p.switches, s);
             }),
             Contains("dm_unpool_grads") && Contains("not differentiable"));
  CHECK_THAT(error_of([&] { dm_hinge_loss(s, zeros({1, 2, 2, 2}), 1.0); }),
             Contains("gt must be int32 or int64"));
  CHECK_THAT(error_of([&] {
               dm_hinge_loss(s, zeros({1, 2, 2, 2}, TensorOptions{}.with_dtype(DType::int32)), 0);
             }),
             Contains("sigma"));
  // The backward reads gt: an in-place change of the caller's (contiguous int32) gt before it
  // runs is an error, not a gradient towards the new ground truth.
  {
    Tensor q = rand({1, 2, 2, 7, 7}).set_requires_grad(true);
    Tensor gt = zeros({1, 2, 2, 2}, TensorOptions{}.with_dtype(DType::int32)) + 3;
    const Tensor loss = dm_hinge_loss(q, gt, 1.0);
    gt.fill_(1);
    CHECK_THAT(error_of([&] { loss.backward(); }), Contains("dm_hinge_loss") && Contains("modified in place"));
  }
}

// ---------------------------------------------------------------------------------------------
// index width (kernels/deepmatch.h): the 32-bit path that small launches take and the 64-bit
// path of large ones must compute the same sums in the same order.

TEST_CASE("deepmatch index width: 32 bits on the GPU when every extent fits, 64 on the CPU",
          "[ops][deepmatch]") {
  const int64_t lim = dm_index32_limit();
  CHECK(lim == 2147483647);
  CHECK(dm_index32(kCUDA, {1, 5, lim}));  // (a decision only: no GPU needed)
  CHECK_FALSE(dm_index32(kCUDA, {5, lim + 1}));
  CHECK_FALSE(dm_index32(kCUDA, {5, 0}));  // empty: nothing runs, the other sizes need not fit
  CHECK_FALSE(dm_index32(kCPU, {1, 5}));
  {
    const DmIndexWidthGuard narrow(32);
    CHECK(dm_index32(kCPU, {1, 5}));
    CHECK_FALSE(dm_index32(kCPU, {5, lim + 1}));  // forced 32 bits still need the extents to fit
    {
      const DmIndexWidthGuard wide(64);
      CHECK_FALSE(dm_index32(kCUDA, {1, 5}));
    }
    CHECK(dm_index32(kCUDA, {1, 5}));  // the inner guard restores the outer one's setting
  }
  CHECK_FALSE(dm_index32(kCPU, {1, 5}));
  CHECK_THAT(error_of([] { DmIndexWidthGuard bad(16); }),
             Contains("DmIndexWidthGuard") && Contains("32 or 64, got 16"));
}

namespace {

// The aggregation family at `level` on x (sw: switches for the disaggregation's backward):
// aggregate, its backward, disaggregate's values and switches, disaggregate's backward.
TensorList aggregation_outputs(const Tensor& x, const Tensor& sw, int64_t level) {
  const DmDisaggregated d = dm_disaggregate(x, level);
  return {dm_aggregate(x, level), dm_aggregate_backward(x, level), d.values, d.switches,
          dm_disaggregate_backward(x, sw, level)};
}

// Bitwise equality (so -inf and the order of every sum count).
bool same_bits(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
  return std::memcmp(ac.raw_data(), bc.raw_data(), ac.numel() * dtype_size(ac.dtype())) == 0;
}

// Forward, and the gradients of <y, w> (w fixed random) in every differentiable input.
TensorList forward_and_grads(const OpFn& fn, const TensorList& xs) {
  TensorList ins;
  for (const Tensor& x : xs) {
    Tensor in = x.detach();
    if (x.requires_grad()) in.set_requires_grad(true);
    ins.push_back(in);
  }
  const Tensor y = fn(ins);
  TensorList out{y.detach()};
  TensorList diff;
  for (const Tensor& x : ins)
    if (x.requires_grad()) diff.push_back(x);
  if (!diff.empty() && y.requires_grad()) {
    const Tensor w = uniform64(y.shape(), -1, 1, 99, false);
    const Tensor safe = finite_part(y);
    for (const Tensor& g : grad({sum(mul(safe, w))}, diff)) out.push_back(g);
  }
  return out;
}

}  // namespace

TEST_CASE("deepmatch index width: every layer's 64-bit path equals its 32-bit path bitwise",
          "[ops][deepmatch]") {
  int checked = 0;
  for (const OpSpec& spec : op_registry()) {
    if (spec.name.rfind("dm_", 0) != 0 && spec.name != "deep_matching") continue;
    for (const OpSample& s : spec.samples()) {
      const OpFn& fn = s.fn ? s.fn : spec.fn;
      INFO(spec.name << " / " << s.label);
      TensorList narrow, wide;
      {
        const DmIndexWidthGuard guard(32);
        narrow = forward_and_grads(fn, s.inputs);
      }
      {
        const DmIndexWidthGuard guard(64);
        wide = forward_and_grads(fn, s.inputs);
      }
      REQUIRE(narrow.size() == wide.size());
      for (size_t i = 0; i < narrow.size(); ++i) {
        INFO("output " << i << " (0: forward, then the gradients)");
        CHECK(same_bits(narrow[i], wide[i]));
      }
      ++checked;
    }
  }
  CHECK(checked >= 30);
}

namespace {

// A correlation's sizes, for the version tests below: N pairs of d-channel descriptors on an
// h x w reference grid, an ht x wt target, window radius r, stride and offset.
struct Geometry {
  int64_t n, d, h, w, ht, wt, r, stride, offset;
};
std::ostream& operator<<(std::ostream& os, const Geometry& c) {
  return os << "N " << c.n << ", d " << c.d << ", grid " << c.h << " x " << c.w << ", target "
            << c.ht << " x " << c.wt << ", R " << c.r << ", stride " << c.stride << ", offset "
            << c.offset;
}

}  // namespace

// The tiled forward (v2: DmCorrTiled, a scratch row per target row and 8 reference columns)
// against the per-score one (v1: DmCorrForward) on geometries that reach every edge of the
// tiling: grids narrower than a tile and not a multiple of it, one reference row, strides
// larger than the window (target rows no reference sees), windows wider than the target map,
// offsets of both signs, a single channel; and non-finite descriptors, whose scores outside
// the target map must still be exactly 0. Both sum over c in the same order: same bits.
TEST_CASE("dm_correlation: the tiled forward equals the per-score forward bitwise",
          "[ops][deepmatch]") {
  const Geometry cases[] = {
      {1, 1, 1, 1, 1, 1, 0, 1, 0},    {2, 3, 3, 5, 11, 9, 2, 2, 1},
      {1, 4, 2, 8, 9, 30, 3, 3, 2},   {1, 5, 4, 9, 16, 40, 4, 4, -3},
      {2, 13, 3, 17, 12, 70, 5, 4, 2}, {1, 2, 5, 3, 7, 6, 6, 1, 0},
      {1, 3, 6, 4, 20, 14, 0, 3, 1},  {1, 6, 3, 11, 5, 5, 8, 2, 9},
      {1, 2, 2, 16, 6, 50, 1, 3, -4}, {3, 7, 1, 12, 3, 25, 2, 2, 0}};
  uint64_t seed = 300;
  for (const Geometry& c : cases) {
    for (const DType dtype : {DType::float64, DType::float32}) {
      INFO(c << ", " << dtype_name(dtype));
      const Tensor ref = uniform64({c.n, c.d, c.h, c.w}, -1, 1, seed++, false).to(dtype);
      const Tensor tgt = uniform64({c.n, c.d, c.ht, c.wt}, -1, 1, seed++, false).to(dtype);
      Tensor per_score, tiled;
      {
        const DmCorrVersionGuard v1(1);
        per_score = dm_correlation(ref, tgt, c.r, c.stride, c.offset);
      }
      {
        const DmCorrVersionGuard v2(2);
        tiled = dm_correlation(ref, tgt, c.r, c.stride, c.offset);
      }
      CHECK(same_bits(per_score, tiled));
    }
  }
  // inf and NaN descriptors: in-map scores are inf or NaN alike, off-map ones exactly 0.
  Tensor ref = uniform64({1, 2, 3, 10}, -1, 1, 390, false);
  ref.data<double>()[4] = std::numeric_limits<double>::infinity();
  ref.data<double>()[35] = std::numeric_limits<double>::quiet_NaN();
  const Tensor tgt = uniform64({1, 2, 8, 12}, -1, 1, 391, false);
  Tensor per_score, tiled;
  {
    const DmCorrVersionGuard v1(1);
    per_score = dm_correlation(ref, tgt, 3, 2, 1);
  }
  tiled = dm_correlation(ref, tgt, 3, 2, 1);
  CHECK(same_bits(per_score, tiled));
  CHECK(dm_corr_version() == 0);  // no guard live: each op's default
  CHECK_THAT(error_of([] { DmCorrVersionGuard bad(3); }),
             Contains("DmCorrVersionGuard") && Contains("1 (one dot product per score)") &&
                 Contains("got 3"));
}

// The GPU's side of the tiled forward, on the CPU: every block of DmCorrTiled run as a CUDA
// block runs it (all loads, then every thread item, here in reverse order, since the threads
// of a block run in no fixed order), from a scratch and an output filled with NaN so that a
// score left unwritten, or read from scratch that no load filled, shows. Against the per-score
// forward, bitwise (the same sums in the same order).
TEST_CASE("dm_correlation: the GPU's tiled items, run on the CPU, equal the per-score forward",
          "[ops][deepmatch]") {
  const Geometry cases[] = {{1, 1, 1, 1, 1, 1, 0, 1, 0},   {2, 3, 3, 5, 11, 9, 2, 2, 1},
                            {1, 5, 4, 9, 16, 40, 4, 4, -3}, {2, 13, 3, 17, 12, 70, 5, 4, 2},
                            {1, 2, 5, 3, 7, 6, 6, 1, 0},    {1, 3, 6, 4, 20, 14, 0, 3, 1},
                            {1, 6, 3, 11, 5, 5, 8, 2, 9},   {1, 4, 4, 12, 30, 90, 10, 8, 4}};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  uint64_t seed = 400;
  for (const Geometry& c : cases) {
    INFO(c);
    const Tensor ref = uniform64({c.n, c.d, c.h, c.w}, -1, 1, seed++, false);
    const Tensor tgt = uniform64({c.n, c.d, c.ht, c.wt}, -1, 1, seed++, false);
    Tensor want;
    {
      const DmCorrVersionGuard v1(1);
      want = dm_correlation(ref, tgt, c.r, c.stride, c.offset);
    }
    Tensor got = full(want.shape(), nan, TensorOptions{}.with_dtype(DType::float64));
    const auto g = dm_corr_geom<int32_t>(c.n, c.d, c.h, c.w, c.ht, c.wt, c.r, c.stride, c.offset);
    const DmCorrTiled<double, int32_t> f{ref.data<double>(), tgt.data<double>(), g,
                                         dm_corr_tile_geom(g), got.data<double>()};
    const int32_t blocks = c.n * f.t.rows * f.t.jtiles;
    std::vector<double> scratch(static_cast<size_t>(f.t.scratch(g.d)));
    for (int32_t bi = 0; bi < blocks; ++bi) {
      const auto b = f.block(bi);
      CHECK(b.ni <= f.t.ni_max);
      std::fill(scratch.begin(), scratch.end(), nan);
      for (int32_t l = 0; l < f.target_items(b); ++l) f.load_target(b, l, scratch.data());
      for (int32_t l = 0; l < f.ref_items(b); ++l) f.load_ref(b, l, scratch.data());
      for (int32_t l = f.compute_items(b) - 1; l >= 0; --l) f.compute(b, l, scratch.data());
    }
    CHECK(same_bits(want, got));
  }
}

// The tiled gradient in the descriptors (v2: DmCorrGradRefTiled, the GPU's default, run on the
// CPU exactly as the GPU's blocks run it) against the per-point gather (v1: DmCorrGradRef, the
// CPU's default). Geometries: windows of 1 to 4 parts of 16 rows (the parts' sum), channel
// counts that leave the last group of 4 partial and that need 1 to 75 channel groups (256 to 3
// slices), grids narrower than a tile, rows and columns outside the target map, strides of 1
// to 8. The sums run in another order: equal to rounding in float64.
TEST_CASE("dm_correlation_grad_ref: the tiled gradient equals the per-point gather",
          "[ops][deepmatch]") {
  const Geometry cases[] = {{1, 1, 1, 1, 1, 1, 0, 1, 0},     {2, 3, 3, 5, 11, 9, 2, 2, 1},
                            {1, 5, 4, 9, 16, 40, 9, 4, -3},  {2, 13, 3, 17, 12, 70, 12, 4, 2},
                            {1, 2, 5, 3, 7, 6, 6, 1, 0},     {1, 3, 6, 4, 20, 14, 0, 3, 1},
                            {1, 300, 2, 3, 12, 20, 4, 2, 1}, {1, 64, 3, 10, 40, 90, 30, 8, 4}};
  uint64_t seed = 500;
  for (const Geometry& c : cases) {
    INFO(c);
    const int64_t k = 2 * c.r + 1;
    const Tensor g = uniform64({c.n, c.h, c.w, k, k}, -1, 1, seed++, false);
    const Tensor tgt = uniform64({c.n, c.d, c.ht, c.wt}, -1, 1, seed++, false);
    Tensor gather, tiled;
    {
      const DmCorrVersionGuard v1(1);
      gather = dm_correlation_grad_ref(g, tgt, c.stride, c.offset);
    }
    {
      const DmCorrVersionGuard v2(2);
      tiled = dm_correlation_grad_ref(g, tgt, c.stride, c.offset);
    }
    REQUIRE(tiled.shape() == gather.shape());
    CHECK(allclose(tiled, gather, 1e-12, 1e-12));
    CHECK(sum(cvg::abs(gather)).item<double>() > 0);  // the case computes something
  }
}

// The tiled gradient in the target (v2: DmCorrGradTargetTiled, the GPU's default, run on the CPU
// as the GPU's blocks run it) against the per-pixel gather (v1, the CPU's default): the same
// terms in the same order, so the same bits. Geometries: 1 to 19 channel groups of 16 (256 to 13
// columns per block), the last group partial, targets narrower and wider than a block, rows no
// reference sees (stride > K), offsets of both signs, and a grid wider than the reference
// columns one block can reach (200 channels: 19 columns, whose windows reach at most 8 of the
// 20 reference columns, all 8 at the tile starting at x = 76).
TEST_CASE("dm_correlation_grad_target: the tiled gradient equals the per-pixel gather bitwise",
          "[ops][deepmatch]") {
  const Geometry cases[] = {{1, 1, 1, 1, 1, 1, 0, 1, 0},      {2, 3, 3, 5, 11, 9, 2, 2, 1},
                            {1, 5, 4, 9, 16, 140, 9, 4, -3},  {2, 17, 3, 17, 12, 70, 12, 4, 2},
                            {1, 2, 5, 3, 7, 6, 6, 1, 0},      {1, 3, 6, 4, 20, 14, 0, 3, 1},
                            {1, 300, 2, 3, 12, 20, 4, 2, 1},  {1, 64, 3, 10, 40, 90, 30, 8, 4},
                            {1, 200, 3, 20, 12, 160, 6, 4, 2}};
  uint64_t seed = 600;
  for (const Geometry& c : cases) {
    for (const DType dtype : {DType::float64, DType::float32}) {
      INFO(c << ", " << dtype_name(dtype));
      const int64_t k = 2 * c.r + 1;
      const Tensor g = uniform64({c.n, c.h, c.w, k, k}, -1, 1, seed++, false).to(dtype);
      const Tensor ref = uniform64({c.n, c.d, c.h, c.w}, -1, 1, seed++, false).to(dtype);
      Tensor gather, tiled;
      {
        const DmCorrVersionGuard v1(1);
        gather = dm_correlation_grad_target(g, ref, {c.ht, c.wt}, c.stride, c.offset);
      }
      {
        const DmCorrVersionGuard v2(2);
        tiled = dm_correlation_grad_target(g, ref, {c.ht, c.wt}, c.stride, c.offset);
      }
      CHECK(same_bits(gather, tiled));
    }
  }
}

// Versions 2 and 4 (runs of kDmAggRun and kDmAggShortRun outputs along j, each run's columns
// loaded once) and 3 (spans of k, each point decoded once) of the aggregation family against
// version 1 (one output per item), bitwise: on shapes whose widths are and
// are not multiples of a run (Delta kDmAggRun or Delta kDmAggShortRun), whose
// K^2 is and is not a multiple of kDmSpan, a level shift wider than the grid, one column, and
// -inf / NaN scores and all four switch corners; then every registry sample of the deepmatch
// ops (forward and gradients) under each version.
TEST_CASE("deepmatch aggregation: runs along j and spans of k equal one output per item bitwise",
          "[ops][deepmatch]") {
  struct Case {
    int64_t n, h, w, k;
  };
  uint64_t seed = 900;
  int checked = 0;
  for (const Case c : {Case{1, 1, 1, 1}, Case{2, 3, 7, 3}, Case{1, 9, 5, 1}, Case{1, 2, 33, 3},
                       Case{2, 17, 18, 1}, Case{1, 4, 64, 1}, Case{1, 3, 4, 5}}) {
    for (int64_t level = 0; level <= 4; ++level) {
      for (const DType dtype : {DType::float64, DType::float32}) {
        INFO(c.n << "x" << c.h << "x" << c.w << "x" << c.k << " level " << level << " "
                 << dtype_name(dtype));
        const Shape shape{c.n, c.h, c.w, c.k, c.k};
        Tensor x = uniform64(shape, -1, 2, seed++, false);
        const int64_t numel = x.numel();
        x.data<double>()[numel / 3] = -std::numeric_limits<double>::infinity();
        x.data<double>()[numel / 2] = std::numeric_limits<double>::quiet_NaN();
        x = x.to(dtype);
        const Tensor sw = disagg_switches(shape, level, seed++);
        TensorList outs[4];
        for (const int version : {1, 2, 3, 4}) {
          const DmLayerVersionGuard v(version);
          outs[version - 1] = aggregation_outputs(x, sw, level);
        }
        for (size_t i = 0; i < outs[0].size(); ++i) {
          INFO("output " << i << " (aggregate, its backward, disaggregate, switches, backward)");
          for (int v = 1; v < 4; ++v) {
            INFO("version " << v + 1);
            CHECK(same_bits(outs[0][i], outs[v][i]));
          }
        }
        ++checked;
      }
    }
  }
  for (const OpSpec& spec : op_registry()) {
    if (spec.name.rfind("dm_", 0) != 0 && spec.name != "deep_matching") continue;
    for (const OpSample& s : spec.samples()) {
      const OpFn& fn = s.fn ? s.fn : spec.fn;
      INFO(spec.name << " / " << s.label);
      TensorList per_item;
      {
        const DmLayerVersionGuard v1(1);
        per_item = forward_and_grads(fn, s.inputs);
      }
      for (const int version : {2, 3, 4}) {
        INFO("version " << version);
        const DmLayerVersionGuard v(version);
        const TensorList other = forward_and_grads(fn, s.inputs);
        REQUIRE(per_item.size() == other.size());
        for (size_t i = 0; i < other.size(); ++i) CHECK(same_bits(per_item[i], other[i]));
      }
      ++checked;
    }
  }
  CHECK(checked >= 90);
  CHECK(dm_layer_version() == 0);
  CHECK_THAT(error_of([] { DmLayerVersionGuard bad(5); }),
             Contains("DmLayerVersionGuard") && Contains("4 (short runs along j)") &&
                 Contains("got 5"));
  CHECK_THAT(error_of([] { DmLayerVersionGuard bad(0); }),
             Contains("DmLayerVersionGuard") && Contains("1 (one output per item)") &&
                 Contains("got 0"));
}

// Deep levels: the runs' strides reach 2^31 at level 28 (Delta Run = 2^28 x 8), so the 32-bit
// index a GPU launch prefers must give way to 64 bits there (before, the strides wrapped: a
// division by zero or writes past the end). Every version with 32 bits allowed equals the
// per-output version on 64 bits. Level 39 is the deepest check_level accepts.
TEST_CASE("deepmatch index width: levels 27-39 take 64 bits where the runs need them",
          "[ops][deepmatch]") {
  uint64_t seed = 950;
  for (const int64_t level : {27, 28, 29, 30, 31, 32, 39}) {
    INFO("level " << level);
    const Shape shape{1, 2, 5, 1, 1};
    const Tensor x = uniform64(shape, -1, 2, seed++, false).to(DType::float32);
    const Tensor sw = disagg_switches(shape, level, seed++);
    TensorList outs[5];
    for (const int version : {1, 2, 3, 4}) {
      const DmLayerVersionGuard v(version);
      const DmIndexWidthGuard narrow(32);
      outs[version] = aggregation_outputs(x, sw, level);
    }
    {
      const DmLayerVersionGuard v(1);
      const DmIndexWidthGuard wide(64);
      outs[0] = aggregation_outputs(x, sw, level);
    }
    for (size_t i = 0; i < outs[0].size(); ++i) {
      INFO("output " << i << " (aggregate, its backward, disaggregate, switches, backward)");
      for (int v = 1; v <= 4; ++v) {
        INFO("version " << v << ", 32 bits allowed");
        CHECK(same_bits(outs[0][i], outs[v][i]));
      }
    }
  }
}

// dm_power's backward runs as one kernel when no graph is built of it, and as the
// differentiable composition under create_graph (which the registry's second-derivative check
// uses): the two agree, with A <= 0 entries (both give 0 there), in float64 and float32, and
// with only one of A, nu wanting a gradient.
TEST_CASE("dm_power: the one-pass backward equals the composition create_graph builds",
          "[ops][deepmatch]") {
  for (const DType dtype : {DType::float64, DType::float32}) {
    INFO(dtype_name(dtype));
    const double tol = dtype == DType::float64 ? 1e-13 : 1e-5;
    Tensor a0 = uniform64({2, 3, 4, 5, 5}, -0.5, 2, 950, false);
    a0.data<double>()[7] = 0.0;
    const Tensor w = uniform64({2, 3, 4, 5, 5}, -1, 1, 951, false).to(dtype);
    for (const int wanted : {0, 1, 2}) {  // both, A only, nu only
      INFO("wanted " << wanted);
      Tensor a = a0.to(dtype), nu = t64({1.3}, {1}, false).to(dtype);
      if (wanted != 2) a.set_requires_grad(true);
      if (wanted != 1) nu.set_requires_grad(true);
      TensorList ins;
      if (wanted != 2) ins.push_back(a);
      if (wanted != 1) ins.push_back(nu);
      const TensorList fused = grad({sum(mul(dm_power(a, nu), w))}, ins);
      const TensorList composed =
          grad({sum(mul(dm_power(a, nu), w))}, ins, {}, {.create_graph = true});
      REQUIRE(fused.size() == composed.size());
      for (size_t i = 0; i < fused.size(); ++i) {
        CHECK_FALSE(fused[i].requires_grad());
        CHECK(composed[i].requires_grad());  // the composition is a graph
        CHECK(allclose(fused[i], composed[i].detach(), tol, tol));
      }
    }
  }
}

// d nu over more blocks than a block has threads: 1,228,837 elements are 76,803 items of
// kDmPowerRun, 301 blocks of kDmGridBlock (the last block's threads add two blocks' sums each,
// the last item short of a full run); against the sum of its definition's terms, in float64.
TEST_CASE("dm_power: the one-pass backward's d nu over many blocks", "[ops][deepmatch]") {
  const int64_t n = 16 * 256 * 300 + 37;
  Tensor a = uniform64({1, 1, 1, 1, n}, -0.2, 1.5, 956, false);
  const Tensor w = uniform64({1, 1, 1, 1, n}, -1, 1, 957, false);
  Tensor nu = t64({1.3}, {1}, false);
  const double* ap = a.data<double>();
  const double* wp = w.data<double>();
  double want = 0.0;  // d nu = sum of w A^nu ln A over A > 0
  for (int64_t e = 0; e < n; ++e)
    if (ap[e] > 0) want += wp[e] * std::pow(ap[e], 1.3) * std::log(ap[e]);
  a.set_requires_grad(true);
  nu.set_requires_grad(true);
  const TensorList g = grad({sum(mul(dm_power(a, nu), w))}, {a, nu});
  CHECK(g[1].item() == Approx(want).epsilon(1e-11));
  CHECK(g[0].shape() == a.shape());
}

namespace {

// The loss and its gradient in Q by the definition (kernels/deepmatch.h), in float64.
struct HingeReference {
  double loss;
  std::vector<double> grad;
};
HingeReference hinge_reference(const Tensor& q, const std::vector<int32_t>& gtv, double sigma) {
  const int64_t k = q.shape()[3], kk = k * k, points = q.numel() / kk;
  const double* qp = q.data<double>();
  HingeReference r{0.0, std::vector<double>(static_cast<size_t>(q.numel()), 0.0)};
  const double terms = static_cast<double>(q.numel());
  for (int64_t p = 0; p < points; ++p) {
    const int64_t gy = gtv[2 * p], gx = gtv[2 * p + 1];
    if (gy < 0 || gy >= k || gx < 0 || gx >= k) continue;
    const double at_gt = qp[p * kk + gy * k + gx];
    if (!(at_gt > -kInf)) continue;
    for (int64_t e = 0; e < kk; ++e) {
      const double v = qp[p * kk + e];
      if (!(v > -kInf)) continue;
      const double dy = static_cast<double>(e / k - gy), dx = static_cast<double>(e % k - gx);
      const double t = 1 - std::exp(-(dy * dy + dx * dx) / (2 * sigma * sigma)) + v - at_gt;
      if (t <= 0) continue;
      r.loss += t / terms;
      r.grad[static_cast<size_t>(p * kk + e)] += 1 / terms;
      r.grad[static_cast<size_t>(p * kk + gy * k + gx)] -= 1 / terms;
    }
  }
  return r;
}

void check_hinge_reference(Tensor q, const std::vector<int32_t>& gtv, double sigma) {
  const Shape& s = q.shape();
  const Tensor gt = gt32(gtv, {s[0], s[1], s[2], 2});
  const HingeReference want = hinge_reference(q, gtv, sigma);
  q.set_requires_grad(true);
  const Tensor loss = dm_hinge_loss(q, gt, sigma);
  CHECK(loss.item() == Approx(want.loss).epsilon(1e-12));
  const Tensor g = grad({loss}, {q})[0];
  CHECK(max_abs_diff(g, from_vector(want.grad, s, TensorOptions{}.with_dtype(DType::float64))) <
        1e-13);
}

}  // namespace

// At K = 61 every work item of the loss walks 14 or 15 scores (K^2 = 3721 over 256 slices), so
// its loads go kDmHingeIlp at a time and then one by one (dm_hinge_walk); the registry's samples
// (K <= 5) give each item one score. Loss and gradient against the definition, with -inf
// scores, a point whose gt lies off the window and one whose gt score is -inf.
TEST_CASE("dm_hinge_loss walks long slices as its definition says", "[ops][deepmatch]") {
  const int64_t h = 2, w = 3, k = 61, kk = k * k;
  Tensor q = uniform64({1, h, w, k, k}, -1, 1, 960, false);
  double* qp = q.data<double>();
  for (int64_t e = 0; e < q.numel(); e += 37) qp[e] = -kInf;
  const std::vector<int32_t> gtv = {30, 30, 3, 58, 60, 0, 61, 5, 10, 10, 7, 49};  // 3: gy off
  qp[4 * kk + 10 * k + 10] = -kInf;  // point 4: gt score -inf
  for (int64_t p = 0; p < h * w; ++p)
    if (p != 3 && p != 4) qp[p * kk + gtv[2 * p] * k + gtv[2 * p + 1]] = 0.25;  // finite gt
  check_hinge_reference(q, gtv, 9.0);
}

// More points than a block has threads: the last block's total walks several points per
// thread (DmHingeLoss::total_part); with K = 5 each point has 25 slices, and the block's other
// threads add zeros. Ground truths on and off the window.
TEST_CASE("dm_hinge_loss sums more points than a block has threads", "[ops][deepmatch]") {
  const int64_t n = 2, h = 13, w = 23, k = 5;  // 598 points
  const Tensor q = uniform64({n, h, w, k, k}, -1, 1, 961, false);
  std::vector<int32_t> gtv(static_cast<size_t>(2 * n * h * w));
  for (size_t e = 0; e < gtv.size(); ++e) gtv[e] = static_cast<int32_t>((e * 7 + e / 5) % 6);
  check_hinge_reference(q, gtv, 1.3);
}

// Terms outside the Gaussian's reach (dm_hinge_near) skip the exp: every term of a plane, for
// ground truths in the middle and at corners and sigmas from a fraction of a step to beyond the
// plane, has the bits of the term that always takes the exp.
template <typename T>
void check_hinge_reach() {
  constexpr int64_t k = 61;
  for (const double sigma : {0.2, 0.7, 1.0, 2.0, 4.5, 40.0}) {
    DmHingeGeom<int64_t> g, always;
    g.k = always.k = k;
    g.inv_two_sigma2 = always.inv_two_sigma2 = 1 / (2 * sigma * sigma);
    g.fk = always.fk = FastDivOf<int64_t>::for_size(k);
    g.near[0] = dm_hinge_near<float>(g.inv_two_sigma2, k);
    g.near[1] = dm_hinge_near<double>(g.inv_two_sigma2, k);
    always.near[0] = always.near[1] = k;
    const int64_t r = g.near[std::is_same_v<T, double> ? 1 : 0];
    INFO("sigma " << sigma << ", reach " << r);
    CHECK(r >= 1);
    if (sigma <= 4.5) CHECK(r < k);  // the exp is skipped somewhere
    for (const auto& [gy, gx] : {std::pair<int64_t, int64_t>{30, 30}, {0, 60}, {57, 3}}) {
      int64_t differ = 0;
      for (int64_t q = 0; q < k * k; ++q) {
        // Scores around the ground truth's, so that terms are positive or just clipped at 0.
        const T v = static_cast<T>(0.25 + 1e-3 * static_cast<double>(q % 97));
        const T a = dm_hinge_term(v, g, gy, gx, q, T(0.3));
        const T b = dm_hinge_term(v, always, gy, gx, q, T(0.3));
        if (std::memcmp(&a, &b, sizeof(T)) != 0) ++differ;
      }
      CHECK(differ == 0);
    }
  }
}

TEST_CASE("dm_hinge_loss: terms beyond the Gaussian's reach keep their bits without the exp",
          "[ops][deepmatch]") {
  check_hinge_reach<float>();
  check_hinge_reach<double>();
  // The reach at the app's default (sigma 2): beyond |z| = 12 steps per axis in float
  // (exp(-13^2 / 8) = 6.8e-10 <= 2^-26 = 1.5e-8, exp(-12^2 / 8) = 1.52e-8 is not), beyond 17
  // in double (exp(-18^2 / 8) = 2.6e-18 <= 2^-55 = 2.8e-17).
  CHECK(dm_hinge_near<float>(1.0 / 8, 161) == 12);
  CHECK(dm_hinge_near<double>(1.0 / 8, 161) == 17);
}

// The pooling family by 2 x 2 cells (version 2: dm_max_pool_backward, dm_unpool and its backward
// and adjoint) and dm_max_pool by pairs of outputs (version 2) against one element per item,
// bitwise, for odd and even R (padding 2 and 1) and
// the smallest windows, with switches of real pooling (windows overlap, so two windows can name
// one element) and of every corner; winners with ties and -inf values.
TEST_CASE("deepmatch pooling family: 2 x 2 cells and the CPU's planes equal one element per item bitwise",
          "[ops][deepmatch]") {
  uint64_t seed = 970;
  for (const int64_t k : {1, 3, 5, 7, 9, 11, 13, 33}) {
    for (const DType dtype : {DType::float64, DType::float32}) {
      INFO("K " << k << ", " << dtype_name(dtype));
      const Shape fine{2, 3, 2, k, k};
      const Tensor sw = pool_switches(fine, seed++);
      const Tensor g = uniform64(sw.shape(), -1, 1, seed++, false).to(dtype);
      Tensor qh = uniform64(sw.shape(), -1, 1, seed++, false);
      qh.data<double>()[0] = -std::numeric_limits<double>::infinity();
      qh.data<double>()[1] = qh.data<double>()[2];
      qh = qh.to(dtype);
      const Tensor skip = uniform64(fine, -1, 1, seed++, false).to(dtype);
      Tensor skip_inf = skip.to(DType::float64);
      skip_inf.data<double>()[skip.numel() - 1] = -std::numeric_limits<double>::infinity();
      skip_inf = skip_inf.to(dtype);
      const Tensor gf = uniform64(fine, -1, 1, seed++, false).to(dtype);
      // Pooling's input: values on a coarse grid (ties within windows), some -inf, one NaN.
      Tensor pin = uniform64(fine, -1, 1, seed++, false);
      for (int64_t i = 0; i < pin.numel(); ++i) {
        double& v = pin.data<double>()[i];
        v = i % 7 == 3 ? -std::numeric_limits<double>::infinity() : std::round(4 * v);
      }
      pin.data<double>()[pin.numel() / 2] = std::numeric_limits<double>::quiet_NaN();
      pin = pin.to(dtype);
      // Every window position that lies in the fine map (pooling never picks the padding), in
      // turn: corner i % 9 of coarse element i, or the first in-map one after it.
      Tensor corners = sw.clone();
      const int64_t kc = sw.shape()[3], pad = 1 + (kc - 1) - (k - 1) / 2;
      for (int64_t i = 0; i < corners.numel(); ++i) {
        const int64_t c = i % (kc * kc), cy = c / kc, cx = c % kc;
        for (int64_t t = i % 9;; t = (t + 1) % 9) {
          const int64_t fy = 2 * cy - pad + t / 3, fx = 2 * cx - pad + t % 3;
          if (fy >= 0 && fy < k && fx >= 0 && fx < k) {
            corners.data<uint8_t>()[i] = static_cast<uint8_t>(t);
            break;
          }
        }
      }
      for (const Tensor& s : {sw, corners}) {
        auto all = [&] {
          const DmPooled pooled = dm_max_pool(pin);
          return TensorList{dm_max_pool_backward(g, s, k), dm_unpool(qh, s, skip),
                            dm_unpool_backward(gf, qh, s, k), dm_unpool_adjoint(g, qh, s, k),
                            pooled.values, pooled.switches};
        };
        TensorList per_element, cells;
        {
          const DmLayerVersionGuard v1(1);
          per_element = all();
        }
        {
          const DmLayerVersionGuard v2(2);
          cells = all();
        }
        // No guard: the CPU's defaults (dm_max_pool and the unpooling ops by whole planes).
        const TensorList defaults = all();
        for (size_t i = 0; i < cells.size(); ++i) {
          INFO("output " << i
                         << " (pool backward, unpool, its backward, its adjoint, pool, switches)");
          CHECK(same_bits(per_element[i], cells[i]));
          CHECK(same_bits(per_element[i], defaults[i]));
        }
        // Both of dm_unpool's gradients in one pass by cells (version 2) and by default (the
        // two ops on the CPU), each alone or together: the two ops' bits (Q_l with -inf where
        // no switch names an element and where the skip term is -inf).
        const Tensor q = dm_unpool(qh, s, skip_inf);
        const Tensor d_skip = dm_unpool_skip_backward(gf, q);
        for (const int version : {2, 0}) {
          INFO("dm_unpool_grads, version " << version);
          std::optional<DmLayerVersionGuard> guard;
          if (version != 0) guard.emplace(version);
          const DmUnpoolGrads both = dm_unpool_grads(gf, qh, s, q);
          CHECK(same_bits(both.q_half, per_element[2]));
          CHECK(same_bits(both.s, d_skip));
          CHECK(same_bits(dm_unpool_grads(gf, qh, s, q, true, false).q_half, per_element[2]));
          CHECK_FALSE(dm_unpool_grads(gf, qh, s, q, true, false).s.defined());
          CHECK(same_bits(dm_unpool_grads(gf, qh, s, q, false, true).s, d_skip));
        }
      }
    }
  }
}

// dm_unpool by planes offers a window's value only where the gather could match its switch: an
// index below 9 naming an element inside the plane (a switch naming padding, or out of range,
// which dm_max_pool never makes, is ignored by both); dm_max_pool_backward's planes add such a
// window's gradient nowhere.
TEST_CASE("dm_unpool, its gradients and dm_max_pool_backward by planes ignore switches that name no element of the plane",
          "[ops][deepmatch]") {
  for (const int64_t k : {3, 5, 7}) {  // padding 2, 1, 2
    INFO("K " << k);
    const Shape fine{2, 1, 2, k, k};
    Tensor sw = pool_switches(fine, 993);
    const int64_t kc = sw.shape()[3];
    const int64_t centre = kc * kc + (kc / 2) * kc + kc / 2, right = 2 * kc * kc + 2 * kc - 1;
    sw.data<uint8_t>()[0] = 0;            // window (0, 0): top-left in the padding
    sw.data<uint8_t>()[kc * kc - 1] = 8;  // the last window: bottom-right in the padding
    sw.data<uint8_t>()[right] = 5;        // window (1, kc - 1): middle right, past the last column
    // Switches naming the padding have a defined gradient (0, the cells' rule); indices above 8
    // only a defined forward and adjoint (the gathers' rule: they match no element).
    const Tensor sw_pad = sw.clone();
    sw.data<uint8_t>()[centre] = 9;  // not a window index (row 3 of the window: in the map)
    sw.data<uint8_t>()[kc * kc] = 255;
    Tensor qh = uniform64(sw.shape(), -1, 1, 994, false);
    // Values that would win wherever they were (wrongly) offered.
    qh.data<double>()[centre] = qh.data<double>()[right] = 5;
    const Tensor skip = uniform64(fine, -1, 1, 995, false);
    const Tensor gf = uniform64(fine, -1, 1, 996, false), x = uniform64(sw.shape(), -1, 1, 997, false);
    Tensor gather, adjoint, cells_backward, pool_backward;
    {
      const DmLayerVersionGuard v1(1);
      gather = dm_unpool(qh, sw, skip);
      adjoint = dm_unpool_adjoint(x, qh, sw, k);
      pool_backward = dm_max_pool_backward(x, sw, k);
    }
    {
      // The per-element backward decodes whatever a switch names; the cells give padding 0.
      const DmLayerVersionGuard v2(2);
      cells_backward = dm_unpool_backward(gf, qh, sw_pad, k);
    }
    CHECK(same_bits(dm_unpool(qh, sw, skip), gather));
    CHECK(same_bits(dm_unpool_adjoint(x, qh, sw, k), adjoint));
    // dm_max_pool_backward by planes: such windows add nothing, as in the gather.
    CHECK(same_bits(dm_max_pool_backward(x, sw, k), pool_backward));
    CHECK(same_bits(dm_unpool_backward(gf, qh, sw_pad, k), cells_backward));
    {
      // The one-pass gradients take the cells' rule too.
      const DmLayerVersionGuard v2(2);
      CHECK(same_bits(dm_unpool_grads(gf, qh, sw_pad, dm_unpool(qh, sw_pad, skip)).q_half,
                      cells_backward));
    }
  }
}

// A switch that names the padding (dm_max_pool never makes one) gets 0 from the cells'
// dm_unpool_backward: every coarse output is written by exactly one cell.
TEST_CASE("dm_unpool_backward by cells: a switch naming the padding gets 0", "[ops][deepmatch]") {
  for (const int64_t k : {3, 5}) {  // padding 2 and 1
    INFO("K " << k);
    const Shape fine{1, 1, 1, k, k};
    const Tensor sw = pool_switches(fine, 990);
    const int64_t kc = sw.shape()[3];
    Tensor bad = sw.clone();
    bad.data<uint8_t>()[0] = 0;            // window (0, 0): its top-left lies in the padding
    bad.data<uint8_t>()[kc * kc - 1] = 8;  // the last window: its bottom-right too
    // The two windows hold the lowest values: under the valid switches they win nothing, so
    // moving them changes no other window's outcome.
    Tensor qh = uniform64(sw.shape(), 1, 2, 991, false);
    qh.data<double>()[0] = qh.data<double>()[kc * kc - 1] = 0.5;
    const Tensor gf = uniform64(fine, 1, 2, 992, false);
    const DmLayerVersionGuard v2(2);
    const Tensor d = dm_unpool_backward(gf, qh, bad, k);
    CHECK(d.data<double>()[0] == 0.0);
    CHECK(d.data<double>()[kc * kc - 1] == 0.0);
    const Tensor ok = dm_unpool_backward(gf, qh, sw, k);
    for (int64_t i = 1; i + 1 < kc * kc; ++i) CHECK(d.data<double>()[i] == ok.data<double>()[i]);
  }
}
