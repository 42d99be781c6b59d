// Tests of the convolutions (kernels/conv.h): registry entries for conv2d, conv_transpose2d and
// both backward ops (hand-computed cases, float64 gradcheck and gradgradcheck on odd sizes with
// stride / padding / dilation / groups, and the [cuda] column, whose samples include shapes that
// are not multiples of the CUDA tiles and one spanning many blocks), then plain test cases: every
// CPU kernel (im2col + GEMM, the direct loops of the CUDA v1 kernels, the implicit-GEMM loads of
// the CUDA v2 kernel) against a naive loop written here for a batch of random configurations,
// the CPU kernel's split of larger batches across threads (same bits with 1, 2 and 3 threads),
// the adjoint identity <conv2d(x, w), y> = <x, conv_transpose2d(y, w)>, and the error messages.
#include <catch2/catch.hpp>

#include <random>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/conv.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

// 1 x 1 x 3 x 3 input 1..9 and a 1 x 1 x 2 x 2 kernel [1 2; 3 4].
Tensor x33() { return t64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}); }
Tensor w22() { return t64({1, 2, 3, 4}, {1, 1, 2, 2}); }

struct Cfg {
  int64_t n, cin, cout, h, w, kh, kw;
  ConvSize2 stride, padding, dilation;
  int64_t groups;
};

std::string describe(const Cfg& c) {
  return str_cat("N ", c.n, " Cin ", c.cin, " Cout ", c.cout, " ", c.h, "x", c.w, " kernel ",
                 c.kh, "x", c.kw, " stride ", c.stride[0], ",", c.stride[1], " padding ",
                 c.padding[0], ",", c.padding[1], " dilation ", c.dilation[0], ",",
                 c.dilation[1], " groups ", c.groups);
}

// floor((in + 2p - d (k - 1) - 1) / s) + 1, and 0 when the kernel does not fit.
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

// The definition, as plain loops over every (output, tap) pair, in double: returns the forward
// output and accumulates d x and d w for a given grad_out by the chain rule of the same loops.
struct Reference {
  std::vector<double> out, gx, gw;
};
Reference reference(const Cfg& c, const std::vector<double>& x, const std::vector<double>& w,
                    const std::vector<double>& bias, const std::vector<double>& gout) {
  const int64_t ho = out_size(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]);
  const int64_t wo = out_size(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1]);
  const int64_t cin_g = c.cin / c.groups, cout_g = c.cout / c.groups;
  Reference r;
  r.out.assign(c.n * c.cout * ho * wo, 0.0);
  r.gx.assign(x.size(), 0.0);
  r.gw.assign(w.size(), 0.0);
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t co = 0; co < c.cout; ++co)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          const int64_t oi = ((n * c.cout + co) * ho + oh) * wo + ow;
          double acc = bias.empty() ? 0.0 : bias[co];
          for (int64_t cl = 0; cl < cin_g; ++cl)
            for (int64_t i = 0; i < c.kh; ++i)
              for (int64_t j = 0; j < c.kw; ++j) {
                const int64_t ih = oh * c.stride[0] - c.padding[0] + i * c.dilation[0];
                const int64_t iw = ow * c.stride[1] - c.padding[1] + j * c.dilation[1];
                if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
                const int64_t ci = (co / cout_g) * cin_g + cl;
                const int64_t xi = ((n * c.cin + ci) * c.h + ih) * c.w + iw;
                const int64_t wi = ((co * cin_g + cl) * c.kh + i) * c.kw + j;
                acc += x[xi] * w[wi];
                r.gx[xi] += gout[oi] * w[wi];
                r.gw[wi] += gout[oi] * x[xi];
              }
          r.out[oi] = acc;
        }
  return r;
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
Tensor f64(const std::vector<double>& v, const Shape& s) { return t64(v, s, false); }

