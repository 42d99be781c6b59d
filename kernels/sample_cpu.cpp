// CPU loops of grid_sample's kernels (conventions in kernels/sample.h, math in sample_math.h,
// the code the CUDA kernels run too).
//   sample, grid gradient : parallel over output pixels (n, oy, ox); each computes its taps once
//                           and loops over the channels. One writer per output element.
//   input gradient (the adjoint, a scatter): parallel over (n, c) planes. A chunk walks the
//                           output pixels of its planes in increasing order and adds each one's
//                           contribution, so every input element sums in increasing output order
//                           whatever the split: the result does not depend on the thread count.
// float32 with Zeros padding and derivative order 0 (grid_sample's forward and its two
// gradients: the common case) runs on vectorised versions of the same loops, further down;
// they give the same bits.
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
  // Zeros padding at order 0 takes the branch-free axis_taps_zeros (sample_math.h): float64
  // here, float32 on the faster path below.
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

// ---- float32, Zeros padding, derivative order 0: the taps of 8 pixels at a time -------------
//
// The common case (the landmarks app warps RGB batches with it every step, and trains through
// it). With few channels almost all of the time of the general loops is computing each pixel's
// taps, one pixel at a time, with branches that a random grid mispredicts; the 4 C loads are
// cheap. These paths compute the taps of a block of pixels in structure-of-arrays form with
// one loop whose body has no branches, which the compiler vectorises (8 pixels per instruction
// with AVX2, as PyTorch's CPU grid sampler does), and then run the per-channel work over the
// block: a vectorised gather (forward, grid gradient) or a branch-free scatter (input gradient).
//
// Same results as tap_sum / tap_scatter / grid_grad_pixel_at (so as the general loops and the
// CUDA kernels), bit for bit: the same float operations per tap (p = g * scale + shift, floor,
// weights 1 - f and f or -scale and +scale, products wy * wx, terms added in tap order onto
// +0) and the same taps read. A skipped tap reads a stand-in address and its term becomes +0
// through a mask; the sums it joins start at +0 and so are never -0, and s + (+0) == s for
// every other s, NaN and inf included. The coordinate is clamped to [-2, size + 1] as in
// axis_taps, written as max / min so that it vectorises: a NaN ends at -2 as there, while +inf
// (and a finite g whose p overflows) ends at size + 1 instead of -2; both read nothing, so the
// results are the same zeros. Offsets are int32: the paths need (H + 3) (W + 3) below 2^31,
// which covers every image but the huge.
struct ZerosAxis {
  float scale, shift, limit;
  int32_t size;
};

ZerosAxis zeros_axis(const SampleAxis& a) {
  return {static_cast<float>(a.scale), static_cast<float>(a.shift),
          static_cast<float>(a.size + 1), static_cast<int32_t>(a.size)};
}

// For float32 kernels with this geometry.
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

// t where mask is all ones, +0 where it is 0.
inline float masked(float t, int32_t mask) {
  return std::bit_cast<float>(std::bit_cast<int32_t>(t) & mask);
}

// The taps of up to kSize consecutive output pixels of one image, kTaps per pixel (4: bilinear
// in tap_sum's order (y0, x0), (y0, x1), (y1, x0), (y1, x1); 1: nearest). Tap k of pixel i
// reads plane[off[k][i]] with weight w[k][i] where ok[k][i] is all ones; otherwise off is 0.
// For the grid gradient, wdx and wdy are the weights differentiated along x and along y
// (grid_grad_pixel_at's taps of orders (1, 0) and (0, 1)).
template <int kTaps>
struct ZerosBlock {
  static constexpr int kSize = 128;
  int64_t n = 0, p0 = 0;  // image, and position of pixel 0 in the output plane
  int count = 0;
  float gx[kSize], gy[kSize];
  int32_t off[kTaps][kSize];
  float w[kTaps][kSize];
  int32_t ok[kTaps][kSize];
  float wdx[kTaps][kSize], wdy[kTaps][kSize];

  // Loads the grid values of output pixels l .. l + count - 1 (linear over N x Ho x Wo, all
  // in one image), stepping (oy, ox) along the rows: any strides. A contiguous grid (the usual
  // one) is read with a loop that vectorises: the scalar steps were a fifth of the time.
  void load(const float* grid, const SampleGeometry& g, int64_t l, int cnt) {
    const int64_t op = g.out_plane();
    const int64_t* gs = g.grid_stride;
    n = l / op;
    p0 = l % op;
    count = cnt;
    if (gs[3] == 1 && gs[2] == 2 && gs[1] == 2 * g.wo) {
      const float* gp = grid + n * gs[0] + 2 * p0;
      for (int i = 0; i < count; ++i) {
        gx[i] = gp[2 * i];
        gy[i] = gp[2 * i + 1];
      }
      return;
    }
    int64_t oy = p0 / g.wo, ox = p0 % g.wo;
    for (int i = 0; i < count; ++i) {
      const float* gp = grid + n * gs[0] + oy * gs[1] + ox * gs[2];
      gx[i] = gp[0];
      gy[i] = gp[gs[3]];
      if (++ox == g.wo) { ox = 0; ++oy; }
    }
  }

