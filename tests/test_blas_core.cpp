// kernels/blas_core.h: the name of the OpenBLAS kernel set, as the CPU benchmarks record it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "kernels/blas_core.h"

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
}  // namespace

// OpenBLAS runs the set OPENBLAS_CORETYPE names when it has one by that name (Debian 12's
// 0.3.21 has these five); without OpenBLAS the name is empty.
TEST_CASE("blas_core_name: the kernel set OPENBLAS_CORETYPE asks for", "[blas]") {
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  const std::string name = cvg::blas_core_name();
#ifdef CVG_TESTS_WITH_BLAS
  CHECK_FALSE(name.empty());
#else
  CHECK(name.empty());
#endif
  const std::string asked = env ? lower(env) : "";
  const bool known = asked == "haswell" || asked == "skylakex" || asked == "sandybridge" ||
                     asked == "zen" || asked == "cooperlake";
  if (!known || name.empty()) {
    WARN("OPENBLAS_CORETYPE=" << (env ? env : "(unset)") << ", OpenBLAS runs '" << name
                              << "': nothing to compare");
    return;
  }
  CHECK(lower(name) == asked);
}
