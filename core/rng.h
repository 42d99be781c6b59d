#pragma once
// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11). A stream is defined by (seed, offset): element i of a random tensor is a
// pure function of (seed, offset + i), so the CPU loop and a CUDA kernel that evaluate it in any
// order, on any number of threads, draw the same numbers. After each random op the global
// generator's offset advances by the number of elements drawn.
//
// Mapping (one Philox call per element; simple and order-free, at 4x the minimum cost):
//   words = philox(key = seed, counter = (offset + i) as 64 bits, 0, 0)
//   uniform float32 : (w0 >> 8) * 2^-24                              in [0, 1)
//   uniform float64 : ((w0 >> 5) * 2^26 + (w1 >> 6)) * 2^-53          in [0, 1)
//   normal          : Box-Muller on u = ((w0 >> 8) + 1) * 2^-24 in (0, 1], v = (w1 >> 8) * 2^-24,
//                     sqrt(-2 ln u) cos(2 pi v), evaluated in double
//   integer [lo,hi) : lo + ((w0 << 32 | w1) mod (hi - lo))
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace cvg {

struct Philox4 {
  uint32_t w[4];
};

CVG_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox-4x32-10 as published (Random123's philox4x32 with R = 10): a 128-bit counter and a
// 64-bit key (key0 low word). Each round multiplies two counter words by fixed constants and
// mixes the high and low halves of the products with the other words and the key; the key is
// bumped by two Weyl constants between rounds.
CVG_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t key0, uint32_t key1) {
  uint32_t c0 = ctr.w[0], c1 = ctr.w[1], c2 = ctr.w[2], c3 = ctr.w[3];
  uint32_t k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;  // golden ratio Weyl sequence
    k1 += 0xBB67AE85u;  // sqrt(3) - 1
  }
  return Philox4{{c0, c1, c2, c3}};
}

// The form the library uses: counter = (counter lo, counter hi, 0, 0), key = (seed lo, seed hi).
CVG_HD Philox4 philox4x32_10(uint64_t seed, uint64_t counter) {
  return philox4x32_10(
      Philox4{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}},
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

template <typename T> CVG_HD T philox_uniform(uint64_t seed, uint64_t index);
template <> CVG_HD float philox_uniform<float>(uint64_t seed, uint64_t index) {
  const Philox4 r = philox4x32_10(seed, index);
  return static_cast<float>(r.w[0] >> 8) * (1.0f / 16777216.0f);
}
template <> CVG_HD double philox_uniform<double>(uint64_t seed, uint64_t index) {
  const Philox4 r = philox4x32_10(seed, index);
  return (static_cast<double>(r.w[0] >> 5) * 67108864.0 + static_cast<double>(r.w[1] >> 6)) *
         (1.0 / 9007199254740992.0);
}
CVG_HD double philox_normal(uint64_t seed, uint64_t index) {
  // Named through std:: so that cvg's tensor overloads of sqrt/log/cos (kernels/unary.h) can
  // never be picked up, whatever the include order.
  using std::cos; using std::log; using std::sqrt;
  const Philox4 r = philox4x32_10(seed, index);
  const double u = (static_cast<double>(r.w[0] >> 8) + 1.0) * (1.0 / 16777216.0);
  const double v = static_cast<double>(r.w[1] >> 8) * (1.0 / 16777216.0);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
CVG_HD int64_t philox_randint(uint64_t seed, uint64_t index, int64_t low, int64_t high) {
  const Philox4 r = philox4x32_10(seed, index);
  const uint64_t bits = (static_cast<uint64_t>(r.w[0]) << 32) | r.w[1];
  // high - low computed in uint64 so the full int64 range does not overflow.
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  return static_cast<int64_t>(static_cast<uint64_t>(low) + bits % range);
}

// The global generator: a seed and the next unused offset.
struct Generator {
  uint64_t seed = 0x5eed;
  uint64_t offset = 0;
  // Reserves n consecutive indices and returns the first.
  uint64_t take(uint64_t n) {
    const uint64_t first = offset;
    offset += n;
    return first;
  }
};

Generator& global_generator();
void manual_seed(uint64_t seed);  // sets the seed and resets the offset to 0

}  // namespace cvg
