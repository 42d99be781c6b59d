// CPU kernels of the convolutions (conventions in kernels/conv.h, index math in conv_math.h).
//
// conv2d_cpu is im2col + GEMM. The column matrix of an image has one row per (input channel c,
// kernel row r, kernel column s) and one column per output position (oh, ow):
//   col[(c, r, s), (oh, ow)] = x[c, oh sh - ph + r dh, ow sw - pw + s dw]   (0 in the padding).
// Rows of col are grouped by channel, so group g owns a contiguous block of K = Cin/G kH kW rows,
// and per image and group each pass is one GEMM:
//   forward          out[n]_g   = weight_g [Cout/G, K] @ col_g [K, Ho Wo]            (+ bias)
//   backward_input   col_g      = weight_g^T [K, Cout/G] @ grad_out[n]_g [Cout/G, Ho Wo],
//                    grad_in[n] = col2im(col)
//   backward_weight  grad_w_g  += grad_out[n]_g [Cout/G, Ho Wo] @ col_g^T [Ho Wo, K]
// A pointwise convolution (1x1, stride 1, no padding) is its own column matrix: no copy. A
// depthwise forward (one input and one output channel per group) skips the matrix: a direct loop
// (depthwise_forward).
//
// Threading. BLAS runs single-threaded here (BlasSingleThreaded) and the threads are
// parallel_for's, for two reasons. Speed: one BLAS call per image with BLAS's own threads (the
// previous scheme) was 3-4x slower on 2 cores, because BLAS's thread pool and the OpenMP pool
// of im2col / col2im took turns on the same cores, each spinning while the other worked, and
// every image paid several fork/joins, which cost milliseconds each on a busy machine.
// Determinism: threaded OpenBLAS sums the weight and input gradients in an order that depends
// on its thread count.
//   * A batch of at least kMinImagesToSplit images is split across the threads by image: each
//     thread unfolds its images into its own column buffer (allocated once per call, never
//     zero-filled: im2col writes every entry) and writes straight into its images' slices of
//     the result. A pass is one fork/join, and the buffer (a few MB) is still in cache when the
//     GEMM reads it. The weight gradient sums over images, so the batch is cut into a fixed
//     number of slices (kWeightSlices); each sums its images in increasing order into its own
//     partial (BLAS's beta = 1), and the partials are added in slice order.
//   * A smaller batch (one image at inference) runs image after image, with im2col / col2im
//     split by rows and each GEMM split into blocks of result columns whose width depends only
//     on the shapes.
// So every element is summed in an order fixed by the shapes, whatever the thread count.
// Tried and dropped (single thread, busy machine, SIMPLE-net shapes): one GEMM for the whole
// batch, a [K, N Ho Wo] column matrix (OpenBLAS ran 64 x 19600 x 432 at 62 GFLOP/s against 85
// for the per-image 64 x 1225 x 432, and the buffer is tens of MB and the result needs a
// permute); the stride-1 input gradient as a forward convolution of grad_out by the flipped
// kernel, which avoids col2im (its GEMM has Cin rows instead of Cin kH kW: 1.2-4x slower).
#include <algorithm>
#include <climits>
#include <exception>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "kernels/blas_threads.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"

#ifdef CVG_WITH_BLAS
#include <cblas.h>
#endif

namespace cvg {

namespace {

// parallel_for grain in elements touched: below this a loop stays on the calling thread.
constexpr int64_t kGrainElems = 32768;
// Batches at least this large are split across threads by image (see the header comment); with
// fewer images some threads would idle while others finish their last image.
constexpr int64_t kMinImagesToSplit = 4;
// Slices of the batch with a weight-gradient partial each. A constant, so that the order of the
// sum over the images does not depend on the thread count; 8 keeps up to 8 threads busy, and
// the 7 extra partials are small next to the column buffers.
constexpr int64_t kWeightSlices = 8;
// A smaller batch splits the columns of each GEMM into up to kColumnBlocks blocks of at least
// kMinBlockWidth columns (narrower GEMMs lose BLAS's efficiency).
constexpr int64_t kColumnBlocks = 8;
constexpr int64_t kMinBlockWidth = 64;

int64_t grain_for(int64_t elems_per_item) {
  return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, elems_per_item));
}

