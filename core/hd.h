#pragma once
// CVG_HD marks per-element math that both the CPU loops and the CUDA kernels call: one
// definition, compiled by the host compiler for kernels/*_cpu.cpp and by nvcc for *_cuda.cu.
#if defined(__CUDACC__)
#define CVG_HD __host__ __device__ __forceinline__
#else
#define CVG_HD inline
#endif

// Unroll the next loop fully (a fixed-trip loop over a small register array, which must stay in
// registers on the GPU). GCC's spelling for the host compiler, so -Wunknown-pragmas stays quiet.
#if defined(__CUDA_ARCH__)  // nvcc's device pass
#define CVG_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)  // nvcc's host pass: its front end rejects GCC's pragma
#define CVG_UNROLL
#else
#define CVG_UNROLL _Pragma("GCC unroll 16")
#endif
