// FastDiv (core/fast_div.h) against the division operator: every small quotient exhaustively,
// the edges of each divisor's range (multiples and their neighbours), and random numerators up
// to INT64_MAX for divisors of every magnitude, powers of two and their neighbours included.
// (The GPU path, __umul64hi instead of the 128-bit product, runs in every deepmatch [cuda]
// parity sample and in the broadcast binary ops.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/fast_div.h"

using namespace cvg;

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Reports the first wrong (n, d) and stops, so a broken divider prints one line, not millions.
bool agrees(const FastDiv& f, int64_t n) {
  const int64_t d = f.divisor();
  if (f.div(n) == n / d && f.mod(n) == n % d) return true;
  FAIL_CHECK("FastDiv(" << d << ") at n = " << n << ": div " << f.div(n) << " (want " << n / d
                        << "), mod " << f.mod(n) << " (want " << n % d << ")");
  return false;
}

std::vector<int64_t> divisors() {
  std::vector<int64_t> ds;
  for (int64_t d = 1; d <= 300; ++d) ds.push_back(d);
  for (int s = 9; s <= 62; ++s) {
    const int64_t p = int64_t{1} << s;
    ds.insert(ds.end(), {p - 1, p, p + 1, 3 * (p / 4), p + p / 3});
  }
  ds.insert(ds.end(), {161 * 161, 81 * 81, 1000003, 4294967295, 4294967296, 4294967297,
                       kMax / 3, kMax - 1, kMax});
  return ds;
}

}  // namespace

TEST_CASE("fast_div: every numerator below 4096 for divisors 1..300", "[fast_div]") {
  for (int64_t d = 1; d <= 300; ++d) {
    const FastDiv f(d);
    for (int64_t n = 0; n < 4096; ++n)
      if (!agrees(f, n)) return;
  }
}

TEST_CASE("fast_div: multiples of the divisor and their neighbours, up to INT64_MAX",
          "[fast_div]") {
  for (const int64_t d : divisors()) {
    const FastDiv f(d);
    for (const int64_t q : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1} << 20,
                            int64_t{1} << 31, int64_t{1} << 40, kMax / d, kMax / d - 1}) {
      if (q < 1 || q > kMax / d) continue;
      const int64_t m = q * d;
      for (const int64_t n : {m - 1, m, m < kMax ? m + 1 : m})
        if (!agrees(f, n)) return;
    }
    if (!agrees(f, kMax) || !agrees(f, kMax - 1) || !agrees(f, 0)) return;
  }
}

TEST_CASE("fast_div: random numerators of every size", "[fast_div]") {
  std::mt19937_64 rng(7);
  for (const int64_t d : divisors()) {
    const FastDiv f(d);
    for (int i = 0; i < 2000; ++i) {
      // A random bit length first, so small and large numerators are both common.
      const int bits = static_cast<int>(rng() % 63) + 1;
      const int64_t n = static_cast<int64_t>(rng() >> (64 - bits));
      if (!agrees(f, n)) return;
    }
  }
}

TEST_CASE("fast_div: the default divides by one; a divisor below one is an error; for_size",
          "[fast_div]") {
  const FastDiv one;
  CHECK(one.divisor() == 1);
  CHECK(one.div(12345) == 12345);
  CHECK(one.mod(12345) == 0);
  CHECK_THROWS_WITH(FastDiv(0), Catch::Matchers::Contains("divisor must be >= 1, got 0"));
  CHECK_THROWS_WITH(FastDiv(-4), Catch::Matchers::Contains("got -4"));
  // for_size: a tensor size, where 0 (an empty tensor, nothing launched) gets the divider 1.
  CHECK(FastDiv::for_size(0).divisor() == 1);
  CHECK(FastDiv::for_size(161 * 161).div(161 * 161 * 5 + 3) == 5);
}
