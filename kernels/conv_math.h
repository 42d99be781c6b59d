#pragma once
// Index math of the 2-D convolutions, shared by conv_cpu.cpp and conv_cuda.cu (conventions in
// kernels/conv.h). All tensors here are contiguous NCHW (weight: Cout x Cin/groups x kH x kW).
//
// Along one axis, output o of a convolution reads the input positions
//     i = o * s - p + r * d,     r = 0 .. k-1       (stride s, padding p, dilation d)
// and a position outside [0, in) is padding (a zero). Each of the three passes is a sum of
// products over exactly those (o, r, i) triples; they differ in which index they keep:
//   forward          out[n, co, oh, ow]   = sum_{c, r, s}    x[n, c, ih, iw] w[co, c, r, s]
//   backward_input   gin[n, c, ih, iw]    = sum_{co, r, s}   gout[n, co, oh, ow] w[co, c, r, s]
//   backward_weight  gw[co, c, r, s]      = sum_{n, oh, ow}  gout[n, co, oh, ow] x[n, c, ih, iw]
// (c runs over the input channels of co's group). Two ways of evaluating them live here:
//   * conv_*_at: one output element directly, by loops over its sum (the "direct" kernels:
//     the CUDA v1 kernels and conv2d_direct_cpu);
//   * ConvGemm: each pass as a GEMM C[m, j] = sum_k A[m, k] B[k, j] per group, whose operands
//     are read from the tensors on the fly ("implicit GEMM": the CUDA v2 kernel, and
//     conv2d_implicit_gemm_cpu, which runs the same loads in a plain loop so that the CPU tests
//     check the GPU kernel's addressing).
#include <cstdint>

#include "core/fast_div.h"
#include "core/hd.h"

namespace cvg {

enum class ConvPass { forward, backward_input, backward_weight };

struct ConvGeometry {
  int64_t n = 0, cin = 0, h = 0, w = 0;     // input (of the forward convolution)
  int64_t cout = 0, ho = 0, wo = 0;         // output
  int64_t kh = 1, kw = 1;                   // kernel
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;  // stride, padding, dilation
  int64_t groups = 1;

  CVG_HD int64_t cin_g() const { return cin / groups; }
  CVG_HD int64_t cout_g() const { return cout / groups; }
  CVG_HD int64_t taps() const { return kh * kw; }
  CVG_HD int64_t k_g() const { return cin_g() * kh * kw; }  // weight elements per filter
  CVG_HD int64_t in_plane() const { return h * w; }
  CVG_HD int64_t out_plane() const { return ho * wo; }
  // True when the input can be used as its own im2col matrix (1x1 kernel, stride 1, no padding).
  CVG_HD bool is_pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && ho == h && wo == w;
  }
};

// PyTorch's output size along one axis: floor((in + 2p - d(k-1) - 1) / s) + 1, or a value
// below 1 when the (dilated) kernel does not fit.
CVG_HD int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

// The outputs o in [begin, end) whose tap at offset `off` (= r * d - p) lands inside the input:
// 0 <= o * s + off < in. Lets loops skip the padding without a test per element.
struct ConvRange {
  int64_t begin, end;
};
CVG_HD ConvRange conv_valid_outputs(int64_t in, int64_t out, int64_t s, int64_t off) {
  // o * s + off >= 0  <=>  o >= ceil(-off / s);   o * s + off < in  <=>  o <= (in - 1 - off) / s.
  int64_t begin = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t end = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
  if (end > out) end = out;
  if (begin > end) begin = end;
  return {begin, end};
}

// The output index o with o * s + off == i, or -1 when there is none in [0, out).
CVG_HD int64_t conv_source_output(int64_t i, int64_t off, int64_t s, int64_t out) {
  const int64_t t = i - off;
  if (t < 0 || t % s != 0) return -1;
  const int64_t o = t / s;
  return o < out ? o : -1;
}

// ---- direct evaluation, one element at a time ------------------------------------------------