// Random configurations: odd sizes, every argument varied, groups dividing the channels, a
// batch of n_min to n_max images.
std::vector<Cfg> random_configs(int count, uint32_t seed, int64_t n_min = 1, int64_t n_max = 3) {
  std::mt19937 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::vector<Cfg> cfgs;
  while (static_cast<int>(cfgs.size()) < count) {
    Cfg c;
    c.groups = pick(1, 3);
    c.n = pick(n_min, n_max);
    c.cin = c.groups * pick(1, 3);
    c.cout = c.groups * pick(1, 3);
    c.h = pick(1, 9);
    c.w = pick(1, 9);
    c.kh = pick(1, 4);
    c.kw = pick(1, 4);
    c.stride = {pick(1, 3), pick(1, 3)};
    c.padding = {pick(0, 2), pick(0, 2)};
    c.dilation = {pick(1, 2), pick(1, 2)};
    if (out_size(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]) < 1 ||
        out_size(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1]) < 1)
      continue;
    cfgs.push_back(c);
  }
  // Fixed shapes the random draw may miss: pointwise (no im2col), a large plane.
  cfgs.push_back({2, 6, 4, 5, 7, 1, 1, {1, 1}, {0, 0}, {1, 1}, 2});
  cfgs.push_back({1, 3, 5, 17, 13, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1});
  cfgs.push_back({2, 4, 4, 11, 9, 5, 3, {2, 1}, {2, 1}, {1, 2}, 4});
  // Depthwise with rows long enough for the CPU's unchecked middle (kernels/conv_cpu.cpp,
  // depthwise_forward): each kernel width 1-5 at stride 1, and 7 and stride 2 by the generic loop.
  cfgs.push_back({2, 3, 3, 6, 40, 3, 3, {1, 1}, {1, 1}, {1, 1}, 3});
  cfgs.push_back({1, 2, 2, 5, 37, 2, 5, {1, 1}, {0, 2}, {1, 2}, 2});
  cfgs.push_back({1, 2, 2, 4, 33, 3, 4, {2, 1}, {1, 3}, {1, 1}, 2});
  cfgs.push_back({1, 2, 2, 3, 21, 1, 2, {1, 1}, {0, 1}, {1, 3}, 2});
  cfgs.push_back({1, 2, 2, 3, 20, 2, 1, {1, 1}, {1, 2}, {1, 1}, 2});
  cfgs.push_back({1, 2, 2, 4, 30, 2, 7, {1, 2}, {1, 3}, {1, 1}, 2});
  return cfgs;
}

ConvGeometry geometry_of(const Cfg& c) {
  ConvGeometry g;
  g.n = c.n;
  g.cin = c.cin;
  g.h = c.h;
  g.w = c.w;
  g.cout = c.cout;
  g.kh = c.kh;
  g.kw = c.kw;
  g.sh = c.stride[0];
  g.sw = c.stride[1];
  g.ph = c.padding[0];
  g.pw = c.padding[1];
  g.dh = c.dilation[0];
  g.dw = c.dilation[1];
  g.groups = c.groups;
  g.ho = conv_out_size(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]);
  g.wo = conv_out_size(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1]);
  return g;
}

using RawKernel = void (*)(ConvPass, const Tensor&, const Tensor&, const Tensor&,
                           const ConvGeometry&, const Tensor&);

// conv2d with one configuration's arguments, for registry samples.
OpFn conv_fn(ConvSize2 s, ConvSize2 p, ConvSize2 d, int64_t groups) {
  return [=](const TensorList& xs) { return conv2d(xs[0], xs[1], xs[2], s, p, d, groups); };
}
OpFn conv_t_fn(ConvSize2 s, ConvSize2 p, ConvSize2 op, int64_t groups, ConvSize2 d) {
  return [=](const TensorList& xs) {
    return conv_transpose2d(xs[0], xs[1], xs[2], s, p, op, groups, d);
  };
}

using Catch::Matchers::Contains;

}  // namespace

// ---------------------------------------------------------------------------------------------
// conv2d

