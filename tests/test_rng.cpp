// Random numbers (core/rng.h): Philox-4x32-10 against Random123's published known-answer
// vectors, the documented mapping from (seed, offset + i) to each distribution, generator state,
// and distribution sanity over 100k samples.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <algorithm>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

}  // namespace

TEST_CASE("rng: Philox-4x32-10 known answers (Random123 kat_vectors)", "[rng]") {
  // philox4x32 10  ctr 00000000 x4  key 00000000 x2  ->  6627e8d5 e169c58d bc57ac4c 9b00dbd8
  const Philox4 z = philox4x32_10(uint64_t{0}, uint64_t{0});
  CHECK(z.w[0] == 0x6627e8d5u);
  CHECK(z.w[1] == 0xe169c58du);
  CHECK(z.w[2] == 0xbc57ac4cu);
  CHECK(z.w[3] == 0x9b00dbd8u);

  // The full-counter form gives the same for zeros, and matches the other two vectors.
  const Philox4 z4 = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0u, 0u);
  for (int i = 0; i < 4; ++i) CHECK(z4.w[i] == z.w[i]);

  // ctr ffffffff x4, key ffffffff x2 -> 408f276d 41c83b0e a20bc7c6 6d5451fd
  const Philox4 f =
      philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu,
                    0xffffffffu);
  CHECK(f.w[0] == 0x408f276du);
  CHECK(f.w[1] == 0x41c83b0eu);
  CHECK(f.w[2] == 0xa20bc7c6u);
  CHECK(f.w[3] == 0x6d5451fdu);

  // ctr 243f6a88 85a308d3 13198a2e 03707344 (digits of pi), key a4093822 299f31d0
  //   -> d16cfe09 94fdcceb 5001e420 24126ea1
  const Philox4 p = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                  0xa4093822u, 0x299f31d0u);
  CHECK(p.w[0] == 0xd16cfe09u);
  CHECK(p.w[1] == 0x94fdccebu);
  CHECK(p.w[2] == 0x5001e420u);
  CHECK(p.w[3] == 0x24126ea1u);

  // The (seed, counter) form packs the 64-bit values low word first.
  const uint64_t seed = 0x299f31d0a4093822ull, ctr = 0x85a308d3243f6a88ull;
  const Philox4 a = philox4x32_10(seed, ctr);
  const Philox4 b = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0, 0}}, 0xa4093822u,
                                  0x299f31d0u);
  for (int i = 0; i < 4; ++i) CHECK(a.w[i] == b.w[i]);
}

TEST_CASE("rng: random tensors follow the documented mapping", "[rng]") {
  manual_seed(42);
  CHECK(global_generator().seed == 42);
  CHECK(global_generator().offset == 0);
  Tensor u = rand({5});
  CHECK(global_generator().offset == 5);
  const std::vector<float> uv = u.to_vector<float>();
  for (int i = 0; i < 5; ++i) CHECK(uv[i] == philox_uniform<float>(42, i));
  Tensor u64 = rand({2, 3}, TensorOptions{}.with_dtype(DType::float64));
  CHECK(global_generator().offset == 11);
  const std::vector<double> dv = u64.to_vector<double>();
  for (int i = 0; i < 6; ++i) CHECK(dv[i] == philox_uniform<double>(42, 5 + i));
  Tensor n = randn({4}, TensorOptions{}.with_dtype(DType::float64));
  for (int i = 0; i < 4; ++i) CHECK(n.to_vector<double>()[i] == philox_normal(42, 11 + i));
  Tensor k = randint(-3, 9, {7});
  CHECK(k.dtype() == DType::int64);
  for (int i = 0; i < 7; ++i) CHECK(k.to_vector<int64_t>()[i] == philox_randint(42, 15 + i, -3, 9));
  CHECK(global_generator().offset == 22);
  // Bit-level check of the uniform mapping against the raw Philox words.
  CHECK(philox_uniform<float>(7, 3) ==
        static_cast<float>(philox4x32_10(uint64_t{7}, uint64_t{3}).w[0] >> 8) / 16777216.0f);
}