// A row-major matrix inside a contiguous tensor: element (i, j) at t[off + i ld + j]. With
// `trans` the GEMM operand is its transpose (BLAS reads it with a flag, nothing is copied).
struct MatRef {
  const Tensor& t;
  int64_t off, ld;
  bool trans;
};

// c = a @ b, or c += a @ b when `accumulate`, with a m x k and b k x n after their transposes
// and c the m x n block at c_off of tensor c with row stride ldc. One cblas_?gemm call when the
// build has BLAS (beta = 1 accumulates in place); otherwise matmul's blocked loop, through a
// scratch result when accumulating.
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, MatRef a, MatRef b, const Tensor& c, int64_t c_off,
          int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
#ifdef CVG_WITH_BLAS
  // k = 0 (an empty sum) goes to the loop: BLAS implementations differ on it.
  if (k > 0 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && a.ld <= INT_MAX &&
      b.ld <= INT_MAX && ldc <= INT_MAX) {
    const auto ta = a.trans ? CblasTrans : CblasNoTrans;
    const auto tb = b.trans ? CblasTrans : CblasNoTrans;
    const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
    const int lda = static_cast<int>(a.ld), ldb = static_cast<int>(b.ld);
    const int ldci = static_cast<int>(ldc);
    const T* pa = a.t.data<T>() + a.off;
    const T* pb = b.t.data<T>() + b.off;
    T* pc = c.data<T>() + c_off;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, mi, ni, ki, 1.0f, pa, lda, pb, ldb,
                  accumulate ? 1.0f : 0.0f, pc, ldci);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, mi, ni, ki, 1.0, pa, lda, pb, ldb,
                  accumulate ? 1.0 : 0.0, pc, ldci);
    return;
  }
#endif
  auto view = [](MatRef r, int64_t rows, int64_t cols) {
    return make_view(r.t, {1, rows, cols}, r.trans ? Shape{0, 1, r.ld} : Shape{0, r.ld, 1},
                     r.t.offset() + r.off);
  };
  // The loop writes a contiguous result: through a scratch one unless c is a dense block.
  const Tensor cv = make_view(c, {1, m, n}, {0, ldc, 1}, c.offset() + c_off);
  if (!accumulate && ldc == n) {
    gemm_fallback_cpu(view(a, m, k), view(b, k, n), cv);
    return;
  }
  const Tensor part = Tensor::empty({1, m, n}, TensorOptions{}.with_dtype(c.dtype()));
  gemm_fallback_cpu(view(a, m, k), view(b, k, n), part);
  T* pc = cv.data<T>();
  const T* pp = part.data<T>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      pc[i * ldc + j] = (accumulate ? pc[i * ldc + j] : T(0)) + pp[i * n + j];
}

// True when the batch is split across threads by image (or by slices of images).
bool split_images(const ConvGeometry& g) { return g.n >= kMinImagesToSplit; }

