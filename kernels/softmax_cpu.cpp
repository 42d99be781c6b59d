// CPU softmax / log_softmax over rows of a contiguous x read as [outer, D, inner].
//
// Work is split into tasks of (one outer index, a chunk of up to kCols adjacent inner indices):
// the task walks d = 0..D-1 for each of its columns, so with inner > 1 each step reads kCols
// adjacent elements (cache lines are used fully) and with inner == 1 a task is simply one
// contiguous row. Each row is handled by one task in a fixed order, so results do not depend on
// the thread count.
//
// Fast path (rows whose maximum is finite and that hold no NaN -- nearly all rows): three passes
// with one exp per element,
//   1. m = max_j x_j,
//   2. s = sum_j exp(x_j - m)   (softmax writes each exp(x_j - m) into y on the way),
//   3. softmax: y_j *= 1 / s;   log_softmax: y_j = (x_j - m) - log s.
// x_j - m <= 0 always, so exp_nonpositive (kernels/spatial_math.h) applies: it is built from
// multiply-adds and bit operations and vectorises, where std::exp is a scalar libm call per
// element. -inf entries of such a row give exp = 0, probability 0 and log-probability -inf,
// as PyTorch. An x_j - m below about -87 (float) gives 0 rather than a subnormal: a
// probability below 1e-38.
//
// Reference path (a NaN in the row, or a maximum of +inf, or a row that is all -inf): the
// online (max, sum) state of kernels/softmax_math.h, the same math as the CUDA kernel, which
// gives PyTorch's answers for non-finite rows (documented there).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"
#include "kernels/softmax.h"
#include "kernels/softmax_math.h"
#include "kernels/spatial_math.h"

