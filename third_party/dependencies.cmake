# CMake glue for the system packages cvgrad uses (installed by scripts/setup). No source is
# vendored: each dependency is found on the system and wrapped in an imported target.

# OpenBLAS (CBLAS interface) for CPU matmul. Without it kernels/ uses its own blocked loop.
set(CVG_HAVE_BLAS OFF)
if(CVG_BLAS)
  find_path(CVG_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread)
  find_library(CVG_OPENBLAS_LIB NAMES openblas)
  if(CVG_CBLAS_INCLUDE AND CVG_OPENBLAS_LIB)
    add_library(cvg_blas INTERFACE)
    target_include_directories(cvg_blas SYSTEM INTERFACE ${CVG_CBLAS_INCLUDE})
    target_link_libraries(cvg_blas INTERFACE ${CVG_OPENBLAS_LIB})
    target_compile_definitions(cvg_blas INTERFACE CVG_WITH_BLAS=1)
    set(CVG_HAVE_BLAS ON)
  endif()
endif()
message(STATUS "cvgrad: OpenBLAS ${CVG_HAVE_BLAS}")

# stb (header-only, Debian libstb-dev puts the headers in /usr/include/stb and ships libstb.so).
find_path(CVG_STB_INCLUDE stb_image.h PATH_SUFFIXES stb)
find_package(nlohmann_json 3 QUIET)
find_package(ZLIB QUIET)
find_package(benchmark QUIET)
find_package(Catch2 2 QUIET)
if(NOT Catch2_FOUND)
  find_package(Catch2 3 QUIET)
endif()