// parallel_for with grain 1, rethrowing here an exception of fn (out of memory), which must not
// leave an OpenMP region.
template <typename Fn>
void parallel_for_rethrow(int64_t count, Fn&& fn) {
  std::mutex mutex;
  std::exception_ptr error;
  parallel_for(count, 1, [&](int64_t b, int64_t e) {
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

// Runs fn(b, e, col) on consecutive ranges covering [0, count), with col a column buffer
// [Cin kH kW, Ho Wo] (undefined for a pointwise convolution) that the range's thread owns, and
// BLAS single-threaded throughout. When `split`, the ranges go to parallel_for's threads;
// otherwise one range runs on the calling thread (which splits each GEMM, for_column_blocks).
template <typename Fn>
void for_ranges(const ConvGeometry& g, DType dtype, bool split, int64_t count, Fn&& fn) {
  BlasSingleThreaded single;
  auto run = [&](int64_t b, int64_t e) {
    const Tensor col =
        g.is_pointwise()
            ? Tensor()
            : Tensor::empty({g.cin * g.taps(), g.out_plane()}, TensorOptions{}.with_dtype(dtype));
    fn(b, e, col);
  };
  if (split)
    parallel_for_rethrow(count, run);
  else
    run(int64_t{0}, count);
}

// Runs fn(j0, j1) on blocks [j0, j1) covering the `cols` result columns of a GEMM: one block
// when `whole` (the threads already have an image each), otherwise blocks of a width fixed by
// `cols` alone (a multiple of 16 floats, at least kMinBlockWidth) across the threads.
template <typename Fn>
void for_column_blocks(int64_t cols, bool whole, Fn&& fn) {
  if (whole || cols <= kMinBlockWidth) return fn(int64_t{0}, cols);
  const int64_t per_block = (cols + kColumnBlocks - 1) / kColumnBlocks;
  const int64_t width = std::max(kMinBlockWidth, (per_block + 15) / 16 * 16);
  const int64_t blocks = (cols + width - 1) / width;
  parallel_for_rethrow(blocks, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) fn(blk * width, std::min(cols, (blk + 1) * width));
  });
}

// One row (c, r, s) of the column matrix in the general case, output row by output row. Plain
// loops, and GCC told not to turn them back into memmove / memset calls: with small images the
// rows are a few elements long (DANN's second layer: 8), and one library call per output row
// (800 rows x 8 output rows per image) made im2col 16 % of a DANN training step.
template <typename T>
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void im2col_rows(
    const T* xc, const ConvGeometry& g, ConvRange vh, ConvRange vw, int64_t offh, int64_t offw,
    T* dst) {
  const int64_t plane = g.out_plane();
  for (int64_t i = 0; i < vh.begin * g.wo; ++i) dst[i] = T(0);  // taps in the top padding
  for (int64_t oh = vh.begin; oh < vh.end; ++oh) {
    T* d = dst + oh * g.wo;
    const T* xrow = xc + (oh * g.sh + offh) * g.w + offw;
    for (int64_t ow = 0; ow < vw.begin; ++ow) d[ow] = T(0);
    if (g.sw == 1) {
      for (int64_t ow = vw.begin; ow < vw.end; ++ow) d[ow] = xrow[ow];
    } else {
      for (int64_t ow = vw.begin; ow < vw.end; ++ow) d[ow] = xrow[ow * g.sw];
    }
    for (int64_t ow = vw.end; ow < g.wo; ++ow) d[ow] = T(0);
  }
  for (int64_t i = vh.end * g.wo; i < plane; ++i) dst[i] = T(0);  // and in the bottom padding
}

// A kernel tap (r, s): its offsets into the input and the output positions whose tap is inside
// the image.
struct TapWindow {
  int64_t offh, offw;
  ConvRange vh, vw;
};

// Unfolds one image x [Cin, H, W] into col [Cin kH kW, Ho Wo], writing every entry. The rows are
// split with parallel_for, which runs inline when called from one of its threads already.
template <typename T>
void im2col(const T* x, const ConvGeometry& g, T* col) {
  const int64_t taps = g.taps(), rows = g.cin * taps, plane = g.out_plane();
  // Once per call rather than per row: the row loop below then divides nothing (the divisions
  // per row were ~10 % of a DANN training step, whose images have 800 short rows each).
  std::vector<TapWindow> windows(static_cast<size_t>(taps));
  for (int64_t t = 0; t < taps; ++t) {
    TapWindow& tw = windows[static_cast<size_t>(t)];
    tw.offh = (t / g.kw) * g.dh - g.ph;
    tw.offw = (t % g.kw) * g.dw - g.pw;
    tw.vh = conv_valid_outputs(g.h, g.ho, g.sh, tw.offh);
    tw.vw = conv_valid_outputs(g.w, g.wo, g.sw, tw.offw);
  }
  parallel_for(rows, grain_for(plane), [&](int64_t b, int64_t e) {
    int64_t c = b / taps, t = b % taps;
    for (int64_t row = b; row < e; ++row, ++t) {
      if (t == taps) {
        t = 0;
        ++c;
      }
      const TapWindow& tw = windows[static_cast<size_t>(t)];
      const int64_t offh = tw.offh, offw = tw.offw;
      const ConvRange vh = tw.vh, vw = tw.vw;
      const T* xc = x + c * g.in_plane();
      T* dst = col + row * plane;
      if (g.sh == 1 && g.sw == 1 && g.wo == g.w) {
        // Stride 1 with the output as wide as the input ("same" padding): the row is the
        // plane shifted by one offset, so the valid output rows are one copy; it also copies,
        // into the padding columns, the neighbouring input row's ends, zeroed after it. One
        // call per row instead of several per output row (35-wide rows make those add up).
        const int64_t shift = offh * g.w + offw;
        const int64_t first = std::min(plane, std::max(vh.begin * g.wo, -shift));
        const int64_t last = std::min(vh.end * g.wo, g.in_plane() - shift);
        std::fill(dst, dst + first, T(0));
        if (first < last) std::copy(xc + first + shift, xc + last + shift, dst + first);
        std::fill(dst + std::max(first, last), dst + plane, T(0));
        // Column by column: a few columns, each a strided store loop (row by row, the compiler
        // makes each 1- or 2-element fill a memset call).
        auto zero_column = [&](int64_t ow) {
          for (int64_t oh = vh.begin; oh < vh.end; ++oh) dst[oh * g.wo + ow] = T(0);
        };
        for (int64_t ow = 0; ow < vw.begin; ++ow) zero_column(ow);
        for (int64_t ow = vw.end; ow < g.wo; ++ow) zero_column(ow);
        continue;
      }
      im2col_rows(xc, g, vh, vw, offh, offw, dst);
    }
  });
}

// Folds col [Cin kH kW, Ho Wo] back into one image gin [Cin, H, W] (overwritten): every input
// position sums the column entries that were copied from it, kernel taps in (r, s) order.
template <typename T>
void col2im(const T* col, const ConvGeometry& g, T* gin) {
  const int64_t plane = g.out_plane();
  parallel_for(g.cin, grain_for(g.taps() * plane), [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      T* dst = gin + c * g.in_plane();
      std::fill(dst, dst + g.in_plane(), T(0));
      for (int64_t r = 0; r < g.kh; ++r)
        for (int64_t s = 0; s < g.kw; ++s) {
          const int64_t offh = r * g.dh - g.ph, offw = s * g.dw - g.pw;
          const ConvRange vh = conv_valid_outputs(g.h, g.ho, g.sh, offh);
          const ConvRange vw = conv_valid_outputs(g.w, g.wo, g.sw, offw);
          const T* src = col + ((c * g.kh + r) * g.kw + s) * plane;
          for (int64_t oh = vh.begin; oh < vh.end; ++oh) {
            T* drow = dst + (oh * g.sh + offh) * g.w;
            const T* srow = src + oh * g.wo;
            for (int64_t ow = vw.begin; ow < vw.end; ++ow) drow[ow * g.sw + offw] += srow[ow];
          }
        }
    }
  });
}

