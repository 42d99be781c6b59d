#pragma once
// CVG_HD marks per-element math that both the CPU loops and the CUDA kernels call: one
// definition, compiled by the host compiler for kernels/*_cpu.cpp and by nvcc for *_cuda.cu.
#if defined(__CUDACC__)
#define CVG_HD __host__ __device__ __forceinline__
#else
#define CVG_HD inline
#endif
