// Tests of the pooling ops (kernels/pool.h): registry entries with hand-computed 4 x 4 cases
// (values and switch indices; ties, NaN, padding, dilation, ceil_mode, stride < kernel),
// gradcheck samples on tie-free inputs (distinct64), and plain test cases for the unpooling
// rule on overlapping windows, the pool/unpool round trip, unbatched input and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

// The 4 x 4 plane of the hand-computed cases, as 1 x 1 x 4 x 4.
//    1  2  5  3
//    4  0  6  1
//    7  8  2  2
//    3  9  2  0
const std::vector<double> kPlane = {1, 2, 5, 3, 4, 0, 6, 1, 7, 8, 2, 2, 3, 9, 2, 0};

Tensor x44(double shift = 0.0) {
  std::vector<double> v = kPlane;
  for (double& e : v) e += shift;
  return t64(v, {1, 1, 4, 4});
}

Tensor sw32(const std::vector<int32_t>& v, const Shape& shape) {
  return from_vector<int32_t>(v, shape, TensorOptions{}.with_dtype(DType::int32));
}

// Expected switches are compared as float64 (the registry compares floating tensors).
Tensor sw_expected(const std::vector<double>& v, const Shape& shape) {
  return t64(v, shape, false);
}

// Switches of max pooling a tie-free tensor: valid switch inputs for the unpooling samples.
Tensor switches_of(const Shape& shape, PoolSize2 kernel, PoolSize2 stride, PoolSize2 padding,
                   uint64_t seed) {
  NoGradGuard no_grad;
  return max_pool2d_with_indices(distinct64(shape, 0.1, seed, false), kernel, stride, padding)
      .switches;
}

using Catch::Matchers::Contains;

}  // namespace

// ---------------------------------------------------------------------------------------------
// max_pool2d: values (differentiable) and switches (compared as numbers)

CVG_REGISTER_OP(OpSpec{
    "max_pool2d",
    [](const TensorList& xs) { return max_pool2d(xs[0], {2, 2}); },
    [] {
      const double nan = std::numeric_limits<double>::quiet_NaN();
      return std::vector<OpSample>{
          // Windows [1 2; 4 0] [5 3; 6 1] [7 8; 3 9] [2 2; 2 0] (the last a three-way tie).
          {"hand 2x2 stride 2", {x44()}, t64({4, 6, 9, 2}, {1, 1, 2, 2}, false), false, nullptr},
          // 3x3 windows at stride 1 overlap: 8 and 9 each win two windows.
          {"hand 3x3 stride 1 (overlapping)",
           {x44()},
           t64({8, 8, 9, 9}, {1, 1, 2, 2}, false),
           false,
           [](const TensorList& xs) { return max_pool2d(xs[0], {3, 3}, {{1, 1}}); }},
          // Shifted to negative values: padding is -inf, not 0, so it never wins.
          {"hand padding 1 on negative input",
           {x44(-10)},
           t64({-9, -5, -7, -3, -2, -8, -7, -1, -10}, {1, 1, 3, 3}, false),
           false,
           [](const TensorList& xs) { return max_pool2d(xs[0], {2, 2}, {{2, 2}}, {1, 1}); }},
          // Dilation 2: taps (o, o + 2) in each direction.
          {"hand dilation 2",
           {x44()},
           t64({7, 8, 6, 9}, {1, 1, 2, 2}, false),
           false,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {2, 2}, {{1, 1}}, {0, 0}, {2, 2});
           }},
          // ceil_mode adds a clipped last window (rows and columns 2..3).
          {"hand ceil_mode 3x3 stride 2",
           {x44()},
           t64({8, 6, 9, 2}, {1, 1, 2, 2}, false),
           false,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {3, 3}, {{2, 2}}, {0, 0}, {1, 1}, true);
           }},
          // ceil_mode with a kernel longer than the input: one window, hanging past the end
          // (its size numerator is negative; it was refused). Values match PyTorch 1.13.
          {"hand ceil_mode kernel 3 stride 2 on 2x2",
           {t64({0, 1, 2, 3}, {1, 1, 2, 2})},
           t64({3}, {1, 1, 1, 1}, false),
           true,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {3, 3}, {{2, 2}}, {0, 0}, {1, 1}, true);
           }},
          {"hand ceil_mode kernel (1, 6) stride (1, 3) on 1x5",
           {t64({0, 1, 2, 3, 4}, {1, 1, 1, 5})},
           t64({4}, {1, 1, 1, 1}, false),
           true,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {1, 6}, {{1, 3}}, {0, 0}, {1, 1}, true);
           }},
          // Rows: dilated kernel 4 x 2 spans 7 > 5 rows, taps 0, 2, 4; columns: taps 0, 3, 6
          // and 2, 5, 8. Maxima 4 * 9 + 6 = 42 and 44 (PyTorch 1.13: [[42, 44]]).
          {"hand ceil_mode dilated kernel longer than 5 rows",
           {[] {
             std::vector<double> v(45);
             for (int i = 0; i < 45; ++i) v[i] = i;
             return t64(v, {1, 1, 5, 9});
           }()},
           t64({42, 44}, {1, 1, 1, 2}, false),
           true,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {4, 3}, {{3, 2}}, {0, 0}, {2, 3}, true);
           }},
          {"hand NaN propagates",
           {t64({1, nan, 5, 3, 4, nan, nan, 1, 7, 8, 2, 2, 3, 9, 2, 0}, {1, 1, 4, 4})},
           t64({nan, nan, 9, 2}, {1, 1, 2, 2}, false),
           false,
           nullptr},
          {"2x3x7x6 kernel 2", {distinct64({2, 3, 7, 6}, 0.1, 1)}, Tensor(), true, nullptr},
          {"3x3 stride 2 padding 1 (overlapping)",
           {distinct64({2, 2, 7, 8}, 0.1, 2)},
           Tensor(),
           true,
           [](const TensorList& xs) { return max_pool2d(xs[0], {3, 3}, {{2, 2}}, {1, 1}); }},
          {"3x2 stride (1, 2) dilation (2, 1) ceil_mode",
           {distinct64({1, 2, 9, 7}, 0.1, 3)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return max_pool2d(xs[0], {3, 2}, {{1, 2}}, {1, 1}, {2, 1}, true);
           }},
          {"unbatched C x H x W, 3x3 stride 1",
           {distinct64({3, 5, 5}, 0.1, 4)},
           Tensor(),
           true,
           [](const TensorList& xs) { return max_pool2d(xs[0], {3, 3}, {{1, 1}}); }},
          {"transposed input",
           {distinct64({2, 2, 6, 5}, 0.1, 5)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return max_pool2d(permute(xs[0], {0, 1, 3, 2}), {2, 3}, {{2, 1}});
           }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "max_pool2d_with_indices (switches)",
    [](const TensorList& xs) {
      return max_pool2d_with_indices(xs[0], {2, 2}).switches.to(DType::float64);
    },
    [] {
      const double nan = std::numeric_limits<double>::quiet_NaN();
      auto sw = [](PoolSize2 k, PoolSize2 s, PoolSize2 p, PoolSize2 d, bool ceil) -> OpFn {
        return [=](const TensorList& xs) {
          return max_pool2d_with_indices(xs[0], k, s, p, d, ceil).switches.to(DType::float64);
        };
      };
      return std::vector<OpSample>{
          // Plane-local h * W + w; the tie [2 2; 2 0] goes to its first 2, at (2, 2) = 10.
          {"hand 2x2 stride 2 with a tie",
           {x44()}, sw_expected({4, 6, 13, 10}, {1, 1, 2, 2}), false, nullptr},
          {"hand 3x3 stride 1 (overlapping)",
           {x44()}, sw_expected({9, 9, 13, 13}, {1, 1, 2, 2}), false,
           sw({3, 3}, {1, 1}, {0, 0}, {1, 1}, false)},
          {"hand padding 1",
           {x44(-10)}, sw_expected({0, 2, 3, 8, 9, 11, 12, 13, 15}, {1, 1, 3, 3}), false,
           sw({2, 2}, {2, 2}, {1, 1}, {1, 1}, false)},
          {"hand dilation 2",
           {x44()}, sw_expected({8, 9, 6, 13}, {1, 1, 2, 2}), false,
           sw({2, 2}, {1, 1}, {0, 0}, {2, 2}, false)},
          {"hand ceil_mode 3x3 stride 2",
           {x44()}, sw_expected({9, 6, 13, 10}, {1, 1, 2, 2}), false,
           sw({3, 3}, {2, 2}, {0, 0}, {1, 1}, true)},
          // One window hanging past a 2x2 input: its maximum 3 at index 3 (PyTorch 1.13: 3).
          {"hand ceil_mode kernel 3 stride 2 on 2x2",
           {t64({0, 1, 2, 3}, {1, 1, 2, 2})}, sw_expected({3}, {1, 1, 1, 1}), false,
           sw({3, 3}, {2, 2}, {0, 0}, {1, 1}, true)},
          // Window 0 holds NaN at 1 and 5: the first NaN wins. Window 1: NaN at 6 beats 5 and 3.
          {"hand NaN: first NaN wins",
           {t64({1, nan, 5, 3, 4, nan, nan, 1, 7, 8, 2, 2, 3, 9, 2, 0}, {1, 1, 4, 4})},
           sw_expected({1, 6, 13, 10}, {1, 1, 2, 2}), false, nullptr},
          // All-equal plane: every window picks its top-left tap.
          {"hand all ties",
           {t64(std::vector<double>(16, 3.0), {1, 1, 4, 4})},
           sw_expected({0, 1, 4, 5}, {1, 1, 2, 2}), false,
           sw({3, 3}, {1, 1}, {0, 0}, {1, 1}, false)}};
    },
    /*gradgrad=*/false,
    /*differentiable=*/false});