// Where the column matrix of image n is: the image itself when pointwise, else `col` after
// im2col has filled it. Returns the tensor and the element offset of the matrix in it.
template <typename T>
std::pair<const Tensor*, int64_t> columns_of(const Tensor& x, int64_t n, const ConvGeometry& g,
                                             const Tensor& col) {
  if (g.is_pointwise()) return {&x, n * g.cin * g.in_plane()};
  im2col(x.data<T>() + n * g.cin * g.in_plane(), g, col.data<T>());
  return {&col, 0};
}

// A depthwise convolution (one input and one output channel per group) as a direct loop, one
// output row at a time. Per output the taps add in the GEMM's order (kernel row r, then column
// s; padding adds nothing), then the bias, so it is the GEMM's dot product over K = kH kW, and
// it needs no column matrix: the im2col path unfolded a 641 x 555 image with 8 channels and a
// 4 x 4 kernel into 184 MB, mapped and page-faulted afresh on every call (300 ms of a 320 ms
// forward here). Which outputs a column tap s reaches depends on s alone, so those ranges are
// computed once per call; between `lo` and `hi` every column tap lands in the row, and there
// (at stride 1, kW <= 5) one pass with kW a template argument adds a kernel row's taps to each
// output without tests: contiguous loads the compiler vectorises over the outputs. The edges,
// and other strides and widths (KW = 0), test each tap. (A pass per tap over its range was 2.7x
// PyTorch's time for 3 x 3 taps on 35-wide rows: the bookkeeping outweighed the arithmetic.)
// A call covers a thread's whole share of output rows, so the per-call set-up is paid once per
// share rather than once per kernel row (with 35-wide rows that set-up was a large part of the
// time).
template <typename T>
struct DepthwiseArgs {
  const T* px;
  const T* pw;
  const T* pb;  // null: no bias
  T* po;
  const ConvGeometry* g;
  const int64_t* offs;  // offs[s] = s dW - pW: input column of tap s, less ow sW
  int64_t lo, hi;       // outputs [lo, hi) see every column tap in the row
};