  template <bool kDerivatives = false>
  void taps(const ZerosAxis& ax, const ZerosAxis& ay) {
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
        const float dwx[2] = {-ax.scale, ax.scale}, dwy[2] = {-ay.scale, ay.scale};
        const int32_t mx[2] = {inside_mask(ix, W), inside_mask(ix + 1, W)};
        const int32_t my[2] = {inside_mask(iy, ay.size), inside_mask(iy + 1, ay.size)};
        for (int j = 0; j < 2; ++j)
          for (int q = 0; q < 2; ++q) {
            const int k = 2 * j + q;
            const int32_t m = my[j] & mx[q];
            off[k][i] = ((iy + j) * W + ix + q) & m;
            w[k][i] = wy[j] * wx[q];
            ok[k][i] = m;
            if constexpr (kDerivatives) {
              wdx[k][i] = wy[j] * dwx[q];
              wdy[k][i] = dwy[j] * wx[q];
            }
          }
      }
    }
  }

  // out[i] = sum over the taps of pixel i, for one channel's plane.
  void gather(const float* plane, float* out) const {
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      float s = 0.0f;
      for (int k = 0; k < kTaps; ++k) s += masked(w[k][i] * plane[off[k][i]], ok[k][i]);
      out[i] = s;
    }
  }

  // One channel's terms of the grid gradient (grid_grad_pixel_at): the samples of its plane
  // with the weights wdx and wdy.
  void gather_derivatives(const float* plane, float* sx, float* sy) const {
#pragma omp simd
    for (int i = 0; i < count; ++i) {
      float tx = 0.0f, ty = 0.0f;
      for (int k = 0; k < kTaps; ++k) {
        const float v = plane[off[k][i]];
        tx += masked(wdx[k][i] * v, ok[k][i]);
        ty += masked(wdy[k][i] * v, ok[k][i]);
      }
      sx[i] = tx;
      sy[i] = ty;
    }
  }

  // plane[tap] += weight * go[i] for the taps of every pixel in increasing order (tap_scatter).
  // Pixels write to the same elements, so this loop stays scalar. A skipped tap adds +0 to
  // plane[0], which changes no bits: the plane starts at +0 (see above). (Sending those adds
  // to a scratch slot instead, to keep them off plane[0]'s chain of stores, measured slower.)
  void scatter(float* plane, const float* go) const {
    for (int i = 0; i < count; ++i)
      for (int k = 0; k < kTaps; ++k) plane[off[k][i]] += masked(w[k][i] * go[i], ok[k][i]);
  }
};

// What a kernel of this path reads and writes (the raw kernels' arguments).
struct ZerosArgs {
  const SampleGeometry* g;
  const float* x;     // input (forward, grid gradient)
  const float* grid;
  const float* go;    // grad_out (input and grid gradients)
  float* out;         // output, grad_in or grad_grid
};

// The taps of output pixels [b, e) (linear over N x Ho x Wo) in blocks inside one image, so
// that a block's outputs are consecutive in every channel's plane: fn(block) for each block,
// in increasing order.
template <int kTaps, bool kDerivatives = false, typename Fn>
void for_zeros_blocks(const SampleGeometry& g, const float* grid, int64_t b, int64_t e, Fn&& fn) {
  const ZerosAxis ax = zeros_axis(g.x), ay = zeros_axis(g.y);
  const int64_t op = g.out_plane();
  ZerosBlock<kTaps> blk;
  for (int64_t l = b; l < e; l += blk.count) {
    blk.load(grid, g, l, static_cast<int>(std::min<int64_t>({blk.kSize, e - l, op - l % op})));
    blk.template taps<kDerivatives>(ax, ay);
    fn(static_cast<const ZerosBlock<kTaps>&>(blk));
  }
}

// Forward for output pixels [b, e).
template <int kTaps>
void zeros_forward(const ZerosArgs& a, int64_t b, int64_t e) {
  const SampleGeometry& g = *a.g;
  const int64_t op = g.out_plane(), ip = g.in_plane();
  for_zeros_blocks<kTaps>(g, a.grid, b, e, [&](const ZerosBlock<kTaps>& blk) {
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t plane = blk.n * g.c + c;
      blk.gather(a.x + plane * ip, a.out + plane * op + blk.p0);
    }
  });
}