CVG_REGISTER_OP(OpSpec{
    "max_pool2d_backward",
    [](const TensorList& xs) {
      return max_pool2d_backward(xs[0], xs[1], {1, 1, 4, 4}, {3, 3}, {1, 1});
    },
    [] {
      return std::vector<OpSample>{
          // Switches [9 9; 13 13] of the overlapping 3x3 case: input 9 collects 1 + 2, 13 gets
          // 3 + 4, the others nothing.
          {"hand overlapping windows sum their gradients",
           {t64({1, 2, 3, 4}, {1, 1, 2, 2}), sw32({9, 9, 13, 13}, {1, 1, 2, 2})},
           t64({0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0}, {1, 1, 4, 4}, false),
           true,
           nullptr},
          {"3x3 stride 2 padding 1",
           {uniform64({2, 3, 4, 4}, -1, 1, 11),
            switches_of({2, 3, 7, 8}, {3, 3}, {2, 2}, {1, 1}, 12)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return max_pool2d_backward(xs[0], xs[1], {2, 3, 7, 8}, {3, 3}, {2, 2}, {1, 1});
           }}};
    }});

// ---------------------------------------------------------------------------------------------
// adaptive_max_pool2d

CVG_REGISTER_OP(OpSpec{
    "adaptive_max_pool2d",
    [](const TensorList& xs) { return adaptive_max_pool2d(xs[0], {3, 3}); },
    [] {
      return std::vector<OpSample>{
          // 4 -> 3 windows per axis: [0, 2), [1, 3), [2, 4).
          {"hand 4x4 -> 3x3", {x44()}, t64({4, 6, 6, 8, 8, 6, 9, 9, 2}, {1, 1, 3, 3}, false),
           false, nullptr},
          {"hand 4x4 -> 3x3 switches",
           {x44()},
           sw_expected({4, 6, 6, 9, 9, 6, 13, 13, 10}, {1, 1, 3, 3}),
           false,
           [](const TensorList& xs) {
             return adaptive_max_pool2d_with_indices(xs[0], {3, 3}).switches.to(DType::float64);
           }},
          {"7x5 -> 3x2", {distinct64({2, 2, 7, 5}, 0.1, 21)}, Tensor(), true,
           [](const TensorList& xs) { return adaptive_max_pool2d(xs[0], {3, 2}); }},
          {"3x4 -> 5x6 (upsampling windows)", {distinct64({1, 2, 3, 4}, 0.1, 22)}, Tensor(), true,
           [](const TensorList& xs) { return adaptive_max_pool2d(xs[0], {5, 6}); }}};
    }});

// ---------------------------------------------------------------------------------------------
// max_unpool2d