// Adds kernel row wr's taps that land in input row xr to outputs [b, e) of row op, testing
// each tap; KW = 0: any width and stride, else stride 1 and width KW.
template <typename T, int KW>
inline void depthwise_row_checked(T* op, const T* xr, const T* wr, const DepthwiseArgs<T>& a,
                                  int64_t b, int64_t e) {
  const ConvGeometry& g = *a.g;
  const int64_t kw = KW ? KW : g.kw, sw = KW ? 1 : g.sw;
  for (int64_t ow = b; ow < e; ++ow) {
    T acc = op[ow];
    for (int64_t s = 0; s < kw; ++s) {
      const int64_t i = ow * sw + a.offs[s];
      if (i >= 0 && i < g.w) acc += xr[i] * wr[s];
    }
    op[ow] = acc;
  }
}

// Output rows [r0, r1) of the flattened (plane = n C + c, oh) rows.
template <typename T, int KW>
void depthwise_rows(const DepthwiseArgs<T>& a, int64_t r0, int64_t r1) {
  const ConvGeometry& g = *a.g;
  int64_t o[KW ? KW : 1];
  for (int s = 0; s < KW; ++s) o[s] = a.offs[s];
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t plane = row / g.ho, oh = row % g.ho;
    const T* xp = a.px + plane * g.in_plane();
    const T* wp = a.pw + (plane % g.cout) * g.taps();
    T* op = a.po + row * g.wo;
    std::fill(op, op + g.wo, T(0));
    for (int64_t r = 0; r < g.kh; ++r) {
      const int64_t ih = oh * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      const T* xr = xp + ih * g.w;
      const T* wr = wp + r * g.kw;
      if constexpr (KW == 0) {
        depthwise_row_checked<T, 0>(op, xr, wr, a, 0, g.wo);
      } else {
        T wv[KW];
        for (int s = 0; s < KW; ++s) wv[s] = wr[s];
        depthwise_row_checked<T, KW>(op, xr, wr, a, 0, a.lo);
        for (int64_t ow = a.lo; ow < a.hi; ++ow) {
          T acc = op[ow];
          for (int s = 0; s < KW; ++s) acc += xr[ow + o[s]] * wv[s];
          op[ow] = acc;
        }
        depthwise_row_checked<T, KW>(op, xr, wr, a, a.hi, g.wo);
      }
    }
    if (a.pb) {
      const T bv = a.pb[plane % g.cout];
      for (int64_t ow = 0; ow < g.wo; ++ow) op[ow] += bv;
    }
  }
}

