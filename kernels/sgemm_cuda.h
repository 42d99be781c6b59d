#pragma once
// The handwritten CUDA SGEMM, every version callable side by side (for tests and benchmarks),
// and cuBLAS for comparison. Only available in CUDA builds (CVG_WITH_CUDA).
//
// All entry points compute a batched row-major product  out[b] = a[b] @ b[b]  with
// a [B, M, K], b [B, K, N] and out [B, M, N] contiguous float32 CUDA tensors (out fully
// overwritten), on the default stream. The kernels live in kernels/sgemm_versions.cuh:
//
//   v1  naive: one thread per output element, operands read straight from global memory
//   v2  shared-memory tiling: 32x32 tiles of A and B staged in shared memory
//   v3  2-D register tiling: 128x128 block tile, each thread accumulates an 8x8 micro-tile
//   v4  v3 + float4 global loads, A tile stored transposed in shared memory and a split
//       micro-tile so that every shared-memory read is a bank-conflict-free float4;
//       64x64 block tiles when 128x128 tiles would leave SMs idle
//   v5  v4 + double-buffered shared memory (next tile's global loads overlap the math)
//
// Every version handles any M, N, K >= 0 (edges are bounds-checked; vector loads are used only
// when K and N are multiples of 4 and the pointers are 16-byte aligned).
//
// bmm_cuda (kernels/matmul.h) uses the default version for float32, or cuBLAS when the
// environment variable CVG_GEMM=cublas is set at run time; CVG_SGEMM_VERSION=<1..5> picks
// another handwritten version (both are read once, at the first float32 bmm_cuda call).
#include "core/tensor.h"

namespace cvg {

inline constexpr int kSgemmVersions = 5;     // versions 1 .. kSgemmVersions
inline constexpr int kSgemmDefaultVersion = 5;

// One-line description of a version ("v3 2-D register tiling"), for benchmark labels.
const char* sgemm_version_name(int version);

// Handwritten SGEMM `version` (1 .. kSgemmVersions).
void sgemm_cuda(int version, const Tensor& a, const Tensor& b, const Tensor& out);
// cuBLAS SGEMM (strided batched, FP32 math: no TF32), the baseline.
void sgemm_cublas(const Tensor& a, const Tensor& b, const Tensor& out);

}  // namespace cvg
