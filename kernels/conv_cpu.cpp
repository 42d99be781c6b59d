// CPU kernels of the convolutions (conventions in kernels/conv.h, index math in conv_math.h).
//
// conv2d_cpu is im2col + GEMM, one image at a time. The column matrix of an image has one row
// per (input channel c, kernel row r, kernel column s) and one column per output position
// (oh, ow): col[(c, r, s), (oh, ow)] = x[c, oh sh - ph + r dh, ow sw - pw + s dw] (0 in the
// padding). With the groups as a batch dimension of the GEMM (rows of col are grouped by
// channel, so group g owns a contiguous block of rows):
//   forward          out[n]  = weight [G, Cout/G, K] @ col [G, K, Ho Wo]       (+ bias)
//   backward_input   col     = weight^T [G, K, Cout/G] @ grad_out[n];  grad_in[n] = col2im(col)
//   backward_weight  grad_w += grad_out[n] [G, Cout/G, Ho Wo] @ col^T [G, Ho Wo, K]
// The GEMMs are bmm_cpu (OpenBLAS, which threads internally, or the blocked loop, which uses
// parallel_for); im2col and col2im split their rows / channels with parallel_for. One column
// buffer (and, for the weight gradient, one GEMM result) is allocated per call and reused for
// every image. A pointwise convolution (1x1, stride 1, no padding) is its own column matrix.
// Every element is written by one thread and summed in a fixed order (images in increasing n),
// so results do not depend on the thread count.
#include <algorithm>

#include "core/parallel.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"

namespace cvg {

namespace {

// parallel_for grain in elements touched: below this a loop stays on the calling thread.
constexpr int64_t kGrainElems = 32768;

int64_t grain_for(int64_t elems_per_item) {
  return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, elems_per_item));
}

// [batch, rows, cols] view of a contiguous block starting `offset` elements into t.
Tensor mat3(const Tensor& t, int64_t offset, int64_t batch, int64_t rows, int64_t cols) {
  return make_view(t, {batch, rows, cols}, {rows * cols, cols, 1}, t.offset() + offset);
}
// The transposed view [batch, cols, rows] of the same block (BLAS reads it with a flag).
Tensor mat3_t(const Tensor& t, int64_t offset, int64_t batch, int64_t rows, int64_t cols) {
  return make_view(t, {batch, cols, rows}, {rows * cols, 1, cols}, t.offset() + offset);
}