// The build targets baseline x86-64 (SSE2: 4 floats); the rows are compiled again for AVX2
// (8 floats; `flatten` inlines everything into that copy), used when the CPU has it. No FMA is
// enabled and -std=c++20 does not contract, so both copies do the same float operations: the
// same bits (the tests run the copy the CPU picks; the Deep Matching motorcycle pair's
// matches.txt was byte-identical with either).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <int KW>
__attribute__((target("avx2"), flatten)) void depthwise_rows_avx2(const DepthwiseArgs<float>& a,
                                                                  int64_t r0, int64_t r1) {
  depthwise_rows<float, KW>(a, r0, r1);
}
#endif

template <typename T, int KW>
auto depthwise_rows_for_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if constexpr (std::is_same_v<T, float>)
    if (__builtin_cpu_supports("avx2")) return &depthwise_rows_avx2<KW>;
#endif
  return &depthwise_rows<T, KW>;
}

template <typename T>
void depthwise_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                       const ConvGeometry& g, const Tensor& out) {
  std::vector<int64_t> offs(g.kw);
  int64_t lo = 0, hi = g.wo;
  for (int64_t s = 0; s < g.kw; ++s) {
    offs[s] = s * g.dw - g.pw;
    const ConvRange valid = conv_valid_outputs(g.w, g.wo, g.sw, offs[s]);
    lo = std::max(lo, valid.begin);
    hi = std::min(hi, valid.end);
  }
  if (lo > hi) lo = hi;  // no output sees every column tap
  const DepthwiseArgs<T> a{x.data<T>(), w.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                           out.data<T>(), &g, offs.data(), lo, hi};
  using Rows = void (*)(const DepthwiseArgs<T>&, int64_t, int64_t);
  Rows rows_fn = depthwise_rows_for_cpu<T, 0>();
  if (g.sw == 1) {
    switch (g.kw) {
      case 1: rows_fn = depthwise_rows_for_cpu<T, 1>(); break;
      case 2: rows_fn = depthwise_rows_for_cpu<T, 2>(); break;
      case 3: rows_fn = depthwise_rows_for_cpu<T, 3>(); break;
      case 4: rows_fn = depthwise_rows_for_cpu<T, 4>(); break;
      case 5: rows_fn = depthwise_rows_for_cpu<T, 5>(); break;
      default: break;
    }
  }
  parallel_for(g.n * g.cout * g.ho, grain_for(g.wo * g.taps()),
               [&](int64_t b, int64_t e) { rows_fn(a, b, e); });
}

template <typename T>
void forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvGeometry& g,
             const Tensor& out) {
  if (g.cin_g() == 1 && g.cout_g() == 1 && !g.is_pointwise())
    return depthwise_forward<T>(x, w, bias, g, out);
  const int64_t G = g.groups, M = g.cout_g(), K = g.k_g(), P = g.out_plane();
  const bool split = split_images(g);
  for_ranges(g, x.dtype(), split, g.n, [&](int64_t n0, int64_t n1, const Tensor& col) {
    for (int64_t n = n0; n < n1; ++n) {
      const auto [src, src_off] = columns_of<T>(x, n, g, col);
      // With a bias the result starts as the bias and the GEMM adds to it: BLAS would
      // otherwise zero it first (beta = 0), and adding the bias after is another pass.
      if (bias.defined()) {
        const T* pb = bias.data<T>();
        T* po = out.data<T>() + n * g.cout * P;
        for (int64_t co = 0; co < g.cout; ++co) std::fill(po + co * P, po + (co + 1) * P, pb[co]);
      }
      for_column_blocks(P, split, [&](int64_t j0, int64_t j1) {
        for (int64_t grp = 0; grp < G; ++grp)
          gemm<T>(M, j1 - j0, K, {w, grp * M * K, K, false},
                  {*src, src_off + grp * K * P + j0, P, false}, out,
                  (n * g.cout + grp * M) * P + j0, P, bias.defined());
      });
    }
  });
}

