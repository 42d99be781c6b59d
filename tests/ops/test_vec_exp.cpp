// vec_exp (kernels/vec_exp.h): the vectorisable exp of the CPU loops, against std::exp over its
// whole range, at the special values, and where the result is subnormal, 0 or inf.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/vec_exp.h"

using namespace cvg;

namespace {

// Distance between a and b in representable numbers (0 when both are NaN; subnormals, zeros
// and infinities counted like any other float): the integer distance of the bits, mapped so
// that their integer order is the numeric order.
template <typename T>
double ulp_distance(T a, T b) {
  using Bits = typename ExpConstants<T>::Bits;
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0.0 : 1e300;
  // In int64_t (exact for both widths), then the difference in long double, which holds any
  // int64_t exactly on x86 and is only compared with small numbers elsewhere.
  auto ordered = [](T v) -> int64_t {
    const Bits bits = std::bit_cast<Bits>(v);
    return bits < 0 ? int64_t{std::numeric_limits<Bits>::min()} - bits : int64_t{bits};
  };
  return static_cast<double>(std::fabs(static_cast<long double>(ordered(a)) -
                                        static_cast<long double>(ordered(b))));
}

}  // namespace

TEMPLATE_TEST_CASE("vec_exp: within 2 ulp of std::exp over the whole range", "[ops][vec_exp]",
                   float, double) {
  using T = TestType;
  using C = ExpConstants<T>;
  double worst = 0;
  // A dense sweep from below kMin (results 0) through the subnormal results, every
  // range-reduction interval, to beyond kMax (inf), with a step that is not a multiple of ln2.
  const int steps = 2000003;
  const T lo = C::kMin - T(5), hi = C::kMax + T(5);
  for (int i = 0; i <= steps; ++i) {
    const T x = lo + (hi - lo) * static_cast<T>(i) / static_cast<T>(steps);
    worst = std::max(worst, ulp_distance(vec_exp(x), std::exp(x)));
  }
  // Tiny arguments of both signs, where r is x itself.
  for (T x = T(1e-3); x > T(1e-30); x *= T(0.5)) {
    worst = std::max(worst, ulp_distance(vec_exp(x), std::exp(x)));
    worst = std::max(worst, ulp_distance(vec_exp(-x), std::exp(-x)));
  }
  // Around the overflow threshold (log of the largest finite number) and the points where the
  // result becomes subnormal and 0.
  const T edges[] = {std::log(std::numeric_limits<T>::max()),
                     std::log(std::numeric_limits<T>::min()),
                     std::log(std::numeric_limits<T>::denorm_min())};
  for (T e : edges) {
    T x = e;
    for (int k = 0; k < 64; ++k) x = std::nextafter(x, T(-1e9));
    for (int k = 0; k < 128; ++k, x = std::nextafter(x, T(1e9)))
      worst = std::max(worst, ulp_distance(vec_exp(x), std::exp(x)));
  }
  CHECK(worst <= 2.0);
}

TEMPLATE_TEST_CASE("vec_exp: special values", "[ops][vec_exp]", float, double) {
  using T = TestType;
  using L = std::numeric_limits<T>;
  CHECK(vec_exp(T(0)) == T(1));
  CHECK(vec_exp(T(-0.0)) == T(1));
  CHECK(ulp_distance(vec_exp(T(1)), std::exp(T(1))) <= 1.0);
  CHECK(vec_exp(L::infinity()) == L::infinity());
  CHECK(vec_exp(L::max()) == L::infinity());
  CHECK(vec_exp(T(1000)) == L::infinity());
  CHECK(vec_exp(-L::infinity()) == T(0));
  CHECK(vec_exp(L::lowest()) == T(0));
  CHECK(vec_exp(T(-1000)) == T(0));
  CHECK(!std::signbit(vec_exp(T(-1000))));
  CHECK(std::isnan(vec_exp(L::quiet_NaN())));
  CHECK(std::isnan(vec_exp(-L::quiet_NaN())));
  // Tiny arguments and subnormal ones: exp is 1 to within rounding.
  CHECK(vec_exp(L::denorm_min()) == T(1));
  CHECK(vec_exp(-L::denorm_min()) == T(1));
  // The largest argument with a finite result has a finite result.
  const T top = std::nextafter(std::log(L::max()), T(0));
  CHECK(std::isfinite(vec_exp(top)));
  // A subnormal result is a subnormal, not 0.
  const T sub = vec_exp(std::log(L::min()) - T(2));
  CHECK(sub > T(0));
  CHECK(sub < L::min());
}
