// Which OpenBLAS kernel set runs (kernels/blas_core.h).
#include "kernels/blas_core.h"

#ifdef CVG_WITH_BLAS
#include <cblas.h>
#endif

namespace cvg {

std::string blas_core_name() {
#ifdef CVG_WITH_BLAS
  const char* name = openblas_get_corename();
  return name ? name : "";
#else
  return "";
#endif
}

}  // namespace cvg
