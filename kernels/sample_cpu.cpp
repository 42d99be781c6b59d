// CPU loops of grid_sample's kernels (conventions in kernels/sample.h, math in sample_math.h,
// the code the CUDA kernels run too).
//   sample, grid gradient : parallel over output pixels (n, oy, ox); each computes its taps once
//                           and loops over the channels. One writer per output element.
//   input gradient (the adjoint, a scatter): parallel over (n, c) planes. A chunk walks the
//                           output pixels of its planes in increasing order and adds each one's
//                           contribution, so every input element sums in increasing output order
//                           whatever the split: the result does not depend on the thread count.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/parallel.h"
#include "kernels/sample.h"

namespace cvg {

namespace {

// Output pixels per chunk: each costs C * 4 loads.
int64_t pixel_grain(int64_t channels) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, channels)); }

// fn(n, oy, ox) for the output pixels l in [b, e) (linear indices over N x Ho x Wo), in
// increasing order. The indices are split once per chunk and then stepped: three 64-bit
// divisions per pixel cost more than the sampling itself when C is small.
template <typename Fn>
void for_pixels(const SampleGeometry& g, int64_t b, int64_t e, Fn&& fn) {
  if (b >= e) return;
  const int64_t op = g.out_plane();
  int64_t n = b / op, oy = (b % op) / g.wo, ox = (b % op) % g.wo;
  for (int64_t l = b; l < e; ++l) {
    fn(n, oy, ox);
    if (++ox == g.wo) {
      ox = 0;
      if (++oy == g.ho) { oy = 0; ++n; }
    }
  }
}

// A block of output pixels of one image n, with their taps in flat form: tap k of pixel i reads
// plane[off[k][i]] with weight w[k][i] = wy * wx where ok[k][i], and contributes +0 otherwise
// (then off is 0, a valid address). Splitting the work this way takes the unpredictable
// per-tap branches of tap_sum (out-of-image taps) out of the per-channel loop, which then has
// none: with a random grid those branches, not the loads, dominated the time.
//
// Same results as tap_sum, bit for bit: the terms are added in tap_sum's order, each being
// (wy * wx) * value or, for a tap tap_sum skips, +0; the sum starts at +0 and so is never -0,
// and s + (+0) == s for every other s. The blend keeps a NaN or inf that a skipped tap would read
// from its stand-in address out of the sum.
template <typename T>
struct TapBlock {
  static constexpr int kSize = 64;
  using Bits = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  int64_t n = 0, count = 0;
  int64_t p[kSize];  // position in the output plane
  int64_t off[4][kSize];
  T w[4][kSize];
  Bits ok[4][kSize];  // all ones where the tap is read, else 0

  // Appends output pixel (n, oy, ox) with its first kTaps taps (tap_sum's order: (y0, x0),
  // (y0, x1), (y1, x0), (y1, x1); Nearest reads only the first).
  template <int kTaps>
  void add(const AxisTaps<T>& tx, const AxisTaps<T>& ty, int64_t width, int64_t pos) {
    const int64_t i = count++;
    p[i] = pos;
    for (int j = 0; j < 2; ++j)
      for (int q = 0; q < 2; ++q) {
        const int k = 2 * j + q;
        if (k >= kTaps) continue;
        const bool read = ty.in[j] && tx.in[q];
        off[k][i] = read ? (ty.i0 + j) * width + tx.i0 + q : 0;
        w[k][i] = ty.w[j] * tx.w[q];
        ok[k][i] = read ? Bits(-1) : Bits(0);
      }
  }

  // sum over taps k < kTaps of plane's weighted taps, for pixel i (kTaps = 1 for Nearest, whose
  // second taps are never read).
  template <int kTaps>
  T sum(const T* plane, int64_t i) const {
    T s = T(0);
    for (int k = 0; k < kTaps; ++k) {
      const T t = w[k][i] * plane[off[k][i]];
      s += std::bit_cast<T>(std::bit_cast<Bits>(t) & ok[k][i]);
    }
    return s;
  }
};

