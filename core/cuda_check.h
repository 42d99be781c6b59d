#pragma once
// Checked CUDA calls for any file of the CUDA backend (.cu or .cpp compiled with the toolkit's
// headers on the include path).
//
//   CVG_CUDA_CHECK(cudaMemcpy(...), "to");      // throws cvg::Error naming the op, the call,
//                                                // the CUDA error, the file and the line
//   kernel<<<grid, block>>>(...);
//   CVG_CUDA_CHECK_LAUNCH("softmax");            // launch errors (bad configuration, ...)
//
// Kernels run asynchronously, so an error inside a kernel (an illegal address) surfaces at the
// next synchronising call, which may belong to another op. Set CVG_CUDA_SYNC=1 to make
// CVG_CUDA_CHECK_LAUNCH wait for each kernel, so the error is reported by the op that caused it
// (slow; for debugging, like CUDA_LAUNCH_BLOCKING=1).
#include <cuda_runtime_api.h>

#include <cstdlib>

#include "core/error.h"

namespace cvg {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* op, const char* call,
                                   const char* file, int line) {
  // A failed runtime call also becomes the thread's "last error"; left there, it would be
  // reported again by the next CVG_CUDA_CHECK_LAUNCH, as if an unrelated kernel had failed.
  // (A sticky error, one that corrupts the context, cannot be cleared and stays.)
  (void)cudaGetLastError();
  fail(op, ": ", call, " failed: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ",
       file, ":", line);
}

inline bool cuda_sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("CVG_CUDA_SYNC");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
  }();
  return on;
}

inline void cuda_check_launch(const char* op, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) cuda_fail(e, op, "kernel launch", file, line);
  if (cuda_sync_after_launch()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess) cuda_fail(e, op, "kernel execution (CVG_CUDA_SYNC=1)", file, line);
  }
}

}  // namespace cvg

#define CVG_CUDA_CHECK(expr, op)                                            \
  do {                                                                      \
    const cudaError_t cvg_cuda_err_ = (expr);                               \
    if (cvg_cuda_err_ != cudaSuccess)                                       \
      ::cvg::cuda_fail(cvg_cuda_err_, (op), #expr, __FILE__, __LINE__);     \
  } while (0)

#define CVG_CUDA_CHECK_LAUNCH(op) ::cvg::cuda_check_launch((op), __FILE__, __LINE__)