template <typename T>
void backward_input(const Tensor& gout, const Tensor& w, const ConvGeometry& g,
                    const Tensor& gin) {
  const int64_t G = g.groups, M = g.cout_g(), K = g.k_g(), P = g.out_plane();
  const bool pointwise = g.is_pointwise(), split = split_images(g);
  for_ranges(g, gout.dtype(), split, g.n, [&](int64_t n0, int64_t n1, const Tensor& col) {
    for (int64_t n = n0; n < n1; ++n) {
      // Pointwise, weight^T @ grad_out is the input gradient itself.
      const Tensor& dst = pointwise ? gin : col;
      const int64_t dst_off = pointwise ? n * g.cin * P : 0;
      for_column_blocks(P, split, [&](int64_t j0, int64_t j1) {
        for (int64_t grp = 0; grp < G; ++grp)
          gemm<T>(K, j1 - j0, M, {w, grp * M * K, K, true},
                  {gout, (n * g.cout + grp * M) * P + j0, P, false}, dst,
                  dst_off + grp * K * P + j0, P, false);
      });
      if (!pointwise) col2im(col.data<T>(), g, gin.data<T>() + n * g.cin * g.in_plane());
    }
  });
}

template <typename T>
void backward_weight(const Tensor& gout, const Tensor& x, const ConvGeometry& g,
                     const Tensor& gw) {
  const int64_t G = g.groups, M = g.cout_g(), K = g.k_g(), P = g.out_plane();
  if (g.n == 0 || P == 0) {  // an empty sum
    Tensor(gw).fill_(0.0);
    return;
  }
  const bool split = split_images(g);
  const int64_t slices = split ? std::min(g.n, kWeightSlices) : 1;
  const int64_t size = gw.numel();
  // Slice 0 sums into grad_w itself, slice s > 0 into row s - 1 of `parts`.
  const Tensor parts =
      slices > 1 ? Tensor::empty({slices - 1, size}, TensorOptions{}.with_dtype(gw.dtype()))
                 : Tensor();
  for_ranges(g, x.dtype(), split, slices, [&](int64_t s0, int64_t s1, const Tensor& col) {
    for (int64_t s = s0; s < s1; ++s) {
      const Tensor& acc = s == 0 ? gw : parts;
      const int64_t acc_off = s == 0 ? 0 : (s - 1) * size;
      const int64_t n0 = s * g.n / slices, n1 = (s + 1) * g.n / slices;
      for (int64_t n = n0; n < n1; ++n) {
        const auto [src, src_off] = columns_of<T>(x, n, g, col);
        // Column block [j0, j1) of grad_w_g is grad_out_g @ (rows j0..j1 of col_g)^T.
        for_column_blocks(K, split, [&](int64_t j0, int64_t j1) {
          for (int64_t grp = 0; grp < G; ++grp)
            gemm<T>(M, j1 - j0, P, {gout, (n * g.cout + grp * M) * P, P, false},
                    {*src, src_off + (grp * K + j0) * P, P, true}, acc,
                    acc_off + grp * M * K + j0, K, n > n0);
        });
      }
    }
  });
  if (slices == 1) return;
  T* pw = gw.data<T>();
  const T* pp = parts.data<T>();
  parallel_for(size, grain_for(slices), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T acc = pw[i];
      for (int64_t s = 1; s < slices; ++s) acc += pp[(s - 1) * size + i];
      pw[i] = acc;
    }
  });
}