// Unfolds one image x [Cin, H, W] into col [Cin kH kW, Ho Wo].
template <typename T>
void im2col(const T* x, const ConvGeometry& g, T* col) {
  const int64_t rows = g.cin * g.taps(), plane = g.out_plane();
  parallel_for(rows, grain_for(plane), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t c = row / g.taps(), r = (row % g.taps()) / g.kw, s = row % g.kw;
      const int64_t offh = r * g.dh - g.ph, offw = s * g.dw - g.pw;
      const ConvRange vh = conv_valid_outputs(g.h, g.ho, g.sh, offh);
      const ConvRange vw = conv_valid_outputs(g.w, g.wo, g.sw, offw);
      const T* xc = x + c * g.in_plane();
      T* dst = col + row * plane;
      for (int64_t oh = 0; oh < g.ho; ++oh) {
        T* d = dst + oh * g.wo;
        if (oh < vh.begin || oh >= vh.end) {
          std::fill(d, d + g.wo, T(0));
          continue;
        }
        const T* xrow = xc + (oh * g.sh + offh) * g.w;
        std::fill(d, d + vw.begin, T(0));
        if (g.sw == 1) {
          std::copy(xrow + vw.begin + offw, xrow + vw.end + offw, d + vw.begin);
        } else {
          for (int64_t ow = vw.begin; ow < vw.end; ++ow) d[ow] = xrow[ow * g.sw + offw];
        }
        std::fill(d + vw.end, d + g.wo, T(0));
      }
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

template <typename T>
void forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvGeometry& g,
             const Tensor& out) {
  const int64_t G = g.groups, P = g.out_plane(), HW = g.in_plane();
  const bool pointwise = g.is_pointwise();
  const Tensor col = pointwise ? Tensor() : Tensor::empty({g.cin * g.taps(), P}, x.options());
  const Tensor wv = mat3(w, 0, G, g.cout_g(), g.k_g());
  for (int64_t n = 0; n < g.n; ++n) {
    Tensor cols;
    if (pointwise) {
      cols = mat3(x, n * g.cin * HW, G, g.cin_g(), HW);
    } else {
      im2col(x.data<T>() + n * g.cin * HW, g, col.data<T>());
      cols = mat3(col, 0, G, g.k_g(), P);
    }
    bmm_cpu(wv, cols, mat3(out, n * g.cout * P, G, g.cout_g(), P));
  }
  if (bias.defined()) {
    const T* pb = bias.data<T>();
    T* po = out.data<T>();
    parallel_for(g.n * g.cout, grain_for(P), [&](int64_t b, int64_t e) {
      for (int64_t plane = b; plane < e; ++plane) {
        const T v = pb[plane % g.cout];
        T* p = po + plane * P;
        for (int64_t i = 0; i < P; ++i) p[i] += v;
      }
    });
  }
}

template <typename T>
void backward_input(const Tensor& gout, const Tensor& w, const ConvGeometry& g,
                    const Tensor& gin) {
  const int64_t G = g.groups, P = g.out_plane(), HW = g.in_plane();
  const bool pointwise = g.is_pointwise();
  const Tensor col = pointwise ? Tensor() : Tensor::empty({g.cin * g.taps(), P}, gout.options());
  const Tensor wt = mat3_t(w, 0, G, g.cout_g(), g.k_g());  // [G, K, Cout/G]
  for (int64_t n = 0; n < g.n; ++n) {
    const Tensor gv = mat3(gout, n * g.cout * P, G, g.cout_g(), P);
    if (pointwise) {
      bmm_cpu(wt, gv, mat3(gin, n * g.cin * HW, G, g.cin_g(), HW));
    } else {
      bmm_cpu(wt, gv, mat3(col, 0, G, g.k_g(), P));
      col2im(col.data<T>(), g, gin.data<T>() + n * g.cin * HW);
    }
  }
}

template <typename T>
void backward_weight(const Tensor& gout, const Tensor& x, const ConvGeometry& g,
                     const Tensor& gw) {
  const int64_t G = g.groups, P = g.out_plane(), HW = g.in_plane();
  if (g.n == 0 || P == 0) {  // an empty sum
    Tensor(gw).fill_(0.0);
    return;
  }
  const bool pointwise = g.is_pointwise();
  const Tensor col = pointwise ? Tensor() : Tensor::empty({g.cin * g.taps(), P}, x.options());
  // Image 0 writes grad_w; later images go through `part` and are added to it.
  const Tensor part = g.n > 1 ? Tensor::empty(gw.shape(), gw.options()) : Tensor();
  const Tensor gwv = mat3(gw, 0, G, g.cout_g(), g.k_g());
  for (int64_t n = 0; n < g.n; ++n) {
    Tensor cols_t;  // [G, Ho Wo, K]
    if (pointwise) {
      cols_t = mat3_t(x, n * g.cin * HW, G, g.cin_g(), HW);
    } else {
      im2col(x.data<T>() + n * g.cin * HW, g, col.data<T>());
      cols_t = mat3_t(col, 0, G, g.k_g(), P);
    }
    const Tensor gv = mat3(gout, n * g.cout * P, G, g.cout_g(), P);
    if (n == 0) {
      bmm_cpu(gv, cols_t, gwv);
      continue;
    }
    bmm_cpu(gv, cols_t, mat3(part, 0, G, g.cout_g(), g.k_g()));
    T* acc = gw.data<T>();
    const T* add = part.data<T>();
    parallel_for(gw.numel(), kGrainElems, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) acc[i] += add[i];
    });
  }
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