// The taps of output pixels [b, e) in blocks of one image each: fn(block) per full block and
// for the rest.
template <typename T, typename Fn>
void for_tap_blocks(const T* pg, const SampleGeometry& g, int order_x, int order_y, int64_t b,
                    int64_t e, Fn&& fn) {
  TapBlock<T> block;
  // The common case takes the branch-free axis_taps_zeros (sample_math.h).
  const bool zeros_order0 = g.padding == GridPadding::Zeros && order_x == 0 && order_y == 0;
  for_pixels(g, b, e, [&](int64_t n, int64_t oy, int64_t ox) {
    if (block.count == TapBlock<T>::kSize || (block.count > 0 && block.n != n)) {
      fn(block);
      block.count = 0;
    }
    block.n = n;
    AxisTaps<T> tx, ty;
    if (zeros_order0) {
      tx = axis_taps_zeros(grid_at(pg, g, n, oy, ox, 0), g.x, g.mode);
      ty = axis_taps_zeros(grid_at(pg, g, n, oy, ox, 1), g.y, g.mode);
    } else {
      pixel_taps(pg, g, n, oy, ox, order_x, order_y, &tx, &ty);
    }
    if (g.mode == GridSampleMode::Nearest)
      block.template add<1>(tx, ty, g.w, oy * g.wo + ox);
    else
      block.template add<4>(tx, ty, g.w, oy * g.wo + ox);
  });
  if (block.count > 0) fn(block);
}

// The sample of a block for every channel (sample_pixel_at over the block).
template <int kTaps, typename T>
void sample_block(const TapBlock<T>& blk, const T* x, const SampleGeometry& g, T* out) {
  const int64_t op = g.out_plane(), ip = g.in_plane();
  const T* xn = x + blk.n * g.c * ip;
  T* on = out + blk.n * g.c * op;
  for (int64_t c = 0; c < g.c; ++c) {
    const T* plane = xn + c * ip;
    T* oc = on + c * op;
    for (int64_t i = 0; i < blk.count; ++i) oc[blk.p[i]] = blk.template sum<kTaps>(plane, i);
  }
}


// ---- grid_sample's forward, float32, Zeros padding: the taps of 8 pixels at a time ----------
//
// The common case (the landmarks app warps RGB batches with it every step). With few channels
// almost all of the time of the blocked path above is computing each pixel's taps, one pixel
// at a time; the 4 C loads are cheap. This path computes the taps of a block of pixels in
// structure-of-arrays form with one loop whose body has no branches, which the compiler
// vectorises (8 pixels per instruction with AVX2, as PyTorch's CPU grid sampler does), and
// then each channel gathers its taps with a second vectorised loop.
//
// Same results as tap_sum (so as the blocked path and the CUDA kernel), bit for bit: the same
// float operations per tap (p = g * scale + shift, floor, weights 1 - f and f, products
// wy * wx, terms added in tap_sum's order onto +0, skipped taps as +0 through a mask) and the
// same taps read. The coordinate is clamped to [-2, size + 1] as in axis_taps, written as
// max / min so that it vectorises: a NaN ends at -2 as there, while +inf (and a finite g whose
// p overflows) ends at size + 1 instead of -2; both read nothing, so the result is the same 0.
// Offsets are int32 (what the gather instructions take): the path needs (H + 3) (W + 3) below
// 2^31, which covers every image but the huge.
struct ZerosAxis {
  float scale, shift, limit;
  int32_t size;
};

ZerosAxis zeros_axis(const SampleAxis& a) {
  return {static_cast<float>(a.scale), static_cast<float>(a.shift),
          static_cast<float>(a.size + 1), static_cast<int32_t>(a.size)};
}

bool zeros_fast_path_applies(const SampleGeometry& g) {
  return g.padding == GridPadding::Zeros && g.order_x == 0 && g.order_y == 0 &&
         (g.h + 3) * (g.w + 3) < (int64_t{1} << 31);
}

// The pixel coordinate of grid value v, clamped to [-2, size + 1] ("p > lo ? p : lo" is the
// vector max instruction, NaN giving lo).
inline float zeros_coordinate(float v, const ZerosAxis& a) {
  float p = v * a.scale + a.shift;
  p = p > -2.0f ? p : -2.0f;
  return p < a.limit ? p : a.limit;
}

// floor(p) for p in [-2, size + 1] (sample_floor: truncation, then one down below zero).
inline int32_t zeros_floor(float p) {
  const int32_t t = static_cast<int32_t>(p);
  return t - static_cast<int32_t>(static_cast<float>(t) > p);
}

// All ones where 0 <= i < size, else 0.
inline int32_t inside_mask(int32_t i, int32_t size) {
  return -static_cast<int32_t>(static_cast<uint32_t>(i) < static_cast<uint32_t>(size));
}