TEST_CASE("rng: same seed, same numbers; manual_seed resets the offset", "[rng]") {
  manual_seed(123);
  const std::vector<float> a = rand({100}).to_vector<float>();
  const std::vector<float> a2 = rand({100}).to_vector<float>();
  CHECK(a != a2);  // the offset moved on
  manual_seed(123);
  CHECK(rand({100}).to_vector<float>() == a);
  CHECK(rand({100}).to_vector<float>() == a2);
  manual_seed(124);
  CHECK(rand({100}).to_vector<float>() != a);
  // Drawing 60 then 40 equals drawing 100 at once: element i depends only on (seed, offset + i).
  manual_seed(123);
  std::vector<float> split = rand({60}).to_vector<float>();
  const std::vector<float> rest = rand({40}).to_vector<float>();
  split.insert(split.end(), rest.begin(), rest.end());
  CHECK(split == a);
  // Empty draws do not advance the offset.
  const uint64_t off = global_generator().offset;
  rand({0, 5});
  CHECK(global_generator().offset == off);
}

TEST_CASE("rng: distributions over 100k samples", "[rng]") {
  manual_seed(2024);
  const int64_t n = 100000;
  const std::vector<double> u = rand({n}, TensorOptions{}.with_dtype(DType::float64)).to_vector<double>();
  double mean = 0, lo = 1, hi = 0;
  for (double v : u) {
    mean += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  mean /= n;
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(std::fabs(mean - 0.5) < 0.005);  // sd of the mean is 0.29 / sqrt(1e5) = 0.0009
  const std::vector<float> uf = rand({n}).to_vector<float>();
  for (float v : uf) REQUIRE((v >= 0.0f && v < 1.0f));

  const std::vector<double> g = randn({n}, TensorOptions{}.with_dtype(DType::float64)).to_vector<double>();
  double m = 0, m2 = 0;
  for (double v : g) m += v;
  m /= n;
  for (double v : g) m2 += (v - m) * (v - m);
  const double sd = std::sqrt(m2 / (n - 1));
  CHECK(std::fabs(m) < 0.015);         // sd of the mean is 0.0032
  CHECK(std::fabs(sd - 1.0) < 0.015);  // sd of the sd is about 0.0022
  int beyond3 = 0;
  for (double v : g) beyond3 += std::fabs(v) > 3.0;
  CHECK(beyond3 > 200);  // expected 270 for a normal
  CHECK(beyond3 < 340);

  const std::vector<int64_t> k = randint(-2, 3, {n}).to_vector<int64_t>();
  std::vector<int> counts(5, 0);
  for (int64_t v : k) {
    REQUIRE(v >= -2);
    REQUIRE(v < 3);
    ++counts[v + 2];
  }
  for (int c : counts) CHECK(std::abs(c - 20000) < 800);  // sd 126
}

TEST_CASE("rng: randint argument checks", "[rng]") {
  CHECK_THAT(error_of([] { randint(5, 5, {2}); }), Contains("randint: high (5) must be greater than low (5)"));
  CHECK_THAT(error_of([] { randint(0, 2, {2}, TensorOptions{}.with_dtype(DType::bool_)); }),
             Contains("randint: bool"));
  // Values that the dtype cannot hold would wrap silently.
  const std::string msg =
      error_of([] { randint(0, 300, {2}, TensorOptions{}.with_dtype(DType::uint8)); });
  CHECK_THAT(msg, Contains("randint"));
  CHECK_THAT(msg, Contains("uint8"));
  CHECK_THAT(msg, Contains("[0, 300)"));
  CHECK(randint(0, 256, {50}, TensorOptions{}.with_dtype(DType::uint8)).numel() == 50);
  const std::vector<int32_t> k =
      randint(-5, 5, {50}, TensorOptions{}.with_dtype(DType::int32)).to_vector<int32_t>();
  for (int32_t v : k) CHECK((v >= -5 && v < 5));
  // The full int64 range has no overflow in high - low.
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  const std::vector<int64_t> w = randint(lo, hi, {20}).to_vector<int64_t>();
  bool neg = false, pos = false;
  for (int64_t v : w) {
    CHECK(v < hi);
    neg = neg || v < 0;
    pos = pos || v > 0;
  }
  CHECK(neg);
  CHECK(pos);
  CHECK_THAT(error_of([] { rand({2}, TensorOptions{}.with_dtype(DType::int32)); }),
             Contains("rand: expected a floating-point tensor"));
}