CVG_REGISTER_OP(OpSpec{
    "conv2d",
    [](const TensorList& xs) { return conv2d(xs[0], xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // [1 2; 4 5] . [1 2; 3 4] = 1 + 4 + 12 + 20 = 37, and so on, sliding by one.
          {"hand 3x3 input, 2x2 kernel", {x33(), w22(), Tensor()},
           f64({37, 47, 67, 77}, {1, 1, 2, 2}), true, nullptr},
          {"hand bias", {x33(), w22(), t64({0.5}, {1})}, f64({37.5, 47.5, 67.5, 77.5}, {1, 1, 2, 2}),
           true, nullptr},
          // Padded to 5 x 5 and sampled every other position: the corners see 1, 2 3, 4 7 and
          // the full window [5 6; 8 9].
          {"hand stride 2 padding 1", {x33(), w22(), Tensor()},
           f64({4, 18, 36, 77}, {1, 1, 2, 2}), true, conv_fn({2, 2}, {1, 1}, {1, 1}, 1)},
          // Dilation 2: the kernel taps the corners 1, 3, 7, 9.
          {"hand dilation 2", {x33(), w22(), Tensor()}, f64({64}, {1, 1, 1, 1}), true,
           conv_fn({1, 1}, {0, 0}, {2, 2}, 1)},
          // Two input channels add: channel 1 is all ones under a kernel of ones, + 4.
          {"hand two input channels",
           {t64({1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 2, 3, 3}),
            t64({1, 2, 3, 4, 1, 1, 1, 1}, {1, 2, 2, 2}), Tensor()},
           f64({41, 51, 71, 81}, {1, 1, 2, 2}), true, nullptr},
          // Groups 2, 1x1 kernel [2, -1]: each output channel scales its own input channel.
          {"hand groups 2 with bias",
           {t64({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2}), t64({2, -1}, {2, 1, 1, 1}),
            t64({1, 10}, {2})},
           f64({3, 5, 7, 9, 5, 4, 3, 2}, {1, 2, 2, 2}), true, conv_fn({1, 1}, {0, 0}, {1, 1}, 2)},
          {"2x3x7x6, 4 filters 3x2, bias",
           {uniform64({2, 3, 7, 6}, -1, 1, 1), uniform64({4, 3, 3, 2}, -1, 1, 2),
            uniform64({4}, -1, 1, 3)},
           Tensor(), true, nullptr},
          {"stride (2, 1) padding (1, 2) dilation (1, 2)",
           {uniform64({2, 2, 7, 8}, -1, 1, 4), uniform64({3, 2, 3, 3}, -1, 1, 5),
            uniform64({3}, -1, 1, 6)},
           Tensor(), true, conv_fn({2, 1}, {1, 2}, {1, 2}, 1)},
          {"groups 3, stride 2, padding 1",
           {uniform64({1, 6, 5, 7}, -1, 1, 7), uniform64({9, 2, 3, 3}, -1, 1, 8),
            uniform64({9}, -1, 1, 9)},
           Tensor(), true, conv_fn({2, 2}, {1, 1}, {1, 1}, 3)},
          {"pointwise 1x1 (no im2col), groups 2",
           {uniform64({2, 4, 3, 5}, -1, 1, 10), uniform64({6, 2, 1, 1}, -1, 1, 11), Tensor()},
           Tensor(), true, conv_fn({1, 1}, {0, 0}, {1, 1}, 2)},
          {"unbatched Cin x H x W",
           {uniform64({2, 5, 6}, -1, 1, 12), uniform64({3, 2, 2, 3}, -1, 1, 13),
            uniform64({3}, -1, 1, 14)},
           Tensor(), true, conv_fn({1, 2}, {1, 0}, {1, 1}, 1)},
          {"transposed (strided) input",
           {uniform64({2, 2, 6, 5}, -1, 1, 15), uniform64({2, 2, 3, 3}, -1, 1, 16), Tensor()},
           Tensor(), true,
           [](const TensorList& xs) {
             return conv2d(permute(xs[0], {0, 1, 3, 2}), xs[1], xs[2], {1, 1}, {1, 1});
           }},
          // Not multiples of the CUDA tiles (64 x 64 x 16) and many blocks in every pass:
          // 70 filters, 2 x 18 x 21 output positions, a split weight-gradient reduction.
          {"large: many CUDA tiles",
           {uniform64({2, 5, 20, 23}, -1, 1, 17), uniform64({70, 5, 3, 3}, -1, 1, 18),
            uniform64({70}, -1, 1, 19)},
           Tensor(), false, nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// conv_transpose2d

CVG_REGISTER_OP(OpSpec{
    "conv_transpose2d",
    [](const TensorList& xs) { return conv_transpose2d(xs[0], xs[1], xs[2]); },
    [] {
      const Tensor x = t64({1, 2, 3, 4}, {1, 1, 2, 2});
      return std::vector<OpSample>{
          // Each input pixel stamps x[i, j] * w at (i, j): overlapping stamps add.
          {"hand stride 1", {x, w22(), Tensor()},
           f64({1, 4, 4, 6, 20, 16, 9, 24, 16}, {1, 1, 3, 3}), true, nullptr},
          // Stride 2: the four stamps tile a 4 x 4 output without overlapping.
          {"hand stride 2", {x, w22(), Tensor()},
           f64({1, 2, 2, 4, 3, 4, 6, 8, 3, 6, 4, 8, 9, 12, 12, 16}, {1, 1, 4, 4}), true,
           conv_t_fn({2, 2}, {0, 0}, {0, 0}, 1, {1, 1})},
          // Padding crops the full result: the centre of the stride-2 case.
          {"hand stride 2 padding 1", {x, w22(), Tensor()}, f64({4, 6, 6, 4}, {1, 1, 2, 2}),
           true, conv_t_fn({2, 2}, {1, 1}, {0, 0}, 1, {1, 1})},
          // output_padding adds a last row and column that no stamp reaches, + bias.
          {"hand stride 2 output_padding 1 bias", {x, w22(), t64({0.5}, {1})},
           f64({1.5, 2.5, 2.5, 4.5, 0.5, 3.5, 4.5, 6.5, 8.5, 0.5, 3.5, 6.5, 4.5, 8.5, 0.5,
                9.5, 12.5, 12.5, 16.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
               {1, 1, 5, 5}),
           true, conv_t_fn({2, 2}, {0, 0}, {1, 1}, 1, {1, 1})},
          {"3 -> 4 channels, stride (2, 3), padding (1, 0), output_padding (1, 2), bias",
           {uniform64({2, 3, 4, 3}, -1, 1, 21), uniform64({3, 4, 3, 4}, -1, 1, 22),
            uniform64({4}, -1, 1, 23)},
           Tensor(), true, conv_t_fn({2, 3}, {1, 0}, {1, 2}, 1, {1, 1})},
          {"groups 2, dilation 2",
           {uniform64({1, 4, 5, 4}, -1, 1, 24), uniform64({4, 3, 2, 3}, -1, 1, 25),
            uniform64({6}, -1, 1, 26)},
           Tensor(), true, conv_t_fn({1, 2}, {1, 1}, {0, 1}, 2, {2, 2})},
          // output_padding may reach the stride when it stays below the dilation.
          {"stride 1, dilation 2, output_padding 1",
           {uniform64({1, 2, 4, 3}, -1, 1, 27), uniform64({2, 2, 2, 2}, -1, 1, 28), Tensor()},
           Tensor(), true, conv_t_fn({1, 1}, {0, 0}, {1, 1}, 1, {2, 2})},
          {"unbatched",
           {uniform64({2, 3, 4}, -1, 1, 29), uniform64({2, 3, 3, 2}, -1, 1, 30), Tensor()},
           Tensor(), true, conv_t_fn({2, 1}, {0, 0}, {0, 0}, 1, {1, 1})},
          {"large: many CUDA tiles",
           {uniform64({2, 6, 15, 17}, -1, 1, 31), uniform64({6, 67, 3, 3}, -1, 1, 32),
            uniform64({67}, -1, 1, 33)},
           Tensor(), false, conv_t_fn({2, 2}, {1, 1}, {1, 0}, 1, {1, 1})}};
    }});

// ---------------------------------------------------------------------------------------------
// The backward ops, as ops of their own (their second derivatives are the third derivatives of
// conv2d, which must work for a gradient penalty trained by gradient descent).

CVG_REGISTER_OP(OpSpec{
    "conv2d_backward_input",
    [](const TensorList& xs) {
      return conv2d_backward_input(xs[0], xs[1], {1, 1, 3, 3}, {1, 1}, {0, 0}, {1, 1}, 1);
    },
    [] {
      return std::vector<OpSample>{
          // Each grad_out value stamps w onto the input: the same as conv_transpose2d.
          {"hand 2x2 kernel", {t64({1, 2, 3, 4}, {1, 1, 2, 2}), w22()},
           f64({1, 4, 4, 6, 20, 16, 9, 24, 16}, {1, 1, 3, 3}), true, nullptr},
          // 7 or 8 input rows give the same 3 output rows at stride 2 (the shape decides);
          // with 8, row 7 is read by no output and its gradient is 0.
          {"stride 2, input 8 x 7 (a row no output reads)",
           {uniform64({2, 4, 3, 3}, -1, 1, 41), uniform64({4, 3, 3, 3}, -1, 1, 42)},
           Tensor(), true,
           [](const TensorList& xs) {
             return conv2d_backward_input(xs[0], xs[1], {2, 3, 8, 7}, {2, 2}, {0, 0}, {1, 1}, 1);
           }},
          {"groups 2, dilation (2, 1)",
           {uniform64({1, 4, 3, 5}, -1, 1, 43), uniform64({4, 1, 2, 2}, -1, 1, 44)},
           Tensor(), true,
           [](const TensorList& xs) {
             return conv2d_backward_input(xs[0], xs[1], {1, 2, 5, 6}, {1, 1}, {0, 0}, {2, 1}, 2);
           }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "conv2d_backward_weight",
    [](const TensorList& xs) {
      return conv2d_backward_weight(xs[0], xs[1], {1, 1, 2, 2}, {1, 1}, {0, 0}, {1, 1}, 1);
    },
    [] {
      return std::vector<OpSample>{
          // d w[r, s] = sum of grad_out (all ones) over the 2 x 2 positions times the input
          // window at (r, s): 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9.
          {"hand ones", {t64({1, 1, 1, 1}, {1, 1, 2, 2}), x33()}, f64({12, 16, 24, 28}, {1, 1, 2, 2}),
           true, nullptr},
          {"stride (1, 2), padding 1, dilation 2",
           {uniform64({2, 3, 5, 2}, -1, 1, 51), uniform64({2, 2, 5, 6}, -1, 1, 52)},
           Tensor(), true,
           [](const TensorList& xs) {
             return conv2d_backward_weight(xs[0], xs[1], {3, 2, 2, 3}, {1, 2}, {1, 1}, {2, 2}, 1);
           }},
          {"groups 3",
           {uniform64({2, 3, 4, 4}, -1, 1, 53), uniform64({2, 6, 5, 5}, -1, 1, 54)},
           Tensor(), true,
           [](const TensorList& xs) {
             return conv2d_backward_weight(xs[0], xs[1], {3, 2, 2, 2}, {1, 1}, {0, 0}, {1, 1}, 3);
           }}};
    }});

// ---------------------------------------------------------------------------------------------

TEST_CASE("conv: every CPU kernel matches the definition on random configurations", "[conv]") {
  const std::vector<Cfg> cfgs = random_configs(40, 7);
  const RawKernel kernels[] = {conv2d_cpu, conv2d_direct_cpu, conv2d_implicit_gemm_cpu};
  const char* names[] = {"im2col + GEMM", "direct", "implicit GEMM"};
  uint64_t seed = 100;
  for (const Cfg& c : cfgs) {
    const ConvGeometry g = geometry_of(c);
    const Tensor x = uniform64({c.n, c.cin, c.h, c.w}, -1, 1, ++seed, false);
    const Tensor w = uniform64({c.cout, c.cin / c.groups, c.kh, c.kw}, -1, 1, ++seed, false);
    const Tensor b = uniform64({c.cout}, -1, 1, ++seed, false);
    const Tensor gout = uniform64({c.n, c.cout, g.ho, g.wo}, -1, 1, ++seed, false);
    const Reference ref = reference(c, values(x), values(w), values(b), values(gout));
    for (int k = 0; k < 3; ++k) {
      INFO(names[k] << ", " << describe(c));
      for (DType dt : {DType::float64, DType::float32}) {
        INFO(dtype_name(dt));
        const double tol = dt == DType::float64 ? 1e-12 : 1e-5;
        const Tensor xd = x.to(dt), wd = w.to(dt), bd = b.to(dt), gd = gout.to(dt);
        const TensorOptions o = xd.options();
        Tensor out = Tensor::empty(gout.shape(), o), gx = Tensor::empty(x.shape(), o),
               gw = Tensor::empty(w.shape(), o);
        // Stale values in the results must not leak into them.
        out.fill_(1e3);
        gx.fill_(1e3);
        gw.fill_(1e3);
        kernels[k](ConvPass::forward, xd, wd, bd, g, out);
        kernels[k](ConvPass::backward_input, gd, wd, Tensor(), g, gx);
        kernels[k](ConvPass::backward_weight, gd, xd, Tensor(), g, gw);
        CHECK(max_abs_diff(out, f64(ref.out, out.shape())) < tol);
        CHECK(max_abs_diff(gx, f64(ref.gx, gx.shape())) < tol);
        CHECK(max_abs_diff(gw, f64(ref.gw, gw.shape())) < tol);
      }
    }
  }
}

// conv2d_cpu splits a batch of 4 or more images across the threads and sums the weight gradient
// over a fixed number of batch slices; a smaller batch splits each GEMM into column blocks
// (kernels/conv_cpu.cpp). The configurations above have at most 3 images and small planes. Here:
// batches of 4 to 19 (fewer, as many as and more images than slices, uneven slices) and 1 to 3
// images with planes and column matrices wide enough for several blocks, each run with 1, 2 and
// 3 threads, which must agree to the last bit.
TEST_CASE("conv: the CPU kernel's split across threads matches the definition and not the "
          "thread count",
          "[conv]") {
  std::vector<Cfg> cfgs = random_configs(12, 19, 4, 19);
  cfgs.push_back({9, 6, 4, 5, 7, 1, 1, {1, 1}, {0, 0}, {1, 1}, 2});     // pointwise
  cfgs.push_back({13, 4, 6, 12, 11, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1});  // "same" padding
  cfgs.push_back({1, 5, 6, 20, 17, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1});   // 340 output columns
  cfgs.push_back({2, 16, 6, 11, 9, 3, 3, {1, 1}, {1, 1}, {1, 1}, 2});   // K = 72 per group
  cfgs.push_back({3, 12, 9, 19, 23, 3, 2, {2, 1}, {1, 0}, {1, 2}, 3});  // strided, dilated
  cfgs.push_back({1, 70, 4, 13, 12, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1});  // pointwise, K = 70
#ifdef _OPENMP
  const int threads_before = omp_get_max_threads();
  const int thread_counts[] = {1, 2, 3};
#else
  const int thread_counts[] = {1};
#endif
  uint64_t seed = 700;
  for (const Cfg& c : cfgs) {
    const ConvGeometry g = geometry_of(c);
    const Tensor x = uniform64({c.n, c.cin, c.h, c.w}, -1, 1, ++seed, false);
    const Tensor w = uniform64({c.cout, c.cin / c.groups, c.kh, c.kw}, -1, 1, ++seed, false);
    const Tensor b = uniform64({c.cout}, -1, 1, ++seed, false);
    const Tensor gout = uniform64({c.n, c.cout, g.ho, g.wo}, -1, 1, ++seed, false);
    const Reference ref = reference(c, values(x), values(w), values(b), values(gout));
    for (DType dt : {DType::float64, DType::float32}) {
      INFO(describe(c) << ", " << dtype_name(dt));
      const double tol = dt == DType::float64 ? 1e-12 : 1e-5;
      const Tensor xd = x.to(dt), wd = w.to(dt), bd = b.to(dt), gd = gout.to(dt);
      std::vector<Tensor> first;  // out, gx, gw with the first thread count
      for (int threads : thread_counts) {
        INFO(threads << " threads");
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        const TensorOptions o = xd.options();
        Tensor out = Tensor::empty(gout.shape(), o), gx = Tensor::empty(x.shape(), o),
               gw = Tensor::empty(w.shape(), o);
        out.fill_(1e3);
        gx.fill_(1e3);
        gw.fill_(1e3);
        conv2d_cpu(ConvPass::forward, xd, wd, bd, g, out);
        conv2d_cpu(ConvPass::backward_input, gd, wd, Tensor(), g, gx);
        conv2d_cpu(ConvPass::backward_weight, gd, xd, Tensor(), g, gw);
        CHECK(max_abs_diff(out, f64(ref.out, out.shape())) < tol);
        CHECK(max_abs_diff(gx, f64(ref.gx, gx.shape())) < tol);
        CHECK(max_abs_diff(gw, f64(ref.gw, gw.shape())) < tol);
        if (first.empty()) {
          first = {out, gx, gw};
        } else {
          CHECK(max_abs_diff(out, first[0]) == 0.0);
          CHECK(max_abs_diff(gx, first[1]) == 0.0);
          CHECK(max_abs_diff(gw, first[2]) == 0.0);
        }
      }
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(threads_before);
#endif
}

TEST_CASE("conv: the public ops' gradients match the definition", "[conv]") {
  uint64_t seed = 300;
  for (const Cfg& c : random_configs(10, 11)) {
    INFO(describe(c));
    const Tensor x = uniform64({c.n, c.cin, c.h, c.w}, -1, 1, ++seed);
    const Tensor w = uniform64({c.cout, c.cin / c.groups, c.kh, c.kw}, -1, 1, ++seed);
    const Tensor b = uniform64({c.cout}, -1, 1, ++seed);
    const Tensor y = conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
    const Tensor gout = uniform64(y.shape(), -1, 1, ++seed, false);
    const TensorList gr = grad({y}, {x, w, b}, {gout});
    const Reference ref = reference(c, values(x), values(w), values(b), values(gout));
    CHECK(max_abs_diff(y, f64(ref.out, y.shape())) < 1e-12);
    CHECK(max_abs_diff(gr[0], f64(ref.gx, x.shape())) < 1e-12);
    CHECK(max_abs_diff(gr[1], f64(ref.gw, w.shape())) < 1e-12);
    CHECK(max_abs_diff(gr[2], sum(gout, {0, 2, 3})) < 1e-12);
  }
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d: <conv2d(x, w), y> = <x, conv_t(y, w)>",
          "[conv]") {
  uint64_t seed = 500;
  for (const Cfg& c : random_configs(25, 13)) {
    INFO(describe(c));
    NoGradGuard no_grad;
    const Tensor x = uniform64({c.n, c.cin, c.h, c.w}, -1, 1, ++seed, false);
    const Tensor w = uniform64({c.cout, c.cin / c.groups, c.kh, c.kw}, -1, 1, ++seed, false);
    const Tensor cx = conv2d(x, w, Tensor(), c.stride, c.padding, c.dilation, c.groups);
    const Tensor y = uniform64(cx.shape(), -1, 1, ++seed, false);
    // The output_padding that gives back x's size (the rows the last stride step leaves out).
    ConvSize2 op{};
    for (int i = 0; i < 2; ++i) {
      const int64_t in = i == 0 ? c.h : c.w, k = i == 0 ? c.kh : c.kw;
      op[i] = in - ((cx.shape()[2 + i] - 1) * c.stride[i] - 2 * c.padding[i] +
                    c.dilation[i] * (k - 1) + 1);
    }
    if (!(op[0] < std::max(c.stride[0], c.dilation[0]) &&
          op[1] < std::max(c.stride[1], c.dilation[1])))
      continue;  // x has rows no output reads, beyond what output_padding can express
    const Tensor ty = conv_transpose2d(y, w, Tensor(), c.stride, c.padding, op, c.groups,
                                       c.dilation);
    REQUIRE(ty.shape() == x.shape());
    const double lhs = sum(cx * y).item(), rhs = sum(x * ty).item();
    CHECK(lhs == Approx(rhs).epsilon(1e-12).margin(1e-12));
  }
}

TEST_CASE("conv2d: unbatched input gives an unbatched result equal to a batch of one",
          "[conv]") {
  const Tensor x = uniform64({3, 6, 5}, -1, 1, 61, false);
  const Tensor w = uniform64({4, 3, 3, 3}, -1, 1, 62, false);
  const Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  REQUIRE(y.shape() == Shape{4, 6, 5});
  CHECK(max_abs_diff(y, squeeze(conv2d(unsqueeze(x, 0), w, Tensor(), {1, 1}, {1, 1}), 0)) ==
        0.0);
}

TEST_CASE("conv2d: a gradient penalty trains through the backward ops", "[conv]") {
  // d/dw of |d/dx <conv2d(x, w), v>|^2: the input gradient is conv2d_backward_input(v, w), so
  // the penalty is |bi(v, w)|^2 and its weight gradient is 2 bw(v, bi(v, w)) (bw, bi as in
  // conv.h), which the engine must find through the graph that create_graph builds.
  const Tensor x = uniform64({2, 3, 6, 7}, -1, 1, 71);
  const Tensor w = uniform64({4, 3, 3, 3}, -1, 1, 72);
  const Tensor v = uniform64({2, 4, 3, 4}, -1, 1, 73, false);
  const Tensor y = conv2d(x, w, Tensor(), {2, 2}, {1, 1});
  const Tensor gx = grad({y}, {x}, {v}, {.create_graph = true})[0];
  const Tensor penalty = sum(gx * gx);
  const Tensor gw = grad({penalty}, {w})[0];
  NoGradGuard no_grad;
  const Tensor bi = conv2d_backward_input(v, w, x.shape(), {2, 2}, {1, 1}, {1, 1}, 1);
  const Tensor expect = conv2d_backward_weight(v, bi, w.shape(), {2, 2}, {1, 1}, {1, 1}, 1) * 2.0;
  CHECK(max_abs_diff(gw, expect) < 1e-12);
}

TEST_CASE("conv: bad arguments are errors naming the op and the values", "[conv]") {
  const Tensor x = zeros({2, 4, 5, 5});
  const Tensor w = zeros({6, 2, 3, 3});
  auto msg = [](const std::function<void()>& fn) { return error_of(fn); };
  CHECK_THAT(msg([&] { conv2d(zeros({4, 5}), w); }),
             Contains("conv2d: x must be N x Cin x H x W or Cin x H x W, got shape [4, 5]"));
  CHECK_THAT(msg([&] { conv2d(x, zeros({6, 2, 3})); }),
             Contains("conv2d: weight must be Cout x Cin/groups x kH x kW, got shape [6, 2, 3]"));
  CHECK_THAT(msg([&] { conv2d(x, w); }),
             Contains("conv2d: x [2, 4, 5, 5] has 4 channels but weight [6, 2, 3, 3] with "
                      "groups 1 expects 2"));
  CHECK_THAT(msg([&] { conv2d(x, zeros({6, 1, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 3); }),
             Contains("conv2d: x [2, 4, 5, 5] has 4 channels but weight [6, 1, 3, 3] with "
                      "groups 3 expects 3"));
  CHECK_THAT(msg([&] { conv2d(x, zeros({5, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 2); }),
             Contains("conv2d: groups 2 does not divide the 5 output channels of weight "
                      "[5, 2, 3, 3]"));
  CHECK_THAT(msg([&] { conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 0); }),
             Contains("conv2d: groups must be positive, got 0"));
  CHECK_THAT(msg([&] { conv2d(x, w, Tensor(), {0, 1}, {0, 0}, {1, 1}, 2); }),
             Contains("conv2d: stride must be positive, got [0, 1]"));
  CHECK_THAT(msg([&] { conv2d(x, w, Tensor(), {1, 1}, {-1, 0}, {1, 1}, 2); }),
             Contains("conv2d: padding must be non-negative, got [-1, 0]"));
  CHECK_THAT(msg([&] { conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {3, 1}, 2); }),
             Contains("conv2d: input of 5 x 5 with kernel 3 x 3, stride [1, 1], padding [0, 0], "
                      "dilation [3, 1], groups 2 gives an output size of less than 1 x 1"));
  CHECK_THAT(msg([&] { conv2d(x, zeros({6, 2, 3, 3}, TensorOptions{}.with_dtype(DType::float64)),
                              Tensor(), {1, 1}, {0, 0}, {1, 1}, 2); }),
             Contains("conv2d: weight is float64 but x is float32; they must have the same dtype"));
  CHECK_THAT(msg([&] { conv2d(zeros({2, 4, 5, 5}, TensorOptions{}.with_dtype(DType::int64)), w); }),
             Contains("conv2d: x must be float32 or float64, got int64"));
  CHECK_THAT(msg([&] { conv2d(x, w, zeros({5}), {1, 1}, {0, 0}, {1, 1}, 2); }),
             Contains("conv2d: bias must be [6] (one value per output channel), got shape [5]"));

  CHECK_THAT(msg([&] { conv_transpose2d(x, zeros({3, 2, 3, 3})); }),
             Contains("conv_transpose2d: x [2, 4, 5, 5] has 4 channels but weight [3, 2, 3, 3] "
                      "expects 3"));
  CHECK_THAT(msg([&] { conv_transpose2d(x, zeros({4, 2, 3, 3}), Tensor(), {2, 2}, {0, 0}, {2, 0}); }),
             Contains("conv_transpose2d: output_padding [2, 0] must be non-negative and smaller "
                      "than the stride [2, 2] or the dilation [1, 1]"));
  CHECK_THAT(msg([&] { conv_transpose2d(x, zeros({4, 2, 3, 3}), Tensor(), {1, 1}, {4, 4}); }),
             Contains("conv_transpose2d: input of 5 x 5 with kernel 3 x 3, stride [1, 1], padding "
                      "[4, 4], dilation [1, 1], groups 1, output_padding [0, 0] gives an output "
                      "size of -1 x -1; it must be at least 1 x 1"));

  CHECK_THAT(msg([&] {
               conv2d_backward_input(zeros({2, 6, 4, 4}), w, {2, 2, 5, 5}, {1, 1}, {0, 0},
                                     {1, 1}, 1);
             }),
             Contains("conv2d_backward_input: grad_out has shape [2, 6, 4, 4] but input_shape "
                      "[2, 2, 5, 5] convolves to [2, 6, 3, 3]"));
  CHECK_THAT(msg([&] {
               conv2d_backward_input(zeros({2, 6, 3, 3}), w, {2, 5, 5}, {1, 1}, {0, 0}, {1, 1}, 1);
             }),
             Contains("conv2d_backward_input: input_shape must have 4 sizes, got [2, 5, 5]"));
  CHECK_THAT(msg([&] {
               conv2d_backward_weight(zeros({2, 6, 3, 3}), x, {6, 2, 3, 3}, {1, 1}, {0, 0},
                                      {1, 1}, 1);
             }),
             Contains("conv2d_backward_weight: x [2, 4, 5, 5] has 4 channels but weight_shape "
                      "[6, 2, 3, 3] with groups 1 expects 2"));
}

TEST_CASE("conv transpose: a padding larger than the result is an error, not an empty tensor",
          "[conv]") {
  // (1 - 1) * 1 - 2 * 1 + (2 - 1) + 1 = 0 rows.
  CHECK_THAT(error_of([] { conv_transpose2d(zeros({1, 1, 1, 1}), zeros({1, 1, 2, 2}), Tensor(),
                                            {1, 1}, {1, 1}); }),
             Contains("gives an output size of 0 x 0; it must be at least 1 x 1"));
}

#ifdef CVG_WITH_CUDA
// Runs only in the CUDA suite (hidden from the CPU suite): both CUDA versions, float32 and
// float64, every pass, against the CPU's im2col path, on configurations with odd sizes.
TEST_CASE("conv: CUDA v1 and v2 match the CPU in every pass", "[.][cuda]") {
  if (!cuda_available()) return;
  uint64_t seed = 900;
  std::vector<Cfg> cfgs = random_configs(20, 17);
  cfgs.push_back({3, 20, 48, 35, 33, 5, 5, {1, 1}, {2, 2}, {1, 1}, 1});
  cfgs.push_back({2, 64, 130, 19, 21, 3, 3, {2, 2}, {1, 1}, {1, 1}, 2});
  for (const Cfg& c : cfgs) {
    const ConvGeometry g = geometry_of(c);
    for (DType dt : {DType::float32, DType::float64}) {
      const TensorOptions o = TensorOptions{}.with_dtype(dt);
      const Tensor x = uniform64({c.n, c.cin, c.h, c.w}, -1, 1, ++seed, false).to(dt);
      const Tensor w =
          uniform64({c.cout, c.cin / c.groups, c.kh, c.kw}, -1, 1, ++seed, false).to(dt);
      const Tensor b = uniform64({c.cout}, -1, 1, ++seed, false).to(dt);
      const Tensor gout = uniform64({c.n, c.cout, g.ho, g.wo}, -1, 1, ++seed, false).to(dt);
      Tensor out = Tensor::empty(gout.shape(), o), gx = Tensor::empty(x.shape(), o),
             gw = Tensor::empty(w.shape(), o);
      conv2d_cpu(ConvPass::forward, x, w, b, g, out);
      conv2d_cpu(ConvPass::backward_input, gout, w, Tensor(), g, gx);
      conv2d_cpu(ConvPass::backward_weight, gout, x, Tensor(), g, gw);
      const double tol = dt == DType::float64 ? 1e-10 : 2e-4;
      for (int v = 1; v <= kConvCudaVersions; ++v) {
        INFO("v" << v << " " << dtype_name(dt) << " " << describe(c));
        const TensorOptions oc = o.with_device(kCUDA);
        Tensor cy = Tensor::empty(gout.shape(), oc), cgx = Tensor::empty(x.shape(), oc),
               cgw = Tensor::empty(w.shape(), oc);
        conv2d_cuda(v, ConvPass::forward, x.to(kCUDA), w.to(kCUDA), b.to(kCUDA), g, cy);
        conv2d_cuda(v, ConvPass::backward_input, gout.to(kCUDA), w.to(kCUDA), Tensor(), g, cgx);
        conv2d_cuda(v, ConvPass::backward_weight, gout.to(kCUDA), x.to(kCUDA), Tensor(), g, cgw);
        CHECK(allclose(cy.to(kCPU), out, tol, tol));
        CHECK(allclose(cgx.to(kCPU), gx, tol, tol));
        CHECK(allclose(cgw.to(kCPU), gw, tol, tol));
      }
    }
  }
}
#endif