// Runs fn(i) for every result element i of the pass, split across threads.
template <typename Fn>
void for_each_result(int64_t n, Fn&& fn) {
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(i);
  });
}

// The CUDA v2 kernel's loads and depth stepping in a plain loop: the depth is walked as
// kConvTileK interleaved sequences k = b, b + kConvTileK, ..., each with a cursor advanced by the
// tile depth, as a GPU thread walks it (only the summation order differs from the GPU's).
template <typename T, ConvPass P>
void implicit_gemm(const ConvGemm<T, P>& gm, int64_t groups) {
  const int64_t rows = gm.rows(), cols = gm.cols(), depth = gm.depth();
  for_each_result(groups * rows * cols, [&](int64_t i) {
    const int64_t grp = i / (rows * cols), m = (i / cols) % rows;
    const ConvCol col = gm.decode_col(i % cols);
    T acc = gm.c_init(grp, m);
    for (int64_t b = 0; b < std::min<int64_t>(kConvTileK, depth); ++b) {
      ConvDepth k = gm.decode_depth(b);
      for (int64_t kk = b; kk < depth; kk += kConvTileK, gm.advance(k, kConvTileK))
        acc += gm.load_a(grp, m, k) * gm.load_b(grp, k, col);
    }
    gm.c[gm.c_index(grp, m, col)] = acc;
  });
}

}  // namespace

void conv2d_cpu(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                const ConvGeometry& g, const Tensor& out) {
  dispatch_floating(a.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    switch (pass) {
      case ConvPass::forward: return forward<T>(a, b, bias, g, out);
      case ConvPass::backward_input: return backward_input<T>(a, b, g, out);
      case ConvPass::backward_weight: return backward_weight<T>(a, b, g, out);
    }
  });
}

void conv2d_direct_cpu(ConvPass pass, const Tensor& a, const Tensor& b, const Tensor& bias,
                       const ConvGeometry& g, const Tensor& out) {
  dispatch_floating(a.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const T* pbias = bias.defined() ? bias.data<T>() : nullptr;
    T* po = out.data<T>();
    switch (pass) {
      case ConvPass::forward:
        return for_each_result(out.numel(), [&](int64_t i) {
          const int64_t P = g.out_plane();
          po[i] = conv_forward_at(pa, pb, pbias, g, i / (g.cout * P), (i / P) % g.cout,
                                  (i % P) / g.wo, i % g.wo);
        });
      case ConvPass::backward_input:
        return for_each_result(out.numel(), [&](int64_t i) {
          const int64_t HW = g.in_plane();
          po[i] = conv_backward_input_at(pa, pb, g, i / (g.cin * HW), (i / HW) % g.cin,
                                         (i % HW) / g.w, i % g.w);
        });
      case ConvPass::backward_weight:
        return for_each_result(out.numel(), [&](int64_t i) {
          po[i] = conv_backward_weight_at(pa, pb, g, i / g.k_g(), (i / g.taps()) % g.cin_g(),
                                          (i % g.taps()) / g.kw, i % g.kw);
        });
    }
  });
}

void conv2d_implicit_gemm_cpu(ConvPass pass, const Tensor& a, const Tensor& b,
                              const Tensor& bias, const ConvGeometry& g, const Tensor& out) {
  dispatch_floating(a.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const T* pbias = bias.defined() ? bias.data<T>() : nullptr;
    T* po = out.data<T>();
    switch (pass) {
      case ConvPass::forward:
        return implicit_gemm(ConvGemm<T, ConvPass::forward>{g, pa, pb, pbias, po}, g.groups);
      case ConvPass::backward_input:
        return implicit_gemm(ConvGemm<T, ConvPass::backward_input>{g, pa, pb, nullptr, po},
                             g.groups);
      case ConvPass::backward_weight:
        return implicit_gemm(ConvGemm<T, ConvPass::backward_weight>{g, pa, pb, nullptr, po},
                             g.groups);
    }
  });
}

}  // namespace cvg