// Grid gradient (bilinear) for output pixels [b, e); grad_grid is contiguous N x Ho x Wo x 2.
template <int kTaps>
void zeros_grid_grad(const ZerosArgs& a, int64_t b, int64_t e) {
  const SampleGeometry& g = *a.g;
  const int64_t op = g.out_plane(), ip = g.in_plane();
  constexpr int kSize = ZerosBlock<kTaps>::kSize;
  float sx[kSize], sy[kSize], gx[kSize], gy[kSize];
  for_zeros_blocks<kTaps, true>(g, a.grid, b, e, [&](const ZerosBlock<kTaps>& blk) {
    std::fill_n(gx, blk.count, 0.0f);
    std::fill_n(gy, blk.count, 0.0f);
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t plane = blk.n * g.c + c;
      blk.gather_derivatives(a.x + plane * ip, sx, sy);
      // gx += go * sx in a loop of its own: with one loop in the channel loop's body, GCC jams
      // two channels into one scalar copy of it.
      const float* go = a.go + plane * op + blk.p0;
      for (int i = 0; i < blk.count; ++i) {
        gx[i] += go[i] * sx[i];
        gy[i] += go[i] * sy[i];
      }
    }
    float* gg = a.out + 2 * (blk.n * op + blk.p0);
    for (int i = 0; i < blk.count; ++i) {
      gg[2 * i] = gx[i];
      gg[2 * i + 1] = gy[i];
    }
  });
}

// Input gradient for the (n, c) planes [b, e), already zeroed: as sample_adjoint_cpu, the
// planes in runs that share n, each walking the image's output pixels in increasing order.
template <int kTaps>
void zeros_adjoint(const ZerosArgs& a, int64_t b, int64_t e) {
  const SampleGeometry& g = *a.g;
  const int64_t op = g.out_plane(), ip = g.in_plane();
  for (int64_t run = b; run < e;) {
    const int64_t n = run / g.c, run_end = std::min(e, (n + 1) * g.c);
    for_zeros_blocks<kTaps>(g, a.grid, n * op, (n + 1) * op, [&](const ZerosBlock<kTaps>& blk) {
      for (int64_t plane = run; plane < run_end; ++plane)
        blk.scatter(a.out + plane * ip, a.go + plane * op + blk.p0);
    });
    run = run_end;
  }
}

enum class ZerosKernel { forward, grid_grad, adjoint };

template <ZerosKernel K, int kTaps>
void zeros_run(const ZerosArgs& a, int64_t b, int64_t e) {
  if constexpr (K == ZerosKernel::forward) zeros_forward<kTaps>(a, b, e);
  else if constexpr (K == ZerosKernel::grid_grad) zeros_grid_grad<kTaps>(a, b, e);
  else zeros_adjoint<kTaps>(a, b, e);
}

// The build targets baseline x86-64 (SSE2: 4 floats). Each kernel is compiled again for AVX2
// (`flatten` inlines everything into that copy) and that copy runs when the CPU has AVX2. No
// FMA is enabled, and -std=c++20 does not contract, so both copies do the same float
// operations: the same bits. GCC's generic tuning builds the gathers from scalar loads rather
// than the AVX2 gather instruction; on the Xeon we measured, the gather instruction (with
// -mtune=skylake) made these kernels about 1.4x slower, and an AVX-512 copy was no faster.
using ZerosFn = void (*)(const ZerosArgs&, int64_t, int64_t);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <ZerosKernel K, int kTaps>
__attribute__((target("avx2"), flatten)) void zeros_run_avx2(const ZerosArgs& a, int64_t b,
                                                             int64_t e) {
  zeros_run<K, kTaps>(a, b, e);
}
#endif

// The kernel K for g's mode (nearest: one tap).
template <ZerosKernel K>
ZerosFn pick_zeros(const SampleGeometry& g) {
  const bool nearest = g.mode == GridSampleMode::Nearest;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (__builtin_cpu_supports("avx2")) return nearest ? &zeros_run_avx2<K, 1> : &zeros_run_avx2<K, 4>;
#endif
  return nearest ? &zeros_run<K, 1> : &zeros_run<K, 4>;
}

// Kernel K over all output pixels, parallel (forward and grid gradient).
template <ZerosKernel K>
void zeros_over_pixels(const ZerosArgs& args) {
  const SampleGeometry& g = *args.g;
  const ZerosFn run = pick_zeros<K>(g);
  parallel_for(g.n * g.out_plane(), pixel_grain(g.c),
               [&](int64_t b, int64_t e) { run(args, b, e); });
}

}  // namespace

void sample_cpu(const Tensor& x, const Tensor& grid, const SampleGeometry& g, const Tensor& out) {
  dispatch_floating(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pg = grid.data<T>();
    T* po = out.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      if (zeros_fast_path_applies(g))
        return zeros_over_pixels<ZerosKernel::forward>({&g, px, pg, nullptr, po});
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
    if constexpr (std::is_same_v<T, float>) {
      if (zeros_fast_path_applies(g) && g.mode == GridSampleMode::Bilinear)
        return zeros_over_pixels<ZerosKernel::grid_grad>({&g, px, pg, pgo, pgg});
    }
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
    ZerosFn fast = nullptr;
    if constexpr (std::is_same_v<T, float>)
      if (zeros_fast_path_applies(g)) fast = pick_zeros<ZerosKernel::adjoint>(g);
    parallel_for(g.n * g.c, grain, [&](int64_t b, int64_t e) {
      std::memset(pgi + b * ip, 0, sizeof(T) * static_cast<size_t>((e - b) * ip));
      if constexpr (std::is_same_v<T, float>)
        if (fast) return fast(ZerosArgs{&g, nullptr, pg, pgo, pgi}, b, e);
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
