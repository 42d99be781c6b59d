#include "core/determinism.h"

#include <cstdlib>
#include <string>

namespace cvg {

namespace {
int g_mode = -1;  // -1: read CVG_DETERMINISTIC on first use
}

bool deterministic_algorithms() {
  if (g_mode < 0) {
    const char* v = std::getenv("CVG_DETERMINISTIC");
    g_mode = (v && *v && std::string(v) != "0") ? 1 : 0;
  }
  return g_mode == 1;
}

void set_deterministic_algorithms(bool on) { g_mode = on ? 1 : 0; }

}  // namespace cvg
