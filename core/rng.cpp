#include "core/rng.h"

namespace cvg {

Generator& global_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) {
  global_generator().seed = seed;
  global_generator().offset = 0;
}

}  // namespace cvg
