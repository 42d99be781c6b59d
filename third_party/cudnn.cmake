# cuDNN, optional: the baseline backend of the CUDA convolutions (kernels/conv_cudnn.cpp,
# selected at run time with CVG_CONV=cudnn). Included by kernels/CMakeLists.txt in every build, so
# the configure summary always says whether cuDNN is used.
#   CVG_CUDNN   AUTO (use it when found, the default), ON (required) or OFF
#   CUDNN_ROOT  (CMake or environment variable) a cuDNN install to search first; then the CUDA
#               toolkit's folders (where NVIDIA's packages and the pip wheels' copies land)
# Sets CVG_HAVE_CUDNN, CVG_CUDNN_INCLUDE (the folder of cudnn.h) and CVG_CUDNN_LIB.
# cuDNN 8 or later: the code uses the v7-style convolution API with FMA math types.
set(CVG_CUDNN "AUTO" CACHE STRING "Build the cuDNN convolution backend: AUTO (when found), ON or OFF")
set_property(CACHE CVG_CUDNN PROPERTY STRINGS AUTO ON OFF)

set(CVG_HAVE_CUDNN OFF)
set(CVG_CUDNN_NOTE " (CUDA backend off)")
if(NOT CVG_HAVE_CUDA AND CVG_CUDNN STREQUAL "ON")
  message(FATAL_ERROR "CVG_CUDNN=ON needs the CUDA backend (CVG_CUDA)")
elseif(CVG_HAVE_CUDA AND CVG_CUDNN STREQUAL "OFF")
  set(CVG_CUDNN_NOTE " (CVG_CUDNN=OFF)")
elseif(CVG_HAVE_CUDA)
  set(_cvg_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT}
      ${CUDAToolkit_TARGET_DIR})
  find_path(CVG_CUDNN_INCLUDE cudnn.h HINTS ${_cvg_cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS}
            PATH_SUFFIXES include)
  find_library(CVG_CUDNN_LIB cudnn HINTS ${_cvg_cudnn_hints} ${CUDAToolkit_LIBRARY_DIR}
               PATH_SUFFIXES lib64 lib lib/x64)
  set(_cvg_cudnn_major 0)
  if(CVG_CUDNN_INCLUDE AND EXISTS "${CVG_CUDNN_INCLUDE}/cudnn_version.h")
    file(STRINGS "${CVG_CUDNN_INCLUDE}/cudnn_version.h" _cvg_cudnn_defs
         REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) [0-9]+")
    foreach(part MAJOR MINOR PATCHLEVEL)
      string(REGEX REPLACE ".*#define CUDNN_${part} ([0-9]+).*" "\\1" _cvg_cudnn_${part}
             "${_cvg_cudnn_defs}")
    endforeach()
    set(_cvg_cudnn_major ${_cvg_cudnn_MAJOR})
    set(CVG_CUDNN_VERSION "${_cvg_cudnn_MAJOR}.${_cvg_cudnn_MINOR}.${_cvg_cudnn_PATCHLEVEL}")
  endif()
  if(CVG_CUDNN_INCLUDE AND CVG_CUDNN_LIB AND _cvg_cudnn_major GREATER_EQUAL 8)
    set(CVG_HAVE_CUDNN ON)
    set(CVG_CUDNN_NOTE " (${CVG_CUDNN_VERSION}, ${CVG_CUDNN_LIB})")
  elseif(CVG_CUDNN STREQUAL "ON")
    message(FATAL_ERROR "CVG_CUDNN=ON but no cuDNN 8+ was found (header: ${CVG_CUDNN_INCLUDE}, "
                        "library: ${CVG_CUDNN_LIB}); set CUDNN_ROOT to its install")
  else()
    set(CVG_CUDNN_NOTE " (not found; set CUDNN_ROOT to use one)")
  endif()
endif()
message(STATUS "cvgrad: cuDNN ${CVG_HAVE_CUDNN}${CVG_CUDNN_NOTE}")