// kTaps taps (4: bilinear, 1: nearest) of kSize pixels: tap k of pixel i reads plane[off[k][i]]
// with weight w[k][i] where ok[k][i] is all ones; otherwise off is 0 (a valid address) and the
// term is +0.
template <int kTaps>
struct ZerosBlock {
  static constexpr int kSize = 128;
  float gx[kSize], gy[kSize];
  int32_t off[kTaps][kSize];
  float w[kTaps][kSize];
  int32_t ok[kTaps][kSize];

  void taps(int count, const ZerosAxis& ax, const ZerosAxis& ay) {
    const int32_t W = ax.size;
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      const float px = zeros_coordinate(gx[i], ax), py = zeros_coordinate(gy[i], ay);
      int32_t ix = zeros_floor(px), iy = zeros_floor(py);
      if constexpr (kTaps == 1) {
        // Round half to even (sample_round_even): up above one half, and on a tie from odd.
        const float dx = px - static_cast<float>(ix), dy = py - static_cast<float>(iy);
        ix += static_cast<int32_t>(dx > 0.5f) | (static_cast<int32_t>(dx == 0.5f) & ix);
        iy += static_cast<int32_t>(dy > 0.5f) | (static_cast<int32_t>(dy == 0.5f) & iy);
        const int32_t m = inside_mask(ix, W) & inside_mask(iy, ay.size);
        off[0][i] = (iy * W + ix) & m;
        w[0][i] = 1.0f;  // wy * wx = 1 * 1
        ok[0][i] = m;
      } else {
        const float fx = px - static_cast<float>(ix), fy = py - static_cast<float>(iy);
        const float wx[2] = {1.0f - fx, fx}, wy[2] = {1.0f - fy, fy};
        const int32_t mx[2] = {inside_mask(ix, W), inside_mask(ix + 1, W)};
        const int32_t my[2] = {inside_mask(iy, ay.size), inside_mask(iy + 1, ay.size)};
        for (int j = 0; j < 2; ++j)
          for (int q = 0; q < 2; ++q) {
            const int k = 2 * j + q;
            const int32_t m = my[j] & mx[q];
            off[k][i] = ((iy + j) * W + ix + q) & m;
            w[k][i] = wy[j] * wx[q];
            ok[k][i] = m;
          }
      }
    }
  }

  // out[i] = sum over the taps of pixel i, for one channel's plane.
  void gather(const float* plane, int count, float* out) const {
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      float s = 0.0f;
      for (int k = 0; k < kTaps; ++k) {
        const float t = w[k][i] * plane[off[k][i]];
        s += std::bit_cast<float>(std::bit_cast<int32_t>(t) & ok[k][i]);
      }
      out[i] = s;
    }
  }
};

// The forward for output pixels [b, e) (linear over N x Ho x Wo), in blocks that stay inside
// one image: their outputs are then consecutive in every channel's plane.
template <int kTaps>
void zeros_chunk(const float* x, const float* grid, const SampleGeometry& g, float* out,
                 int64_t b, int64_t e) {
  ZerosBlock<kTaps> blk;
  const ZerosAxis ax = zeros_axis(g.x), ay = zeros_axis(g.y);
  const int64_t op = g.out_plane(), ip = g.in_plane();
  const int64_t* gs = g.grid_stride;
  for (int64_t l = b; l < e;) {
    const int64_t n = l / op, p0 = l % op;
    const int count = static_cast<int>(
        std::min<int64_t>({ZerosBlock<kTaps>::kSize, e - l, op - p0}));
    // The grid values of the block, stepping (oy, ox) along the rows (any strides).
    int64_t oy = p0 / g.wo, ox = p0 % g.wo;
    for (int i = 0; i < count; ++i) {
      const float* gp = grid + n * gs[0] + oy * gs[1] + ox * gs[2];
      blk.gx[i] = gp[0];
      blk.gy[i] = gp[gs[3]];
      if (++ox == g.wo) { ox = 0; ++oy; }
    }
    blk.taps(count, ax, ay);
    for (int64_t c = 0; c < g.c; ++c)
      blk.gather(x + (n * g.c + c) * ip, count, out + (n * g.c + c) * op + p0);
    l += count;
  }
}

