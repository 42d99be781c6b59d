#pragma once
// Combine rules of the row reductions, shared by reduce_cpu.cpp and reduce_cuda.cu: one
// definition of the math, compiled for both (core/hd.h).
//
// Every reduction folds a row x[0..n) into a State. A reducer R<A> (A = accumulation type)
// provides
//   identity()               the State of an empty row,
//   update(s, x, i)          s extended by element x at row position i,
//   combine(a, b)            the State of a row made of a's elements followed by b's,
// and a finaliser: value(s) (and index(s) for the arg reducers). combine is associative up to
// rounding (exactly so for max/min/arg), which is what lets the CPU split a long row into
// blocks and the GPU combine per-thread partials with warp shuffles.
//
// NaN conventions: max/min/amax/amin, logsumexp and norm propagate NaN (a NaN anywhere in the
// row makes the result NaN); argmax/argmin return the index of the first NaN.
//
// This header deliberately does not include kernels/reduce.h (the Tensor API, which declares
// cvg::max and cvg::min): device code that includes only the math keeps unqualified min/max.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/hd.h"

namespace cvg {

// sum, max, min are the original kinds (reduce_forward); the others carry parameters in
// ReduceParams (kernels/reduce.h).
enum class ReduceKind : uint8_t { sum, max, min, var, logsumexp, norm };

template <ReduceKind K, typename A>
CVG_HD A reduce_identity() {
  if constexpr (K == ReduceKind::sum) return A(0);
  else if constexpr (K == ReduceKind::max) return -std::numeric_limits<A>::infinity();
  else return std::numeric_limits<A>::infinity();
}

// max/min: a NaN on either side wins (v != v is the NaN test that nvcc and the host agree on).
template <ReduceKind K, typename A>
CVG_HD A reduce_combine(A acc, A v) {
  if constexpr (K == ReduceKind::sum) return acc + v;
  else if constexpr (K == ReduceKind::max) return (v != v || v > acc) ? v : acc;
  else return (v != v || v < acc) ? v : acc;
}

// sum, max, min: the state is the running result itself.
template <ReduceKind K, typename A>
struct SimpleReducer {
  using State = A;
  CVG_HD State identity() const { return reduce_identity<K, A>(); }
  CVG_HD State update(State s, A x, int64_t) const { return reduce_combine<K, A>(s, x); }
  CVG_HD State combine(State a, State b) const { return reduce_combine<K, A>(a, b); }
  CVG_HD A value(State s) const { return s; }
};

// Variance with Welford's update and Chan et al.'s pairwise combine: numerically stable in
// one pass (no catastrophic cancellation of E[x^2] - E[x]^2). The count is an integer so that
// float32 rows longer than 2^24 still count correctly. value = m2 / (n - ddof), NaN when
// n - ddof <= 0 (as torch.var: the variance of one sample with Bessel's correction is NaN).
template <typename A>
struct VarReducer {
  struct State {
    int64_t n;
    A mean;
    A m2;  // sum of squared deviations from the mean
  };
  A ddof;
  CVG_HD State identity() const { return State{0, A(0), A(0)}; }
  CVG_HD State update(State s, A x, int64_t) const {
    const int64_t n = s.n + 1;
    const A d = x - s.mean;
    const A mean = s.mean + d / static_cast<A>(n);
    return State{n, mean, s.m2 + d * (x - mean)};
  }
  CVG_HD State combine(State a, State b) const {
    if (b.n == 0) return a;
    if (a.n == 0) return b;
    const int64_t n = a.n + b.n;
    const A d = b.mean - a.mean;
    const A wb = static_cast<A>(b.n) / static_cast<A>(n);
    return State{n, a.mean + d * wb, a.m2 + b.m2 + d * d * static_cast<A>(a.n) * wb};
  }
  CVG_HD A value(State s) const {
    const A denom = static_cast<A>(s.n) - ddof;
    return denom > A(0) ? s.m2 / denom : std::numeric_limits<A>::quiet_NaN();
  }
};

// log(sum exp x) as (m, s) = (running max, sum of exp(x - m)), so no exp ever overflows.
// Rescaling uses exp(old_m - new_m) only when the maxima differ, which keeps rows of -inf
// (-inf - -inf would be NaN) and +inf entries exact. Result: -inf for empty or all -inf
// rows, +inf when any element is +inf, NaN when any element is NaN.
template <typename A>
struct LogSumExpReducer {
  struct State {
    A m;
    A s;
  };
  CVG_HD static A rescale(State st, A m) {
    using std::exp;
    return st.m == m ? st.s : st.s * exp(st.m - m);
  }
  CVG_HD State identity() const { return State{-std::numeric_limits<A>::infinity(), A(0)}; }
  CVG_HD State update(State st, A x, int64_t) const { return combine(st, State{x, A(1)}); }
  CVG_HD State combine(State a, State b) const {
    const A m = reduce_combine<ReduceKind::max, A>(a.m, b.m);
    return State{m, rescale(a, m) + rescale(b, m)};
  }
  CVG_HD A value(State st) const {
    using std::log;
    if (st.m == -std::numeric_limits<A>::infinity()) return st.m;
    return st.m + log(st.s);
  }
};

// The p-norm (sum |x|^p)^(1/p), p > 0 finite, kept as (m, s) = (largest |x|, sum (|x|/m)^p)
// as in LAPACK's nrm2: squares of 1e200 (or of 1e20 in float32) do not overflow and tiny
// values do not underflow. Result m * s^(1/p); 0 for an all-zero or empty row, NaN when any
// element is NaN. p = 1 and p = 2 avoid pow.
template <typename A>
struct NormReducer {
  struct State {
    A m;
    A s;
  };
  A p;
  CVG_HD A term(A r) const {
    using std::pow;
    return p == A(1) ? r : (p == A(2) ? r * r : pow(r, p));
  }
  CVG_HD A rescale(State st, A m) const { return st.m == m ? st.s : st.s * term(st.m / m); }
  CVG_HD State identity() const { return State{A(0), A(0)}; }
  CVG_HD State update(State st, A x, int64_t) const {
    const A v = x < A(0) ? -x : x;  // NaN stays NaN
    return combine(st, State{v, v > A(0) ? A(1) : A(0)});
  }
  CVG_HD State combine(State a, State b) const {
    const A m = reduce_combine<ReduceKind::max, A>(a.m, b.m);
    if (m == A(0)) return State{A(0), A(0)};
    return State{m, rescale(a, m) + rescale(b, m)};
  }
  CVG_HD A value(State st) const {
    using std::pow; using std::sqrt;
    const A root = p == A(1) ? st.s : (p == A(2) ? sqrt(st.s) : pow(st.s, A(1) / p));
    return st.m == A(0) ? A(0) : st.m * root;
  }
};

// argmax (IsMax) / argmin: (value, index) pairs ordered so that NaN beats every number, a
// larger (smaller) value beats a smaller (larger) one, and among equals the lower index wins.
// That is a total order, so any combination order -- sequential, blocked, warp shuffles --
// returns the first maximum, or the first NaN.
template <typename A, bool IsMax>
struct ArgReducer {
  struct State {
    A v;
    int64_t i;
  };
  CVG_HD State identity() const {
    return State{IsMax ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity(),
                 std::numeric_limits<int64_t>::max()};
  }
  CVG_HD State update(State s, A x, int64_t i) const { return combine(s, State{x, i}); }
  CVG_HD State combine(State a, State b) const {
    const bool a_nan = a.v != a.v, b_nan = b.v != b.v;
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.i < b.i ? a : b;
      return a_nan ? a : b;
    }
    if (IsMax ? a.v > b.v : a.v < b.v) return a;
    if (IsMax ? b.v > a.v : b.v < a.v) return b;
    return a.i < b.i ? a : b;
  }
  CVG_HD A value(State s) const { return s.v; }
  CVG_HD int64_t index(State s) const { return s.i; }
};