template <typename T>
CVG_HD T conv_forward_at(const T* x, const T* w, const T* bias, const ConvGeometry& g,
                         int64_t n, int64_t co, int64_t oh, int64_t ow) {
  const int64_t grp = co / g.cout_g();
  T acc = bias ? bias[co] : T(0);
  for (int64_t c = 0; c < g.cin_g(); ++c) {
    const T* xp = x + (n * g.cin + grp * g.cin_g() + c) * g.in_plane();
    const T* wp = w + (co * g.cin_g() + c) * g.taps();
    for (int64_t r = 0; r < g.kh; ++r) {
      const int64_t ih = oh * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int64_t s = 0; s < g.kw; ++s) {
        const int64_t iw = ow * g.sw - g.pw + s * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        acc += xp[ih * g.w + iw] * wp[r * g.kw + s];
      }
    }
  }
  return acc;
}

template <typename T>
CVG_HD T conv_backward_input_at(const T* gout, const T* w, const ConvGeometry& g, int64_t n,
                                int64_t c, int64_t ih, int64_t iw) {
  const int64_t grp = c / g.cin_g(), cl = c % g.cin_g();
  T acc = T(0);
  for (int64_t r = 0; r < g.kh; ++r) {
    const int64_t oh = conv_source_output(ih, r * g.dh - g.ph, g.sh, g.ho);
    if (oh < 0) continue;
    for (int64_t s = 0; s < g.kw; ++s) {
      const int64_t ow = conv_source_output(iw, s * g.dw - g.pw, g.sw, g.wo);
      if (ow < 0) continue;
      for (int64_t col = 0; col < g.cout_g(); ++col) {
        const int64_t co = grp * g.cout_g() + col;
        acc += gout[((n * g.cout + co) * g.ho + oh) * g.wo + ow] *
               w[((co * g.cin_g() + cl) * g.kh + r) * g.kw + s];
      }
    }
  }
  return acc;
}

template <typename T>
CVG_HD T conv_backward_weight_at(const T* gout, const T* x, const ConvGeometry& g, int64_t co,
                                 int64_t cl, int64_t r, int64_t s) {
  const int64_t c = (co / g.cout_g()) * g.cin_g() + cl;
  const ConvRange rh = conv_valid_outputs(g.h, g.ho, g.sh, r * g.dh - g.ph);
  const ConvRange rw = conv_valid_outputs(g.w, g.wo, g.sw, s * g.dw - g.pw);
  T acc = T(0);
  for (int64_t n = 0; n < g.n; ++n) {
    const T* gp = gout + (n * g.cout + co) * g.out_plane();
    const T* xp = x + (n * g.cin + c) * g.in_plane();
    for (int64_t oh = rh.begin; oh < rh.end; ++oh) {
      const int64_t ih = oh * g.sh - g.ph + r * g.dh;
      for (int64_t ow = rw.begin; ow < rw.end; ++ow)
        acc += gp[oh * g.wo + ow] * xp[ih * g.w + ow * g.sw - g.pw + s * g.dw];
    }
  }
  return acc;
}

// ---- implicit GEMM ---------------------------------------------------------------------------
//
// Per group grp, C[m, j] = sum_k A[m, k] B[k, j] with (operands a, b in the order of the public
// op's arguments: conv2d(x, weight), conv2d_backward_input(grad_out, weight),
// conv2d_backward_weight(grad_out, x)):
//   pass             m     j              k = (d0, d1, d2)   A          B
//   forward          co    (n, oh, ow)    (r, s, c)          weight     x gathered (im2col)
//   backward_input   c     (n, ih, iw)    (r, s, co)         weight^T   grad_out gathered
//   backward_weight  co    (c, r, s)      (n, oh, ow)        grad_out   x gathered (im2col^T)
// with channel indices local to the group. The depth index k is kept as three mixed-radix
// digits (slowest first, the largest radix fastest), so that a kernel walking k in steps of its
// tile depth advances them with additions and only divides on a carry; a column j is decoded
// once. Those divisions, and the stride test of the input gradient, multiply by dividers the
// host makes once per launch (FastDiv): no hardware division anywhere in the kernel.
// Depth of the shared-memory tiles of the CUDA v2 kernel (the step its depth cursors take).
inline constexpr int kConvTileK = 16;

