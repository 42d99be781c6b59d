// CPU loop for the unary ops: x and out are contiguous; one pass, split across threads.
//
// Speed. The loop is a plain loop over cpu_eval, which the compiler vectorises:
// * The ops built on exp (exp, sigmoid, elu; elu's backward calls exp) use vec_exp
//   (kernels/vec_exp.h, within a few ulp of std::exp) instead of std::exp, a libm call per
//   element that keeps the loop scalar. unary_eval (unary_math.h) stays the reference: the
//   CUDA kernels run it, and the other ops here too.
// * The build targets baseline x86-64 (SSE2, 4 floats per vector). Where the CPU has AVX2 or
//   AVX-512 the same loop is also compiled for them (function attributes, one binary) and
//   picked at run time. The AVX-512 version may fuse a multiply and an add into one FMA, so its
//   results can differ from the others' in the last bit; on a given machine the choice is
//   fixed, so results stay the same from run to run and for every thread count.
#include <bit>
#include <cmath>

#include "core/parallel.h"
#include "kernels/unary.h"
#include "kernels/vec_exp.h"

namespace cvg {

namespace {

// Ops for which cpu_eval differs from unary_eval.
constexpr bool uses_vec_exp(UnaryOp op) {
  return op == UnaryOp::exp || op == UnaryOp::sigmoid || op == UnaryOp::elu;
}

// c ? a : b, written on the bits. A plain select whose arms are computed only for it gets
// compiled as a branch (GCC sinks each arm's floating-point work into its branch and will not
// speculate it back), and a loop with a branch does not vectorise; this blend has no branch.
template <typename T>
inline T blend(bool c, T a, T b) {
  using Bits = typename ExpConstants<T>::Bits;
  const Bits m = -static_cast<Bits>(c);  // all ones where c
  return std::bit_cast<T>((std::bit_cast<Bits>(a) & m) | (std::bit_cast<Bits>(b) & ~m));
}

// unary_eval with vec_exp for std::exp: the same formulas, the same branches.
template <UnaryOp OP, typename T>
inline T cpu_eval(T x, const UnaryParams& p) {
  if constexpr (std::is_floating_point_v<T> && uses_vec_exp(OP)) {
    if constexpr (OP == UnaryOp::exp) {
      return vec_exp(x);
    } else if constexpr (OP == UnaryOp::sigmoid) {
      // As unary_eval: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, e = exp(-|x|) <= 1.
      const T e = vec_exp(-std::fabs(x));
      const T s = T(1) / (T(1) + e);
      return blend(x >= T(0), s, e * s);
    } else {
      return blend(x > T(0), x, static_cast<T>(p.a) * (vec_exp(x) - T(1)));
    }
  } else {
    return unary_eval<OP, T>(x, p);
  }
}

template <UnaryOp OP, typename T>
inline void unary_loop(const T* px, T* po, int64_t b, int64_t e, const UnaryParams& p) {
  for (int64_t i = b; i < e; ++i) po[i] = cpu_eval<OP, T>(px[i], p);
}

#if defined(__x86_64__) && defined(__GNUC__)
template <UnaryOp OP, typename T>
__attribute__((target("avx2"))) void unary_loop_avx2(const T* px, T* po, int64_t b, int64_t e,
                                                     const UnaryParams& p) {
  unary_loop<OP, T>(px, po, b, e, p);
}

template <UnaryOp OP, typename T>
__attribute__((target("avx512f"))) void unary_loop_avx512(const T* px, T* po, int64_t b,
                                                          int64_t e, const UnaryParams& p) {
  unary_loop<OP, T>(px, po, b, e, p);
}

enum class Isa { base, avx2, avx512 };

Isa detect_isa() {
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2")) return Isa::avx2;
  return Isa::base;
}

const Isa kIsa = detect_isa();
#endif

template <UnaryOp OP, typename T>
void unary_chunk(const T* px, T* po, int64_t b, int64_t e, const UnaryParams& p) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kIsa == Isa::avx512) return unary_loop_avx512<OP, T>(px, po, b, e, p);
  if (kIsa == Isa::avx2) return unary_loop_avx2<OP, T>(px, po, b, e, p);
#endif
  unary_loop<OP, T>(px, po, b, e, p);
}

}  // namespace

void unary_cpu(UnaryOp op, const Tensor& x, const Tensor& out, const UnaryParams& p) {
  dispatch_unary(op, [&](auto opc) {
    constexpr UnaryOp OP = decltype(opc)::value;
    dispatch_dtype(x.dtype(), "unary", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool> ||
                    (!std::is_floating_point_v<T> && !unary_int_ok(OP))) {
        fail("unary op: not defined for ", dtype_name(x.dtype()), " tensors");
      } else {
        const T* px = x.data<T>();
        T* po = out.data<T>();
        parallel_for(x.numel(), 32768,
                     [&](int64_t b, int64_t e) { unary_chunk<OP, T>(px, po, b, e, p); });
      }
    });
  });
}

}  // namespace cvg
