#pragma once
// Matrix products, with torch.matmul semantics.
//
//   matmul(a, b) : 1-D x 1-D -> 0-d dot product; 2-D x 2-D -> matrix product; a 1-D `a` is
//                  treated as a row [1, K] and a 1-D `b` as a column [K, 1], the added dim being
//                  removed from the result; with more dims, everything but the last two dims is
//                  a batch, and batch dims broadcast (NumPy rules): [2, 1, M, K] x [3, K, N] ->
//                  [2, 3, M, N].
//   mm(a, b)     : a [M, K], b [K, N] only (no broadcasting).
//   bmm(a, b)    : a [B, M, K], b [B, K, N] only (same B, no broadcasting).
//   linear(x, weight, bias) : x [..., in], weight [out, in] (PyTorch's layout), bias [out] or an
//                  undefined Tensor; returns x W^T + bias with shape [..., out].
//
// Operands must share a floating dtype (float32 or float64) and a device; integer matmul is
// refused rather than silently promoted. Gradients are themselves matmuls (dA = dC B^T,
// dB = A^T dC, summed over broadcast batch dims), so second derivatives work.
//
// CPU: OpenBLAS (cblas_sgemm / cblas_dgemm) when the build has it (CVG_WITH_BLAS); a transposed
// view is handed to BLAS as a transpose flag with the view's leading dimension instead of being
// copied. Without BLAS, gemm_fallback_cpu: a cache-blocked loop that packs panels of B.
// CUDA: bmm_cuda (kernels/matmul_cuda.cu), a handwritten SGEMM/DGEMM on contiguous operands.
#include "core/tensor.h"

namespace cvg {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor mm(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Raw kernel entry points (no autograd, no shape checks beyond what they need).
// a [B, M, K] and b [B, K, N] are arbitrary strided views (batch stride 0 = broadcast);
// out is a contiguous [B, M, N] of the same floating dtype, fully overwritten.
void bmm_cpu(const Tensor& a, const Tensor& b, const Tensor& out);
// The portable blocked loop bmm_cpu uses when the build has no BLAS; callable directly so that
// tests compare it with the BLAS path.
void gemm_fallback_cpu(const Tensor& a, const Tensor& b, const Tensor& out);
#ifdef CVG_WITH_CUDA
void bmm_cuda(const Tensor& a, const Tensor& b, const Tensor& out);  // a [B,M,K], b [B,K,N] contiguous, out [B,M,N]; float32 or float64
#endif

}  // namespace cvg