struct ConvCol {
  int64_t i0 = 0, i1 = 0, i2 = 0;  // (n, oh, ow), (n, ih, iw) or (c, r, s), as above
};
struct ConvDepth {
  int64_t d0 = 0, d1 = 0, d2 = 0;  // (r, s, c), (r, s, co) or (n, oh, ow), as above
};

template <typename T, ConvPass P>
struct ConvGemm {
  ConvGeometry g;
  const T* a;     // x, grad_out or grad_out (see the table)
  const T* b;     // weight, weight or x
  const T* bias;  // forward only, may be null
  T* c;           // out, grad_in or grad_weight
  // Every size the loads divide by, with its divider made here, on the host (core/fast_div.h):
  // a 64-bit division is a ~70-instruction routine on a GPU, and the kernel's depth cursors
  // divide on every carry (with 20 input channels and tiles 16 deep, nearly every tile), which
  // cost more instructions than the tile's multiply-adds.
  int64_t cin_g = 1, cout_g = 1, taps = 1;  // g's per-group channels and kh kw
  FastDiv f_r1, f_r2;                       // by radix1(), radix2(): the depth digits
  FastDiv f_taps, f_kw, f_plane, f_wdt;     // decode_col's
  FastDiv f_sh, f_sw;                       // the input gradient's stride test

  ConvGemm(const ConvGeometry& geom, const T* a_, const T* b_, const T* bias_, T* c_)
      : g(geom), a(a_), b(b_), bias(bias_), c(c_), cin_g(geom.cin_g()), cout_g(geom.cout_g()),
        taps(geom.taps()) {
    f_r1 = FastDiv::for_size(radix1());
    f_r2 = FastDiv::for_size(radix2());
    f_taps = FastDiv::for_size(taps);
    f_kw = FastDiv::for_size(g.kw);
    f_plane = FastDiv::for_size(P == ConvPass::forward ? g.out_plane() : g.in_plane());
    f_wdt = FastDiv::for_size(P == ConvPass::forward ? g.wo : g.w);
    f_sh = FastDiv::for_size(g.sh);
    f_sw = FastDiv::for_size(g.sw);
  }

  CVG_HD int64_t rows() const { return P == ConvPass::backward_input ? cin_g : cout_g; }
  CVG_HD int64_t cols() const {
    if (P == ConvPass::forward) return g.n * g.out_plane();
    if (P == ConvPass::backward_input) return g.n * g.in_plane();
    return cin_g * taps;
  }
  // Radices of the depth digits (d0's is only a bound).
  CVG_HD int64_t radix1() const { return P == ConvPass::backward_weight ? g.ho : g.kw; }
  CVG_HD int64_t radix2() const {
    if (P == ConvPass::forward) return cin_g;
    if (P == ConvPass::backward_input) return cout_g;
    return g.wo;
  }
  CVG_HD int64_t depth() const {
    return (P == ConvPass::backward_weight ? g.n : g.kh) * radix1() * radix2();
  }

  CVG_HD ConvCol decode_col(int64_t j) const {
    if (P == ConvPass::backward_weight) {
      const int64_t c0 = f_taps.div(j), rs = j - c0 * taps, r = f_kw.div(rs);
      return {c0, r, rs - r * g.kw};
    }
    const int64_t n = f_plane.div(j), p = j - n * f_plane.divisor(), y = f_wdt.div(p);
    return {n, y, p - y * f_wdt.divisor()};
  }