// The build targets baseline x86-64 (SSE2: 4 floats, no gather instruction). The same chunk is
// compiled again for AVX2 (`flatten` inlines everything into that copy) and used when the CPU
// has it. No FMA is enabled, and -std=c++20 does not contract, so both copies do the same
// float operations: the same bits.
using ZerosChunkFn = void (*)(const float*, const float*, const SampleGeometry&, float*, int64_t,
                              int64_t);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <int kTaps>
__attribute__((target("avx2"), flatten)) void zeros_chunk_avx2(const float* x, const float* grid,
                                                               const SampleGeometry& g,
                                                               float* out, int64_t b, int64_t e) {
  zeros_chunk<kTaps>(x, grid, g, out, b, e);
}
template <int kTaps>
ZerosChunkFn pick_zeros_chunk() {
  return __builtin_cpu_supports("avx2") ? &zeros_chunk_avx2<kTaps> : &zeros_chunk<kTaps>;
}
#else
template <int kTaps>
ZerosChunkFn pick_zeros_chunk() {
  return &zeros_chunk<kTaps>;
}
#endif

}  // namespace

void sample_cpu(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* po = out.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      if (zeros_fast_path_applies(g)) {
        const ZerosChunkFn chunk = g.mode == GridSampleMode::Nearest ? pick_zeros_chunk<1>()
                                                                     : pick_zeros_chunk<4>();
        parallel_for(g.n * g.out_plane(), pixel_grain(g.c),
                     [&](int64_t b, int64_t e) { chunk(px, pg, g, po, b, e); });
        return;
      }
    }
    // Nearest reads one tap per pixel (axis_taps never marks its second taps as read).
    const bool nearest = g.mode == GridSampleMode::Nearest;
    parallel_for(g.n * g.out_plane(), pixel_grain(g.c), [&](int64_t b, int64_t e) {
      for_tap_blocks(pg, g, g.order_x, g.order_y, b, e, [&](const TapBlock<T>& blk) {
        if (nearest)
          sample_block<1>(blk, px, g, po);
        else
          sample_block<4>(blk, px, g, po);
      });
    });
  });
}

void sample_grid_grad_cpu(const Tensor& grad_out, const Tensor& x, const Tensor& grid,
                          const SampleGeometry& g, const Tensor& grad_grid) {
  dispatch_floating(x.dtype(), "grid_sample_backward_grid", [&](auto tag) {
    using T = decltype(tag);
    const T* pgo = grad_out.data<T>();
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* pgg = grad_grid.data<T>();
    parallel_for(g.n * g.out_plane(), pixel_grain(g.c), [&](int64_t b, int64_t e) {
      for_pixels(g, b, e, [&](int64_t n, int64_t oy, int64_t ox) {
        grid_grad_pixel_at(pgo, px, pg, g, n, oy, ox, pgg);
      });
    });
  });
}

void sample_adjoint_cpu(const Tensor& grad_out, const Tensor& grid, const SampleGeometry& g,
                        const Tensor& grad_in) {
  dispatch_floating(grad_out.dtype(), "grid_sample_backward_input", [&](auto tag) {
    using T = decltype(tag);
    const T* pgo = grad_out.data<T>();
    const T* pg = grid.data<T>();
    T* pgi = grad_in.data<T>();
    const int64_t op = g.out_plane(), ip = g.in_plane();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, op));
    parallel_for(g.n * g.c, grain, [&](int64_t b, int64_t e) {
      std::memset(pgi + b * ip, 0, sizeof(T) * static_cast<size_t>((e - b) * ip));
      // The planes [b, e) in runs that share a batch index n, so each output pixel's taps are
      // computed once per run rather than once per channel.
      for (int64_t run = b; run < e;) {
        const int64_t n = run / g.c;
        const int64_t run_end = std::min(e, (n + 1) * g.c);
        for_pixels(g, n * op, (n + 1) * op, [&](int64_t, int64_t oy, int64_t ox) {
          AxisTaps<T> tx, ty;
          pixel_taps(pg, g, n, oy, ox, g.order_x, g.order_y, &tx, &ty);
          if (!(tx.in[0] || tx.in[1]) || !(ty.in[0] || ty.in[1])) return;
          const int64_t p = oy * g.wo + ox;
          for (int64_t plane = run; plane < run_end; ++plane)
            tap_scatter(pgi + plane * ip, g.w, tx, ty, pgo[plane * op + p]);
        });
        run = run_end;
      }
    });
  });
}

}  // namespace cvg