CVG_REGISTER_OP(OpSpec{
    "max_unpool2d",
    [](const TensorList& xs) { return max_unpool2d(xs[0], xs[1], {4, 4}); },
    [] {
      return std::vector<OpSample>{
          {"hand non-overlapping",
           {t64({4, 6, 9, 2}, {1, 1, 2, 2}), sw32({4, 6, 13, 10}, {1, 1, 2, 2})},
           t64({0, 0, 0, 0, 4, 0, 6, 0, 0, 0, 2, 0, 0, 9, 0, 0}, {1, 1, 4, 4}, false),
           true,
           nullptr},
          // Inputs 0 and 1 both target 9, inputs 2 and 3 both target 13: the last writer in
          // row-major input order wins (2 and 4).
          {"hand overlapping: last writer wins",
           {t64({1, 2, 3, 4}, {1, 1, 2, 2}), sw32({9, 9, 13, 13}, {1, 1, 2, 2})},
           t64({0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0}, {1, 1, 4, 4}, false),
           true,
           nullptr},
          {"2x2 stride 2 to 7x6",
           {uniform64({2, 3, 3, 3}, -1, 1, 31),
            switches_of({2, 3, 7, 6}, {2, 2}, {2, 2}, {0, 0}, 32)},
           Tensor(),
           true,
           [](const TensorList& xs) { return max_unpool2d(xs[0], xs[1], {7, 6}); }},
          {"3x3 stride 1 to 6x5 (many overwritten)",
           {uniform64({1, 2, 4, 3}, -1, 1, 33),
            switches_of({1, 2, 6, 5}, {3, 3}, {1, 1}, {0, 0}, 34)},
           Tensor(),
           true,
           [](const TensorList& xs) { return max_unpool2d(xs[0], xs[1], {6, 5}); }},
          {"unbatched",
           {uniform64({2, 3, 2}, -1, 1, 35),
            squeeze(switches_of({1, 2, 6, 5}, {2, 2}, {2, 2}, {0, 0}, 36), 0)},
           Tensor(),
           true,
           [](const TensorList& xs) { return max_unpool2d(xs[0], xs[1], {6, 5}); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "max_unpool2d_backward",
    [](const TensorList& xs) { return max_unpool2d_backward(xs[0], xs[1]); },
    [] {
      std::vector<double> g(16);
      for (int i = 0; i < 16; ++i) g[i] = i + 1;
      return std::vector<OpSample>{
          // Gathers grad_out at the switches; inputs 0 and 2 were overwritten by 1 and 3.
          {"hand overlapping: overwritten inputs get 0",
           {t64(g, {1, 1, 4, 4}), sw32({9, 9, 13, 13}, {1, 1, 2, 2})},
           t64({0, 10, 0, 14}, {1, 1, 2, 2}, false),
           true,
           nullptr},
          {"hand non-overlapping",
           {t64(g, {1, 1, 4, 4}), sw32({4, 6, 13, 10}, {1, 1, 2, 2})},
           t64({5, 7, 14, 11}, {1, 1, 2, 2}, false),
           true,
           nullptr},
          {"3x3 stride 2 from 7x7",
           {uniform64({2, 2, 7, 7}, -1, 1, 41),
            switches_of({2, 2, 7, 7}, {3, 3}, {2, 2}, {0, 0}, 42)},
           Tensor(),
           true,
           nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// avg_pool2d

CVG_REGISTER_OP(OpSpec{
    "avg_pool2d",
    [](const TensorList& xs) { return avg_pool2d(xs[0], {2, 2}); },
    [] {
      return std::vector<OpSample>{
          {"hand 2x2 stride 2", {x44()}, t64({1.75, 3.75, 6.75, 1.5}, {1, 1, 2, 2}, false), true,
           nullptr},
          // Window sums 1, 7, 3 / 11, 16, 3 / 3, 11, 0 over 2 x 2 padded windows.
          {"hand padding 1, count_include_pad",
           {x44()},
           t64({0.25, 1.75, 0.75, 2.75, 4, 0.75, 0.75, 2.75, 0}, {1, 1, 3, 3}, false),
           true,
           [](const TensorList& xs) { return avg_pool2d(xs[0], {2, 2}, {{2, 2}}, {1, 1}); }},
          {"hand padding 1, count_include_pad false",
           {x44()},
           t64({1, 3.5, 3, 5.5, 4, 1.5, 3, 5.5, 0}, {1, 1, 3, 3}, false),
           true,
           [](const TensorList& xs) {
             return avg_pool2d(xs[0], {2, 2}, {{2, 2}}, {1, 1}, false, false);
           }},
          // 3x3 stride 2 padding 1 ceil_mode: windows start at -1, 1, 3; the last one hangs past
          // the right padding and counts only up to it (3, 3, 2 positions per axis).
          {"hand ceil_mode divisor",
           {x44()},
           t64({7.0 / 9, 17.0 / 9, 4.0 / 6, 31.0 / 9, 30.0 / 9, 3.0 / 6, 12.0 / 6, 11.0 / 6, 0},
               {1, 1, 3, 3}, false),
           true,
           [](const TensorList& xs) {
             return avg_pool2d(xs[0], {3, 3}, {{2, 2}}, {1, 1}, true, true);
           }},
          // A kernel longer than the input with ceil_mode: one window, divided by the part that
          // lies in the input, 4 and 5 positions (PyTorch 1.13: 1.5 and 2).
          {"hand ceil_mode kernel 3 stride 2 on 2x2",
           {t64({0, 1, 2, 3}, {1, 1, 2, 2})},
           t64({1.5}, {1, 1, 1, 1}, false),
           true,
           [](const TensorList& xs) {
             return avg_pool2d(xs[0], {3, 3}, {{2, 2}}, {0, 0}, true);
           }},
          {"hand ceil_mode kernel (1, 6) stride (1, 3) on 1x5",
           {t64({0, 1, 2, 3, 4}, {1, 1, 1, 5})},
           t64({2}, {1, 1, 1, 1}, false),
           true,
           [](const TensorList& xs) {
             return avg_pool2d(xs[0], {1, 6}, {{1, 3}}, {0, 0}, true);
           }},
          {"3x3 stride 1 padding 1 (overlapping)",
           {uniform64({2, 3, 5, 6}, -1, 1, 51)},
           Tensor(),
           true,
           [](const TensorList& xs) { return avg_pool2d(xs[0], {3, 3}, {{1, 1}}, {1, 1}); }},
          {"3x2 stride (2, 1) ceil_mode no pad counting",
           {uniform64({1, 2, 8, 5}, -1, 1, 52)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return avg_pool2d(xs[0], {3, 2}, {{2, 1}}, {1, 1}, true, false);
           }},
          {"unbatched", {uniform64({2, 6, 4}, -1, 1, 53)}, Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "avg_pool2d_backward",
    [](const TensorList& xs) {
      return avg_pool2d_backward(xs[0], {1, 1, 4, 4}, {3, 3}, {1, 1});
    },
    [] {
      return std::vector<OpSample>{
          // Each of the four 3x3 windows adds its gradient / 9 to the inputs it covers.
          {"hand 3x3 stride 1",
           {t64({9, 18, 27, 36}, {1, 1, 2, 2})},
           t64({1, 3, 3, 2, 4, 10, 10, 6, 4, 10, 10, 6, 3, 7, 7, 4}, {1, 1, 4, 4}, false),
           true,
           nullptr},
          // One window over the whole 2x2 input (kernel 3, ceil_mode): each input gets 4 / 4
          // (PyTorch 1.13: 0.25 each for a gradient of 1).
          {"hand ceil_mode kernel 3 stride 2 on 2x2",
           {t64({4}, {1, 1, 1, 1})},
           t64({1, 1, 1, 1}, {1, 1, 2, 2}, false),
           true,
           [](const TensorList& xs) {
             return avg_pool2d_backward(xs[0], {1, 1, 2, 2}, {3, 3}, {2, 2}, {0, 0}, true);
           }},
          {"3x3 stride 2 padding 1 ceil_mode",
           {uniform64({2, 2, 4, 3}, -1, 1, 54)},
           Tensor(),
           true,
           [](const TensorList& xs) {
             return avg_pool2d_backward(xs[0], {2, 2, 7, 5}, {3, 3}, {2, 2}, {1, 1}, true, false);
           }}};
    }});

// ---------------------------------------------------------------------------------------------
// adaptive and global average pooling

CVG_REGISTER_OP(OpSpec{
    "adaptive_avg_pool2d",
    [](const TensorList& xs) { return adaptive_avg_pool2d(xs[0], {3, 3}); },
    [] {
      return std::vector<OpSample>{
          // 4 -> 3 windows per axis: [0, 2), [1, 3), [2, 4).
          {"hand 4x4 -> 3x3",
           {x44()},
           t64({1.75, 3.25, 3.75, 4.75, 4, 2.75, 6.75, 5.25, 1.5}, {1, 1, 3, 3}, false),
           true,
           nullptr},
          // 5 -> 2 windows: [0, 3), [2, 5) (overlapping at 2); 4 -> 1: everything.
          {"hand 5x4 -> 2x1",
           {t64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
                {1, 1, 5, 4})},
           t64({6.5, 14.5}, {1, 1, 2, 1}, false),
           true,
           [](const TensorList& xs) { return adaptive_avg_pool2d(xs[0], {2, 1}); }},
          {"7x5 -> 3x2", {uniform64({2, 3, 7, 5}, -1, 1, 61)}, Tensor(), true,
           [](const TensorList& xs) { return adaptive_avg_pool2d(xs[0], {3, 2}); }},
          {"3x2 -> 4x5 (upsampling windows)", {uniform64({1, 2, 3, 2}, -1, 1, 62)}, Tensor(), true,
           [](const TensorList& xs) { return adaptive_avg_pool2d(xs[0], {4, 5}); }},
          {"unbatched 6x6 -> 4x4", {uniform64({2, 6, 6}, -1, 1, 63)}, Tensor(), true,
           [](const TensorList& xs) { return adaptive_avg_pool2d(xs[0], {4, 4}); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "adaptive_avg_pool2d_backward",
    [](const TensorList& xs) { return adaptive_avg_pool2d_backward(xs[0], {2, 3, 7, 5}); },
    [] {
      return std::vector<OpSample>{
          {"7x5 from 3x2", {uniform64({2, 3, 3, 2}, -1, 1, 64)}, Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "adaptive_max_pool2d_backward",
    [](const TensorList& xs) { return adaptive_max_pool2d_backward(xs[0], xs[1], {2, 2, 7, 5}); },
    [] {
      NoGradGuard no_grad;
      const Tensor sw =
          adaptive_max_pool2d_with_indices(distinct64({2, 2, 7, 5}, 0.1, 65, false), {3, 2})
              .switches;
      return std::vector<OpSample>{
          {"7x5 from 3x2", {uniform64({2, 2, 3, 2}, -1, 1, 66), sw}, Tensor(), true, nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "global_avg_pool2d",
    [](const TensorList& xs) { return global_avg_pool2d(xs[0]); },
    [] {
      return std::vector<OpSample>{
          {"hand 4x4", {x44()}, t64({55.0 / 16}, {1, 1, 1, 1}, false), true, nullptr},
          {"2x3x5x4", {uniform64({2, 3, 5, 4}, -1, 1, 71)}, Tensor(), true, nullptr},
          {"unbatched", {uniform64({3, 2, 5}, -1, 1, 72)}, Tensor(), true, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// Plain tests

TEST_CASE("max_pool2d: switches are plane-local and the gradient goes to the first maximum",
          "[ops][pool]") {
  // Six planes of the hand plane shifted by 100 * plane: the same switches in every plane.
  std::vector<double> v;
  for (int p = 0; p < 6; ++p)
    for (double e : kPlane) v.push_back(e + 100 * p);
  const Tensor x = t64(v, {2, 3, 4, 4});
  const PooledWithSwitches r = max_pool2d_with_indices(x, {2, 2});
  REQUIRE(r.switches.dtype() == DType::int32);
  const std::vector<int32_t> sw = r.switches.to_vector<int32_t>();
  for (int p = 0; p < 6; ++p) {
    INFO("plane " << p);
    CHECK(std::vector<int32_t>(sw.begin() + 4 * p, sw.begin() + 4 * p + 4) ==
          std::vector<int32_t>{4, 6, 13, 10});
  }
  // The tied window [2 2; 2 0] sends its whole gradient to its first 2 (index 10).
  r.values.backward(ones_like(r.values));
  const std::vector<double> g = x.grad().to_vector<double>();
  for (int i = 0; i < 16; ++i) {
    INFO("input " << i);
    CHECK(g[i] == ((i == 4 || i == 6 || i == 13 || i == 10) ? 1.0 : 0.0));
  }
}

TEST_CASE("max_unpool2d: overlapping windows, the last writer wins and the others get zero "
          "gradient",
          "[ops][pool]") {
  // Switches of 3x3 windows at stride 1 on the hand plane: [9 9; 13 13].
  const Tensor src = x44();
  const PooledWithSwitches r = max_pool2d_with_indices(src.detach(), {3, 3}, {{1, 1}});
  REQUIRE(r.switches.to_vector<int32_t>() == std::vector<int32_t>{9, 9, 13, 13});
  const Tensor x = t64({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor y = max_unpool2d(x, r.switches, {4, 4});
  std::vector<double> expect(16, 0.0);
  expect[9] = 2;   // inputs 0 and 1 target 9: input 1 comes last
  expect[13] = 4;  // inputs 2 and 3 target 13: input 3 comes last
  CHECK(y.to_vector<double>() == expect);
  std::vector<double> gv(16);
  for (int i = 0; i < 16; ++i) gv[i] = 10 + i;
  y.backward(t64(gv, {1, 1, 4, 4}, false));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 19, 0, 23});
}

TEST_CASE("max_unpool2d(max_pool2d(x)) keeps each window's maximum in place", "[ops][pool]") {
  // 7 x 9 with 2x2 windows: the last row and column belong to no window and come back 0.
  const int64_t H = 7, W = 9;
  const Tensor x = distinct64({2, 3, H, W}, 0.5, 81, false);
  const PooledWithSwitches r = max_pool2d_with_indices(x, {2, 2});
  const Tensor y = max_unpool2d(r.values, r.switches, {H, W});
  REQUIRE(y.shape() == x.shape());
  // Brute force: a position keeps its value iff it is the maximum of its window.
  const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) {
        const int64_t i = (p * H + h) * W + w;
        bool is_max = h < H - 1 && w < W - 1;
        const int64_t h0 = h - h % 2, w0 = w - w % 2;
        for (int64_t a = 0; a < 2 && is_max; ++a)
          for (int64_t b = 0; b < 2; ++b)
            if (xv[(p * H + h0 + a) * W + w0 + b] > xv[i]) is_max = false;
        INFO("plane " << p << " at (" << h << ", " << w << ")");
        CHECK(yv[i] == (is_max ? xv[i] : 0.0));
      }
  // Pooling the unpooled tensor again gives the same values and switches (inputs positive).
  const Tensor xp = x + 100.0;
  const PooledWithSwitches rp = max_pool2d_with_indices(xp, {2, 2});
  const PooledWithSwitches again =
      max_pool2d_with_indices(max_unpool2d(rp.values, rp.switches, {H, W}), {2, 2});
  CHECK(again.values.to_vector<double>() == rp.values.to_vector<double>());
  CHECK(again.switches.to_vector<int32_t>() == rp.switches.to_vector<int32_t>());
}

TEST_CASE("pooling: unbatched C x H x W input gives the batched result without the batch dim",
          "[ops][pool]") {
  const Tensor x = distinct64({3, 6, 5}, 0.1, 91, false);
  const Tensor xb = unsqueeze(x, 0);
  const PooledWithSwitches a = max_pool2d_with_indices(x, {3, 2}, {{2, 1}}, {1, 1});
  const PooledWithSwitches b = max_pool2d_with_indices(xb, {3, 2}, {{2, 1}}, {1, 1});
  CHECK(a.values.shape() == Shape{3, 3, 6});
  CHECK(a.values.to_vector<double>() == b.values.to_vector<double>());
  CHECK(a.switches.to_vector<int32_t>() == b.switches.to_vector<int32_t>());
  const Tensor u = max_unpool2d(a.values, a.switches, {6, 5});
  CHECK(u.shape() == Shape{3, 6, 5});
  CHECK(u.to_vector<double>() == max_unpool2d(b.values, b.switches, {6, 5}).to_vector<double>());
  CHECK(global_avg_pool2d(x).shape() == Shape{3, 1, 1});
  CHECK(allclose(global_avg_pool2d(xb), mean(xb, {2, 3}, true)));
}

TEST_CASE("max_pool2d: second derivative of a max-pool penalty flows through the switches",
          "[ops][pool]") {
  // f(x) = sum(max_pool(x)^2): df/dx = 2 * max at the switch positions, and d^2f/dx^2 = 2 on
  // those positions. Differentiating <df/dx, 1> again must give 2 at the switches, 0 elsewhere.
  const Tensor x = distinct64({1, 1, 4, 4}, 0.25, 95);
  const Tensor y = max_pool2d(x, {2, 2});
  const Tensor f = sum(y * y);
  const Tensor gx = grad({f}, {x}, {}, {.create_graph = true})[0];
  const Tensor ggx = grad({sum(gx)}, {x})[0];
  const std::vector<int32_t> sw = max_pool2d_with_indices(x.detach(), {2, 2}).switches
                                      .to_vector<int32_t>();
  std::vector<double> expect(16, 0.0);
  for (int32_t s : sw) expect[s] = 2.0;
  CHECK(ggx.to_vector<double>() == expect);
}

TEST_CASE("pooling: bad arguments are errors naming the op and the values", "[ops][pool]") {
  const Tensor x = zeros({1, 2, 5, 5});
  CHECK_THAT(error_of([&] { max_pool2d(x, {0, 2}); }),
             Contains("max_pool2d: kernel size must be positive, got [0, 2]"));
  CHECK_THAT(error_of([&] { max_pool2d(x, {2, 2}, {{2, 0}}); }),
             Contains("max_pool2d: stride must be positive, got [2, 0]"));
  CHECK_THAT(error_of([&] { max_pool2d(x, {2, 2}, {{1, 1}}, {0, 0}, {0, 1}); }),
             Contains("max_pool2d: dilation must be positive, got [0, 1]"));
  CHECK_THAT(error_of([&] { max_pool2d(x, {3, 3}, {{1, 1}}, {2, 1}); }),
             Contains("padding [2, 1] must be non-negative and at most half the kernel size "
                      "[3, 3]"));
  CHECK_THAT(error_of([&] { avg_pool2d(x, {6, 2}); }),
             Contains("avg_pool2d: input of 5 x 5 with kernel [6, 2]"));
  // A kernel longer than the input: no window without ceil_mode; with it, none either when even
  // the rounded-up count is 0 (1 x 1 input, kernel 4, stride 2), as PyTorch 1.13 refuses both.
  CHECK_THAT(error_of([&] { max_pool2d(zeros({1, 1, 2, 2}), {3, 3}, {{2, 2}}); }),
             Contains("max_pool2d: input of 2 x 2 with kernel [3, 3], stride [2, 2]") &&
                 Contains("gives an output size of less than 1 x 1"));
  CHECK_THAT(error_of([&] { max_pool2d(zeros({1, 1, 1, 1}), {4, 4}, {{2, 2}}, {0, 0}, {1, 1}, true); }),
             Contains("max_pool2d: input of 1 x 1 with kernel [4, 4], stride [2, 2], padding [0, 0], "
                      "dilation [1, 1], ceil_mode gives an output size of less than 1 x 1"));
  CHECK_THAT(error_of([&] { max_pool2d(zeros({1, 1, 2, 2}), {2, 2}, {{1, 1}}, {1, 1}, {3, 3}); }),
             Contains("sees only padding"));
  CHECK_THAT(error_of([&] { max_pool2d(zeros({5, 5}), {2, 2}); }),
             Contains("max_pool2d: input must be N x C x H x W or C x H x W, got shape [5, 5]"));
  CHECK_THAT(error_of([&] {
               max_pool2d(zeros({1, 1, 4, 4}, TensorOptions{}.with_dtype(DType::int64)), {2, 2});
             }),
             Contains("max_pool2d: input must be float32 or float64, got int64"));
  CHECK_THAT(error_of([&] { adaptive_avg_pool2d(x, {0, 3}); }),
             Contains("adaptive_avg_pool2d: output_size must be positive, got [0, 3]"));

  // Switches: dtype, shape, range.
  const Tensor v = zeros({1, 2, 2, 2});
  const Tensor sw64 = zeros({1, 2, 2, 2}, TensorOptions{}.with_dtype(DType::int64));
  CHECK_THAT(error_of([&] { max_unpool2d(v, sw64, {4, 4}); }),
             Contains("max_unpool2d: switches must be int32, got int64"));
  const Tensor sw_small = zeros({1, 2, 2, 1}, TensorOptions{}.with_dtype(DType::int32));
  CHECK_THAT(error_of([&] { max_unpool2d(v, sw_small, {4, 4}); }),
             Contains("max_unpool2d: switches have shape [1, 2, 2, 1] but input has shape "
                      "[1, 2, 2, 2]"));
  // Switches of a 5x5 pooling, unpooled to a 4x4 output: index 24 does not fit.
  const Tensor big = sw32({0, 1, 2, 3, 4, 5, 6, 24}, {1, 2, 2, 2});
  CHECK_THAT(error_of([&] { max_unpool2d(v, big, {4, 4}); }),
             Contains("max_unpool2d: switch 24 at position [0, 1, 1, 1] is outside the output "
                      "plane of [4, 4]"));
  CHECK_THAT(error_of([&] { max_unpool2d_backward(zeros({1, 2, 4, 4}), big); }),
             Contains("max_unpool2d_backward: switch 24 at position [0, 1, 1, 1]"));
  CHECK_THAT(error_of([&] { max_unpool2d(v, sw32({0, 1, 2, -1, 4, 5, 6, 7}, {1, 2, 2, 2}),
                                         {4, 4}); }),
             Contains("switch -1 at position [0, 0, 1, 1]"));
  CHECK_THAT(error_of([&] { max_unpool2d(v, big, {0, 4}); }),
             Contains("max_unpool2d: output_size must be positive, got [0, 4]"));
  CHECK_THAT(error_of([&] {
               const Tensor sw = zeros({1, 2, 3, 3}, TensorOptions{}.with_dtype(DType::int32));
               max_pool2d_backward(zeros({1, 2, 3, 3}), sw, {1, 2, 5, 5}, {2, 2}, {2, 2});
             }),
             Contains("max_pool2d_backward: grad_out has shape [1, 2, 3, 3] but input_shape "
                      "[1, 2, 5, 5] pools to [1, 2, 2, 2]"));
  CHECK_THAT(error_of([&] {
               max_pool2d_backward(zeros({1, 2, 2, 2}), sw64, {1, 2, 5, 5}, {2, 2}, {2, 2});
             }),
             Contains("max_pool2d_backward: switches must be int32, got int64"));
  CHECK_THAT(error_of([&] { avg_pool2d_backward(zeros({1, 2, 2, 2}), {2, 5, 5}, {2, 2}, {2, 2}); }),
             Contains("avg_pool2d_backward: input_shape must be N x C x H x W, got [2, 5, 5]"));
}

// ---------------------------------------------------------------------------------------------
// CPU fast paths (kernels/pool_cpu.cpp) against the per-element rules they replace

namespace {

// A max pool with overlapping windows: neighbouring windows often share their maximum, so its
// switches collide and the unpooling's last-writer rule decides.
struct UnpoolCase {
  PoolSize2 kernel, stride, padding;
};

}  // namespace

TEST_CASE("max_unpool2d (CPU scatter): last writer wins and overwritten inputs get zero "
          "gradient on large overlapping planes",
          "[ops][pool]") {
  const int64_t H = 41, W = 37;
  manual_seed(11);
  const Tensor src = randn({2, 3, H, W});
  for (DType dt : {DType::float32, DType::float64})
    for (const UnpoolCase& c : {UnpoolCase{{3, 3}, {1, 1}, {0, 0}},
                                UnpoolCase{{3, 3}, {2, 2}, {1, 1}},
                                UnpoolCase{{3, 2}, {1, 2}, {1, 1}}}) {
      INFO(dtype_name(dt) << " kernel " << c.kernel[0] << "x" << c.kernel[1]);
      const Tensor sw = max_pool2d_with_indices(src, c.kernel, c.stride, c.padding).switches;
      const Shape& s = sw.shape();
      const int64_t planes = s[0] * s[1], in_plane = s[2] * s[3], out_plane = H * W;
      Tensor x = randn(s, TensorOptions{}.with_dtype(dt));
      x.set_requires_grad(true);
      const Tensor y = max_unpool2d(x, sw, {H, W});
      const Tensor gout = randn(y.shape(), TensorOptions{}.with_dtype(dt));
      const Tensor gx = grad({y}, {x}, {gout})[0];

      // Brute force: the last input of a plane with a given switch is the one that lands.
      const std::vector<int32_t> sv = sw.to_vector<int32_t>();
      const std::vector<double> xv = x.to_vector<double>(), gv = gout.to_vector<double>();
      std::vector<double> y_expect(planes * out_plane, 0.0), gx_expect(planes * in_plane, 0.0);
      int64_t overwritten = 0;
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t k = 0; k < in_plane; ++k) {
          const int64_t i = p * in_plane + k, at = p * out_plane + sv[i];
          bool last = true;
          for (int64_t later = k + 1; later < in_plane && last; ++later)
            last = sv[p * in_plane + later] != sv[i];
          if (last) {
            y_expect[at] = xv[i];
            gx_expect[i] = gv[at];
          } else {
            ++overwritten;
          }
        }
      REQUIRE(overwritten > 0);  // the case must exercise the rule
      CHECK(y.to_vector<double>() == y_expect);
      CHECK(gx.to_vector<double>() == gx_expect);
      CHECK(max_unpool2d_backward(gout, sw).to_vector<double>() == gx_expect);

      // The winners kernels (the CUDA algorithm, run on the CPU) agree bit for bit.
      const UnpoolGeometry g{planes, in_plane, out_plane};
      const Tensor winners = Tensor::empty({planes * out_plane}, sw.options());
      REQUIRE(max_unpool2d_winners_cpu(sw, g, winners) == -1);
      const Tensor y_ref = Tensor::empty(y.shape(), y.options());
      max_unpool2d_cpu(x.detach(), winners, g, y_ref);
      const Tensor gx_ref = Tensor::empty(x.shape(), x.options());
      max_unpool2d_backward_cpu(gout, sw, winners, g, gx_ref);
      CHECK(y_ref.to_vector<double>() == y_expect);
      CHECK(gx_ref.to_vector<double>() == gx_expect);
    }
}

TEST_CASE("avg_pool2d (CPU row loops): bit-identical to avg_pool_at, fast 2-wide windows and "
          "clipped edges alike",
          "[ops][pool]") {
  struct AvgCase {
    PoolSize2 kernel, stride, padding;
    bool ceil_mode, count_include_pad;
  };
  manual_seed(12);
  for (DType dt : {DType::float32, DType::float64})
    for (const Shape& in : {Shape{2, 3, 13, 37}, Shape{1, 2, 8, 16}, Shape{3, 1, 5, 3}})
      for (const AvgCase& c : {AvgCase{{2, 2}, {2, 2}, {0, 0}, false, true},
                               AvgCase{{2, 2}, {2, 2}, {0, 0}, true, true},
                               AvgCase{{2, 2}, {2, 2}, {1, 1}, false, true},
                               AvgCase{{2, 2}, {2, 2}, {1, 1}, true, false},
                               AvgCase{{2, 2}, {1, 1}, {1, 1}, false, false},
                               AvgCase{{2, 2}, {3, 3}, {1, 0}, true, true},
                               AvgCase{{3, 2}, {2, 2}, {1, 1}, true, false},
                               AvgCase{{3, 3}, {2, 2}, {1, 1}, false, true}}) {
        INFO(dtype_name(dt) << " input " << in[2] << "x" << in[3] << " kernel " << c.kernel[0] << "x" << c.kernel[1]
                            << " stride " << c.stride[0] << "x" << c.stride[1] << " padding "
                            << c.padding[0] << "x" << c.padding[1] << " ceil " << c.ceil_mode
                            << " count_include_pad " << c.count_include_pad);
        const Tensor x = randn(in, TensorOptions{}.with_dtype(dt));
        const Tensor y =
            avg_pool2d(x, c.kernel, c.stride, c.padding, c.ceil_mode, c.count_include_pad);
        const Shape& o = y.shape();
        PoolGeometry g;
        g.planes = in[0] * in[1];
        g.count_include_pad = c.count_include_pad;
        g.h = PoolAxis{in[2], o[2], c.kernel[0], c.stride[0], c.padding[0], 1};
        g.w = PoolAxis{in[3], o[3], c.kernel[1], c.stride[1], c.padding[1], 1};
        const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();
        bool same = true;
        for (int64_t p = 0; p < g.planes; ++p) {
          // The reference runs in the tensor's own precision.
          const double* plane64 = xv.data() + p * g.in_plane();
          const std::vector<float> plane32(plane64, plane64 + g.in_plane());
          for (int64_t oh = 0; oh < o[2]; ++oh)
            for (int64_t ow = 0; ow < o[3]; ++ow) {
              const int64_t at = (p * o[2] + oh) * o[3] + ow;
              const double expect = dt == DType::float32
                                        ? double(avg_pool_at(plane32.data(), g, oh, ow))
                                        : avg_pool_at(plane64, g, oh, ow);
              if (yv[at] != expect) {
                same = false;
                UNSCOPED_INFO("plane " << p << " output (" << oh << ", " << ow << "): " << yv[at]
                                       << " vs " << expect);
              }
            }
        }
        CHECK(same);
      }
}

#ifdef _OPENMP
TEST_CASE("pooling (CPU): unpooling and average pooling do not depend on the thread count",
          "[ops][pool]") {
  manual_seed(13);
  const Tensor src = randn({4, 5, 30, 31});
  const PooledWithSwitches r = max_pool2d_with_indices(src, {3, 3}, PoolSize2{1, 1});
  const Tensor gout = randn({4, 5, 30, 31});
  auto run = [&] {
    std::vector<double> v = max_unpool2d(r.values, r.switches, {30, 31}).to_vector<double>();
    for (double e : max_unpool2d_backward(gout, r.switches).to_vector<double>()) v.push_back(e);
    for (double e : avg_pool2d(src, {2, 2}, PoolSize2{2, 2}, {1, 1}, true).to_vector<double>())
      v.push_back(e);
    return v;
  };
  const auto [one, three] = at_one_and_three_threads(run);
  CHECK(one == three);
}
#endif

// ---------------------------------------------------------------------------------------------
// The 2 x 2 stride-2 paths of max_pool2d / max_pool2d_backward and the tiled gather of
// max_unpool2d_backward (kernels/pool_cpu.cpp), bit for bit against the per-element rules

namespace {

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Pools x (already in precision T) with max_pool2d_with_indices and max_pool2d_backward and
// counts the values, switches and gradients whose bits differ from max_pool_at and
// max_pool_grad_at evaluated in T on the same data. grad_out holds -0.0 in places: the gather
// turns a lone -0.0 into +0.0 (0 + -0.0), which a path that copied it would not.
template <typename T>
int64_t max_pool_mismatches(const Tensor& x, PoolSize2 k, PoolSize2 s, PoolSize2 p, PoolSize2 d,
                            bool ceil_mode) {
  const PooledWithSwitches r = max_pool2d_with_indices(x, k, s, p, d, ceil_mode);
  const Shape& in = x.shape();
  const Shape& o = r.values.shape();
  PoolGeometry g;
  g.planes = in[0] * in[1];
  g.h = PoolAxis{in[2], o[2], k[0], s[0], p[0], d[0]};
  g.w = PoolAxis{in[3], o[3], k[1], s[1], p[1], d[1]};
  std::vector<T> gv = randn(o, TensorOptions{}.with_dtype(dtype_of<T>())).template to_vector<T>();
  for (size_t i = 0; i < gv.size(); i += 7) gv[i] = T(-0.0);
  const Tensor gout = from_vector<T>(gv, o, TensorOptions{}.with_dtype(dtype_of<T>()));
  const Tensor gx = max_pool2d_backward(gout, r.switches, in, k, s, p, d, ceil_mode);
  const std::vector<T> xv = x.template to_vector<T>(), v = r.values.template to_vector<T>(),
                       gxv = gx.template to_vector<T>();
  const std::vector<int32_t> sv = r.switches.to_vector<int32_t>();
  int64_t bad = 0;
  for (int64_t plane = 0; plane < g.planes; ++plane) {
    const T* xp = xv.data() + plane * g.in_plane();
    for (int64_t oh = 0; oh < o[2]; ++oh)
      for (int64_t ow = 0; ow < o[3]; ++ow) {
        T ev;
        int32_t es;
        max_pool_at(xp, g, oh, ow, &ev, &es);
        const int64_t at = plane * g.out_plane() + oh * o[3] + ow;
        if (!same_bits(v[at], ev) || sv[at] != es) ++bad;
      }
    for (int64_t ih = 0; ih < in[2]; ++ih)
      for (int64_t iw = 0; iw < in[3]; ++iw) {
        const T eg = max_pool_grad_at(gv.data() + plane * g.out_plane(),
                                      sv.data() + plane * g.out_plane(), g, ih, iw);
        if (!same_bits(gxv[plane * g.in_plane() + ih * in[3] + iw], eg)) ++bad;
      }
  }
  return bad;
}

// The last-writer rule by brute force: d x[k] = grad_out[switch[k]] when no later input of the
// plane has the same switch, else 0. Counts the overwritten inputs in *overwritten.
std::vector<double> unpool_grad_expect(const std::vector<int32_t>& sv,
                                       const std::vector<double>& gv, int64_t planes,
                                       int64_t in_plane, int64_t out_plane,
                                       int64_t* overwritten) {
  std::vector<double> out(planes * in_plane, 0.0);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t k = 0; k < in_plane; ++k) {
      const int64_t i = p * in_plane + k;
      bool last = true;
      for (int64_t later = k + 1; later < in_plane && last; ++later)
        last = sv[p * in_plane + later] != sv[i];
      if (last)
        out[i] = gv[p * out_plane + sv[i]];
      else
        ++*overwritten;
    }
  return out;
}

}  // namespace

TEST_CASE("max_pool2d (CPU row loops): values, switches and gradient match max_pool_at and "
          "max_pool_grad_at bit for bit, ties and NaN included",
          "[ops][pool]") {
  // Column windows 2 and 3 wide at strides 1 to 3 with padding: the row-by-row loops with the
  // stride and kernel known at compile time and not, and their clipped edge columns.
  manual_seed(14);
  for (const UnpoolCase& c : {UnpoolCase{{2, 2}, {2, 2}, {0, 0}},
                              UnpoolCase{{2, 2}, {2, 2}, {1, 1}},
                              UnpoolCase{{2, 2}, {1, 1}, {1, 0}},
                              UnpoolCase{{3, 2}, {2, 3}, {1, 1}},
                              UnpoolCase{{2, 3}, {2, 2}, {1, 1}},
                              UnpoolCase{{3, 3}, {2, 2}, {1, 1}}})
    for (bool ceil_mode : {false, true}) {
      INFO("kernel " << c.kernel[0] << "x" << c.kernel[1] << " stride " << c.stride[0] << "x"
                     << c.stride[1] << " ceil " << ceil_mode);
      // Few distinct values, so that windows hold ties; and a sprinkling of NaNs.
      std::vector<double> xv = randn({2, 3, 11, 37}).to_vector<double>();
      for (double& e : xv) e = std::floor(e * 1.5);
      for (size_t i = 5; i < xv.size(); i += 97) xv[i] = std::nan("");
      const Tensor x32 =
          from_vector<double>(xv, {2, 3, 11, 37}, TensorOptions{}.with_dtype(DType::float32));
      const Tensor x64 = from_vector<double>(xv, {2, 3, 11, 37});
      CHECK(max_pool_mismatches<float>(x32, c.kernel, c.stride, c.padding, {1, 1}, ceil_mode) == 0);
      CHECK(max_pool_mismatches<double>(x64, c.kernel, c.stride, c.padding, {1, 1}, ceil_mode) == 0);
    }
}

TEST_CASE("max_pool2d (CPU 2 x 2 stride-2 paths): every tie and NaN pattern of a window, bit "
          "for bit as max_pool_at and max_pool_grad_at",
          "[ops][pool]") {
  // The 4^4 windows over {1, -0, +0, NaN} side by side in a 2 x 512 plane: ties between equal
  // numbers (whose sign shows which one won), one to four NaNs, NaN before and after the
  // maximum. Then the same plane with a ninth column appended: an odd width, whose last
  // column belongs to no window.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double vals[4] = {1.0, -0.0, 0.0, nan};
  for (int64_t W : {512, 513}) {
    std::vector<double> xv(2 * W, 0.5);
    for (int pat = 0; pat < 256; ++pat) {
      xv[2 * pat] = vals[pat & 3];
      xv[2 * pat + 1] = vals[(pat >> 2) & 3];
      xv[W + 2 * pat] = vals[(pat >> 4) & 3];
      xv[W + 2 * pat + 1] = vals[(pat >> 6) & 3];
    }
    INFO("W " << W);
    const Tensor x32 = from_vector<double>(xv, {1, 1, 2, W}, TensorOptions{}.with_dtype(DType::float32));
    const Tensor x64 = from_vector<double>(xv, {1, 1, 2, W});
    CHECK(max_pool_mismatches<float>(x32, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false) == 0);
    CHECK(max_pool_mismatches<double>(x64, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false) == 0);
    // Spot checks of the rule itself: [1 1; 1 1] keeps the first 1, [-0 +0; ...] keeps -0,
    // [1 NaN; NaN 1] takes the first NaN.
    const PooledWithSwitches r = max_pool2d_with_indices(x64, {2, 2});
    const std::vector<int32_t> sv = r.switches.to_vector<int32_t>();
    const std::vector<double> v = r.values.to_vector<double>();
    CHECK(sv[0] == 0);  // pattern 0: all 1
    const int neg_first = 1 | (2 << 2) | (1 << 4) | (1 << 6);  // -0 +0 / -0 -0
    CHECK((sv[neg_first] == 2 * neg_first && std::signbit(v[neg_first])));
    const int pos_first = 2 | (1 << 2) | (1 << 4) | (1 << 6);  // +0 -0 / -0 -0
    CHECK((sv[pos_first] == 2 * pos_first && !std::signbit(v[pos_first])));
    const int nan_mid = 0 | (3 << 2) | (3 << 4) | (0 << 6);  // 1 NaN / NaN 1
    CHECK((sv[nan_mid] == 2 * nan_mid + 1 && std::isnan(v[nan_mid])));
  }
}

TEST_CASE("max_pool2d (CPU 2 x 2 stride-2 paths): odd sizes, padding, ceil_mode and overlapping "
          "row windows, dense ties and NaNs, bit for bit as the per-element rules",
          "[ops][pool]") {
  struct Geo {
    PoolSize2 k, s, p, d;
  };
  // 2-wide column windows at stride 2 (the fast paths) with rows of every kind the backward's
  // row-by-row gather accepts (stride below, equal to and above the kernel), a dilated row
  // window that takes the general paths, and dilated column windows (the forward's row loop
  // with the stride and kernel read at run time).
  const Geo geos[] = {{{2, 2}, {2, 2}, {0, 0}, {1, 1}}, {{2, 2}, {2, 2}, {1, 1}, {1, 1}},
                      {{3, 2}, {2, 2}, {1, 1}, {1, 1}}, {{2, 2}, {1, 2}, {0, 1}, {1, 1}},
                      {{1, 2}, {3, 2}, {0, 0}, {1, 1}}, {{2, 2}, {2, 2}, {1, 0}, {2, 1}},
                      {{2, 3}, {2, 2}, {1, 1}, {1, 2}}, {{3, 3}, {2, 1}, {1, 0}, {2, 2}}};
  manual_seed(15);
  int64_t cases = 0;
  for (int64_t H : {1, 2, 3, 5, 8})
    for (int64_t W : {1, 2, 3, 4, 7, 8, 9, 17, 34, 35})
      for (const Geo& c : geos)
        for (bool ceil_mode : {false, true}) {
          // Skip the geometries the op rejects: a first window that does not fit, or (dilated,
          // padded rows of a 1-row input) a window whose taps all fall in the padding.
          if (H + 2 * c.p[0] < c.d[0] * (c.k[0] - 1) + 1 ||
              W + 2 * c.p[1] < c.d[1] * (c.k[1] - 1) + 1)
            continue;
          if (c.d[0] > 1 && H < 2) continue;
          INFO(H << "x" << W << " kernel " << c.k[0] << "x" << c.k[1] << " stride " << c.s[0]
                 << "x" << c.s[1] << " padding " << c.p[0] << "x" << c.p[1] << " dilation "
                 << c.d[0] << "x" << c.d[1] << " ceil " << ceil_mode);
          // Five values, a quarter of them NaN: windows with ties and several NaNs abound.
          std::vector<double> xv = randn({2, 3, H, W}).to_vector<double>();
          for (double& e : xv)
            e = e < -0.67 ? std::numeric_limits<double>::quiet_NaN() : std::floor(e * 1.2);
          const Tensor x32 =
              from_vector<double>(xv, {2, 3, H, W}, TensorOptions{}.with_dtype(DType::float32));
          const Tensor x64 = from_vector<double>(xv, {2, 3, H, W});
          CHECK(max_pool_mismatches<float>(x32, c.k, c.s, c.p, c.d, ceil_mode) == 0);
          CHECK(max_pool_mismatches<double>(x64, c.k, c.s, c.p, c.d, ceil_mode) == 0);
          ++cases;
        }
  CHECK(cases > 600);
}

TEST_CASE("max_unpool2d_backward (CPU tiled gather): planes whose switches leave their tiles "
          "(collisions, strays) still follow the last-writer rule",
          "[ops][pool]") {
  struct Tiled {
    int64_t H, W;
    PoolSize2 kernel;
    PoolSize2 out;  // output_size of the unpooling
  };
  // 2 x 2 tiles (the gather's compile-time case), odd sizes whose last row / column no tile
  // covers, 3 x 2 tiles (the run-time case), and an output larger than the pooled input.
  const Tiled cases[] = {{8, 8, {2, 2}, {8, 8}},
                         {9, 11, {2, 2}, {9, 11}},
                         {12, 10, {3, 2}, {12, 10}},
                         {7, 5, {3, 3}, {7, 5}},
                         {6, 6, {2, 2}, {7, 8}}};
  manual_seed(16);
  for (DType dt : {DType::float32, DType::float64})
    for (const Tiled& c : cases) {
      INFO(dtype_name(dt) << " " << c.H << "x" << c.W << " kernel " << c.kernel[0] << "x"
                          << c.kernel[1] << " output " << c.out[0] << "x" << c.out[1]);
      const Tensor src = randn({2, 3, c.H, c.W});
      std::vector<int32_t> sv = max_pool2d_with_indices(src, c.kernel).switches.to_vector<int32_t>();
      const Shape s = max_pool2d_with_indices(src, c.kernel).switches.shape();
      const int64_t planes = 6, in_plane = s[2] * s[3], out_plane = c.out[0] * c.out[1];
      // Re-aim the switches at the output plane (they index the H x W input of the pool).
      for (int32_t& e : sv) e = static_cast<int32_t>(e / c.W * c.out[1] + e % c.W);
      // Plane 1: inputs 0 and 1 collide (input 0 is overwritten). Plane 2: input 0 strays to
      // a position no other input uses, outside its tile (no collision). Plane 3: the last
      // input collides with input 0 from another row. Planes 0 and 5 stay tiled.
      if (in_plane > 1) sv[1 * in_plane + 1] = sv[1 * in_plane + 0];
      {
        std::vector<bool> used(out_plane, false);
        for (int64_t k = 0; k < in_plane; ++k) used[sv[2 * in_plane + k]] = true;
        int32_t stray = static_cast<int32_t>(out_plane - 1);
        while (used[stray]) --stray;
        sv[2 * in_plane] = stray;
      }
      sv[3 * in_plane + in_plane - 1] = sv[3 * in_plane];
      // Plane 4: an input takes the switch of the input below it, which lies in the top row of
      // that input's tile, one row past the first input's own tile (the first is overwritten).
      {
        const int64_t w = s[3], th = c.out[0] / s[2];
        int64_t below = -1;
        for (int64_t k = w; k < in_plane && below < 0; ++k)
          if (sv[4 * in_plane + k] / c.out[1] == (k / w) * th) below = k;
        if (below >= 0) sv[4 * in_plane + below - w] = sv[4 * in_plane + below];
      }
      const Tensor sw = sw32(sv, s);
      const Tensor gout = randn({2, 3, c.out[0], c.out[1]}, TensorOptions{}.with_dtype(dt));
      int64_t overwritten = 0;
      const std::vector<double> expect = unpool_grad_expect(sv, gout.to_vector<double>(), planes,
                                                            in_plane, out_plane, &overwritten);
      REQUIRE(overwritten >= 1);
      CHECK(max_unpool2d_backward(gout, sw).to_vector<double>() == expect);
      // Through autograd too (max_unpool2d's backward).
      Tensor x = randn(s, TensorOptions{}.with_dtype(dt));
      x.set_requires_grad(true);
      CHECK(grad({max_unpool2d(x, sw, c.out)}, {x}, {gout})[0].to_vector<double>() == expect);
    }
  // A switch outside the plane in an otherwise tiled plane is still reported, with its position.
  std::vector<int32_t> sv = max_pool2d_with_indices(randn({1, 2, 4, 4}), {2, 2}).switches.to_vector<int32_t>();
  sv[7] = 16;
  CHECK_THAT(error_of([&] { max_unpool2d_backward(zeros({1, 2, 4, 4}), sw32(sv, {1, 2, 2, 2})); }),
             Contains("max_unpool2d_backward: switch 16 at position [0, 1, 1, 1]"));
  sv[7] = -2;
  CHECK_THAT(error_of([&] { max_unpool2d_backward(zeros({1, 2, 4, 4}), sw32(sv, {1, 2, 2, 2})); }),
             Contains("max_unpool2d_backward: switch -2 at position [0, 1, 1, 1]"));
}

#ifdef _OPENMP
TEST_CASE("pooling (CPU): the 2 x 2 max pool paths and the tiled unpool gather do not depend on "
          "the thread count",
          "[ops][pool]") {
  manual_seed(17);
  const Tensor src = randn({4, 5, 30, 31});
  const Tensor gpool = randn({4, 5, 15, 15});
  const Tensor gunpool = randn({4, 5, 30, 31});
  auto run = [&] {
    const PooledWithSwitches r = max_pool2d_with_indices(src, {2, 2});
    std::vector<double> v = r.values.to_vector<double>();
    for (int32_t e : r.switches.to_vector<int32_t>()) v.push_back(e);
    for (double e : max_pool2d_backward(gpool, r.switches, src.shape(), {2, 2}, {2, 2})
                        .to_vector<double>())
      v.push_back(e);
    for (double e : max_unpool2d_backward(gunpool, r.switches).to_vector<double>()) v.push_back(e);
    return v;
  };
  const auto [one, three] = at_one_and_three_threads(run);
  CHECK(one == three);
}
#endif