  CVG_HD ConvDepth decode_depth(int64_t k) const {
    const int64_t q = f_r2.div(k), d0 = f_r1.div(q);
    return {d0, q - d0 * radix1(), k - q * radix2()};
  }
  // k += step, digit by digit.
  CVG_HD void advance(ConvDepth& d, int64_t step) const {
    d.d2 += step;
    if (d.d2 < radix2()) return;
    int64_t q = f_r2.div(d.d2);
    d.d2 -= q * radix2();
    d.d1 += q;
    if (d.d1 < radix1()) return;
    q = f_r1.div(d.d1);
    d.d1 -= q * radix1();
    d.d0 += q;
  }

  // x[n, group channel cl, oh * sh - ph + r * dh, ow * sw - pw + s * dw], or 0 in the padding.
  CVG_HD T x_tap(int64_t grp, int64_t n, int64_t cl, int64_t oh, int64_t ow, int64_t r,
                 int64_t s, const T* x) const {
    const int64_t ih = oh * g.sh - g.ph + r * g.dh, iw = ow * g.sw - g.pw + s * g.dw;
    if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return T(0);
    return x[((n * g.cin + grp * cin_g + cl) * g.h + ih) * g.w + iw];
  }

  // The output position o with o * stride + off == i, or -1 (conv_source_output, dividing by
  // the stride's FastDiv).
  CVG_HD static int64_t source(int64_t i, int64_t off, const FastDiv& stride, int64_t out) {
    const int64_t t = i - off;
    if (t < 0) return -1;
    const int64_t o = stride.div(t);
    return o * stride.divisor() == t && o < out ? o : -1;
  }

  CVG_HD T load_a(int64_t grp, int64_t m, const ConvDepth& k) const {
    if (P == ConvPass::forward)  // weight[co = m, c = d2, r = d0, s = d1]
      return b[((grp * cout_g + m) * cin_g + k.d2) * taps + k.d0 * g.kw + k.d1];
    if (P == ConvPass::backward_input)  // weight[co = d2, c = m, r = d0, s = d1]
      return b[((grp * cout_g + k.d2) * cin_g + m) * taps + k.d0 * g.kw + k.d1];
    // grad_out[n = d0, co = m, oh = d1, ow = d2]
    return a[((k.d0 * g.cout + grp * cout_g + m) * g.ho + k.d1) * g.wo + k.d2];
  }

  CVG_HD T load_b(int64_t grp, const ConvDepth& k, const ConvCol& col) const {
    if (P == ConvPass::forward)  // x tap (r, s) = (d0, d1) of channel d2 for (n, oh, ow)
      return x_tap(grp, col.i0, k.d2, col.i1, col.i2, k.d0, k.d1, a);
    if (P == ConvPass::backward_input) {  // grad_out[n, co = d2] at the output tap (r, s) reads
      const int64_t oh = source(col.i1, k.d0 * g.dh - g.ph, f_sh, g.ho);
      const int64_t ow = source(col.i2, k.d1 * g.dw - g.pw, f_sw, g.wo);
      if (oh < 0 || ow < 0) return T(0);
      return a[((col.i0 * g.cout + grp * cout_g + k.d2) * g.ho + oh) * g.wo + ow];
    }
    // x tap (r, s) of channel c for the output (n, oh, ow) = (d0, d1, d2)
    return x_tap(grp, k.d0, col.i0, k.d1, k.d2, col.i1, col.i2, b);
  }

  // Where C[m, j] of group grp goes in the result tensor.
  CVG_HD int64_t c_index(int64_t grp, int64_t m, const ConvCol& col) const {
    if (P == ConvPass::forward)
      return ((col.i0 * g.cout + grp * cout_g + m) * g.ho + col.i1) * g.wo + col.i2;
    if (P == ConvPass::backward_input)
      return ((col.i0 * g.cin + grp * cin_g + m) * g.h + col.i1) * g.w + col.i2;
    return ((grp * cout_g + m) * cin_g + col.i0) * taps + col.i1 * g.kw + col.i2;
  }

  // The value C starts from: the bias in the forward pass, zero otherwise.
  CVG_HD T c_init(int64_t grp, int64_t m) const {
    return (P == ConvPass::forward && bias) ? bias[grp * cout_g + m] : T(0);
  }
};

}  // namespace cvg