// Where a finished row goes: out[row] = value (ValueEmit), or values[row] and indices[row] for
// the arg reducers (values may be null when only indices are wanted).
template <typename T>
struct ValueEmit {
  T* out;
  template <typename R>
  CVG_HD void operator()(const R& r, int64_t row, const typename R::State& s) const {
    out[row] = static_cast<T>(r.value(s));
  }
};
template <typename T>
struct ArgEmit {
  T* values;
  int64_t* indices;
  template <typename R>
  CVG_HD void operator()(const R& r, int64_t row, const typename R::State& s) const {
    if (values) values[row] = static_cast<T>(r.value(s));
    indices[row] = r.index(s);
  }
};

// How the GPU cuts long rows (kernels/reduce_cuda.cu; host code, here so that the CPU tests
// check it). A long row gets one block; when there are too few rows to fill the GPU (a full
// sum is a single row of every element), each row is cut into `parts` contiguous chunks of
// `chunk` elements (the last may be shorter, none is empty), one block each, and the chunks'
// States are combined in chunk order. parts == 1: no cut. The cut depends on the shape only,
// so results are deterministic and the same on every GPU.
struct ReduceSplit {
  int64_t parts, chunk;
};
inline ReduceSplit reduce_split(int64_t outer, int64_t inner) {
  constexpr int64_t kTargetBlocks = 1024;  // ~8 resident 256-thread blocks on each of 132 SMs
  constexpr int64_t kMinChunk = 4096;      // 16 elements per thread: more work than the setup
  constexpr int64_t kMaxParts = 1024;      // combined by one warp: 32 States per lane at most
  if (outer <= 0 || inner <= kMinChunk) return {1, inner};
  const int64_t parts = std::min(std::min((kTargetBlocks + outer - 1) / outer,
                                          (inner + kMinChunk - 1) / kMinChunk),
                                 kMaxParts);
  if (parts <= 1) return {1, inner};
  const int64_t chunk = (inner + parts - 1) / parts;
  return {(inner + chunk - 1) / chunk, chunk};
}

}  // namespace cvg