namespace cvg {

namespace {

constexpr int64_t kCols = 64;

// A contiguous row's max and sum keep kLanes independent partials (lane l takes elements l,
// l + kLanes, ...), which the compiler keeps in vector registers, added up in a fixed order at
// the end: one running sum would be a serial dependency the compiler may not reorder (no
// -ffast-math). The order depends only on the row length.
constexpr int64_t kLanes = 8;

template <typename T>
bool finite_max(T m) {
  return m > -std::numeric_limits<T>::infinity() && m < std::numeric_limits<T>::infinity();
}

// The reference path for `w` columns (stride `inner`) of one [D, inner] slab.
template <typename T>
void softmax_cols_online(const T* xb, T* yb, int64_t D, int64_t inner, int64_t w, bool log) {
  SoftmaxState<T> st[kCols];
  for (int64_t c = 0; c < w; ++c) st[c] = softmax_init<T>();
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = xb + d * inner;
    for (int64_t c = 0; c < w; ++c) softmax_add(st[c], xr[c]);
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = xb + d * inner;
    T* yr = yb + d * inner;
    if (log) {
      for (int64_t c = 0; c < w; ++c) yr[c] = log_softmax_out(xr[c], st[c]);
    } else {
      for (int64_t c = 0; c < w; ++c) yr[c] = softmax_out(xr[c], st[c]);
    }
  }
}

// One contiguous row (inner == 1).
template <typename T>
void softmax_row(const T* x, T* y, int64_t D, bool log) {
  // Pass 1: the max and a NaN test, in kLanes lanes like the sum below. Both are exact, so the
  // lanes change nothing but speed. `v > mx ? v : mx` is the form that maps onto the SSE max
  // instruction (a NaN v leaves mx alone; `bad` catches it). GCC 12 fully unrolls a constant
  // 8-trip inner loop of such selects and then fails to vectorise it; kept as a loop (unroll 1)
  // it is vectorised whole.
  T mx[kLanes], bad[kLanes] = {};
  for (int64_t l = 0; l < kLanes; ++l) mx[l] = -std::numeric_limits<T>::infinity();
  const int64_t full = D - D % kLanes;
  for (int64_t j = 0; j < full; j += kLanes)
#pragma GCC unroll 1
    for (int64_t l = 0; l < kLanes; ++l) {
      const T v = x[j + l];
      mx[l] = v > mx[l] ? v : mx[l];
      bad[l] = v != v ? T(1) : bad[l];
    }
  for (int64_t j = full; j < D; ++j) {
    const T v = x[j];
    mx[j - full] = v > mx[j - full] ? v : mx[j - full];
    bad[j - full] = v != v ? T(1) : bad[j - full];
  }
  T m = mx[0];
  bool nan = bad[0] != T(0);
  for (int64_t l = 1; l < kLanes; ++l) {
    m = std::max(m, mx[l]);
    nan = nan || bad[l] != T(0);
  }
  if (nan || !finite_max(m)) return softmax_cols_online(x, y, D, 1, 1, log);

  // Pass 2.
  T acc[kLanes] = {};
  if (log) {
    for (int64_t j = 0; j < full; j += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += exp_nonpositive(x[j + l] - m);
    for (int64_t j = full; j < D; ++j) acc[j - full] += exp_nonpositive(x[j] - m);
  } else {
    for (int64_t j = 0; j < full; j += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += (y[j + l] = exp_nonpositive(x[j + l] - m));
    for (int64_t j = full; j < D; ++j) acc[j - full] += (y[j] = exp_nonpositive(x[j] - m));
  }
  // Lanes added pairwise (a fixed tree), s >= 1 since the maximum contributes exp(0) = 1.
  for (int64_t h = kLanes / 2; h > 0; h /= 2)
    for (int64_t l = 0; l < h; ++l) acc[l] += acc[l + h];
  const T s = acc[0];

  // Pass 3.
  if (log) {
    const T ls = std::log(s);
    for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - m) - ls;
  } else {
    const T r = T(1) / s;
    for (int64_t j = 0; j < D; ++j) y[j] *= r;
  }
}

// w <= kCols columns (stride inner > 1) of one [D, inner] slab: the same three passes, each
// step over d handling w adjacent columns at once (the loops over c vectorise). Each column's
// sum runs over d in order. If any column of the chunk needs the reference path, the whole
// chunk takes it (such inputs are rare; the answer per column is the same either way up to
// rounding of the finite columns).
template <typename T>
void softmax_cols(const T* xb, T* yb, int64_t D, int64_t inner, int64_t w, bool log) {
  T m[kCols], s[kCols];
  int nan[kCols];
  for (int64_t c = 0; c < w; ++c) {
    m[c] = -std::numeric_limits<T>::infinity();
    nan[c] = 0;
    s[c] = 0;
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = xb + d * inner;
    for (int64_t c = 0; c < w; ++c) {
      m[c] = std::max(m[c], xr[c]);
      nan[c] |= xr[c] != xr[c];
    }
  }
  for (int64_t c = 0; c < w; ++c)
    if (nan[c] || !finite_max(m[c])) return softmax_cols_online(xb, yb, D, inner, w, log);

  for (int64_t d = 0; d < D; ++d) {
    const T* xr = xb + d * inner;
    T* yr = yb + d * inner;
    if (log) {
      for (int64_t c = 0; c < w; ++c) s[c] += exp_nonpositive(xr[c] - m[c]);
    } else {
      for (int64_t c = 0; c < w; ++c) s[c] += (yr[c] = exp_nonpositive(xr[c] - m[c]));
    }
  }
  // s[c] becomes the per-column constant of pass 3.
  for (int64_t c = 0; c < w; ++c) s[c] = log ? std::log(s[c]) : T(1) / s[c];
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = xb + d * inner;
    T* yr = yb + d * inner;
    if (log) {
      for (int64_t c = 0; c < w; ++c) yr[c] = (xr[c] - m[c]) - s[c];
    } else {
      for (int64_t c = 0; c < w; ++c) yr[c] *= s[c];
    }
  }
}

// One task: w columns of a [D, inner] slab (a contiguous row when inner == 1).
template <typename T>
void softmax_task(const T* xb, T* yb, int64_t D, int64_t inner, int64_t w, bool log) {
  if (inner == 1) softmax_row(xb, yb, D, log);
  else softmax_cols(xb, yb, D, inner, w, log);
}

// On x86-64 the build targets the baseline ISA (SSE2: 4 floats per vector). The same task is
// compiled a second time for AVX2 (8 floats per vector; `flatten` inlines everything it calls,
// exp_nonpositive included, into that copy), and used when the CPU has AVX2. Both copies do
// the same IEEE operations on every lane in the same order -- the lanes above are explicit,
// and no FMA is enabled (nor contracted: -std=c++20 implies -ffp-contract=off) -- so they give
// the same bits; the wider vectors only halve the instruction count.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
template <typename T>
__attribute__((target("avx2"), flatten)) void softmax_task_avx2(const T* xb, T* yb, int64_t D,
                                                                 int64_t inner, int64_t w, bool log) {
  softmax_task(xb, yb, D, inner, w, log);
}
template <typename T>
auto pick_softmax_task() {
  return __builtin_cpu_supports("avx2") ? &softmax_task_avx2<T> : &softmax_task<T>;
}
#else
template <typename T>
auto pick_softmax_task() {
  return &softmax_task<T>;
}
#endif

template <typename T>
void softmax_rows(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, bool log) {
  const int64_t chunks = (inner + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D * std::min(inner, kCols)));
  const auto task = pick_softmax_task<T>();
  parallel_for(outer * chunks, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / chunks;
      const int64_t i0 = (t % chunks) * kCols, w = std::min(kCols, inner - i0);
      task(x + o * D * inner + i0, y + o * D * inner + i0, D, inner, w, log);
    }
  });
}

}  // namespace

void softmax_cpu(const Tensor& x, const Tensor& out, int64_t outer, int64_t D, int64_t inner,
                 bool log) {
  dispatch_floating(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_rows<T>(x.data<T>(), out.data<T>(), outer, D, inner, log);
  });
}

}  // namespace cvg
