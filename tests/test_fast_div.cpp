// FastDiv and FastDiv32 (core/fast_div.h) against the division operator: every small quotient
// exhaustively, the edges of each divisor's range (multiples and their neighbours), and random
// numerators up to the index type's maximum for divisors of every magnitude, powers of two and
// their neighbours included. (The GPU path, __umul64hi / __umulhi instead of the wide product,
// runs in every deepmatch [cuda] parity sample and in the broadcast binary ops.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/fast_div.h"

using namespace cvg;

namespace {

template <typename I>
constexpr I kMax = std::numeric_limits<I>::max();

// Reports the first wrong (n, d) and stops, so a broken divider prints one line, not millions.
template <typename I>
bool agrees(const FastDivOf<I>& f, I n) {
  const I d = f.divisor();
  if (f.div(n) == n / d && f.mod(n) == n % d) return true;
  FAIL_CHECK(8 * sizeof(I) << "-bit FastDiv(" << d << ") at n = " << n << ": div " << f.div(n)
                           << " (want " << n / d << "), mod " << f.mod(n) << " (want "
                           << n % d << ")");
  return false;
}

template <typename I>
std::vector<I> divisors() {
  std::vector<I> ds;
  for (I d = 1; d <= 300; ++d) ds.push_back(d);
  for (int s = 9; s < 8 * static_cast<int>(sizeof(I)) - 1; ++s) {
    const I p = I{1} << s;
    ds.insert(ds.end(), {p - 1, p, p + 1, static_cast<I>(3 * (p / 4)), static_cast<I>(p + p / 3)});
  }
  ds.insert(ds.end(), {161 * 161, 81 * 81, 1000003, kMax<I> / 3, kMax<I> - 1, kMax<I>});
  if constexpr (sizeof(I) == 8) ds.insert(ds.end(), {4294967295, 4294967296, 4294967297});
  return ds;
}

}  // namespace

TEMPLATE_TEST_CASE("fast_div: every numerator below 4096 for divisors 1..300", "[fast_div]",
                   int64_t, int32_t) {
  using I = TestType;
  for (I d = 1; d <= 300; ++d) {
    const FastDivOf<I> f(d);
    for (I n = 0; n < 4096; ++n)
      if (!agrees(f, n)) return;
  }
}

TEMPLATE_TEST_CASE("fast_div: multiples of the divisor and their neighbours, up to the maximum",
                   "[fast_div]", int64_t, int32_t) {
  using I = TestType;
  for (const I d : divisors<I>()) {
    const FastDivOf<I> f(d);
    for (const int64_t q64 : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1} << 20,
                              int64_t{1} << 31, int64_t{1} << 40, int64_t{kMax<I> / d},
                              int64_t{kMax<I> / d - 1}}) {
      if (q64 < 1 || q64 > kMax<I> / d) continue;
      const I m = static_cast<I>(q64) * d;
      for (const I n : {static_cast<I>(m - 1), m, m < kMax<I> ? static_cast<I>(m + 1) : m})
        if (!agrees(f, n)) return;
    }
    if (!agrees<I>(f, kMax<I>) || !agrees<I>(f, kMax<I> - 1) || !agrees<I>(f, 0)) return;
  }
}

TEMPLATE_TEST_CASE("fast_div: random numerators of every size", "[fast_div]", int64_t, int32_t) {
  using I = TestType;
  constexpr int kBits = 8 * sizeof(I) - 1;  // value bits of a non-negative I
  std::mt19937_64 rng(7);
  for (const I d : divisors<I>()) {
    const FastDivOf<I> f(d);
    for (int i = 0; i < 2000; ++i) {
      // A random bit length first, so small and large numerators are both common.
      const int bits = static_cast<int>(rng() % kBits) + 1;
      const I n = static_cast<I>(rng() >> (64 - bits));
      if (!agrees(f, n)) return;
    }
  }
}

TEST_CASE("fast_div: the default divides by one; a divisor out of range is an error; for_size",
          "[fast_div]") {
  const FastDiv one;
  CHECK(one.divisor() == 1);
  CHECK(one.div(12345) == 12345);
  CHECK(one.mod(12345) == 0);
  CHECK(FastDiv32().div(12345) == 12345);
  CHECK_THROWS_WITH(FastDiv(0), Catch::Matchers::Contains("divisor must be in [1, ") &&
                                    Catch::Matchers::Contains("got 0"));
  CHECK_THROWS_WITH(FastDiv(-4), Catch::Matchers::Contains("got -4"));
  // The 32-bit divider names itself and its range.
  CHECK_THROWS_WITH(FastDiv32(int64_t{1} << 31),
                    Catch::Matchers::Contains("FastDiv32: divisor must be in [1, 2147483647], "
                                              "got 2147483648"));
  CHECK(FastDiv32(2147483647).div(2147483647) == 1);
  // for_size: a tensor size, where 0 (an empty tensor, nothing launched) gets the divider 1.
  CHECK(FastDiv::for_size(0).divisor() == 1);
  CHECK(FastDiv32::for_size(0).divisor() == 1);
  CHECK(FastDiv::for_size(161 * 161).div(161 * 161 * 5 + 3) == 5);
  CHECK(FastDiv32::for_size(161 * 161).div(161 * 161 * 5 + 3) == 5);
}
