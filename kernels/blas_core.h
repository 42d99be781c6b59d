#pragma once
// Which of OpenBLAS's kernel sets runs the CPU's SGEMMs (matmul, conv2d).
//
// Debian's OpenBLAS carries kernels for every x86-64 core and picks one set when it is loaded:
// the one for the CPU, unless the environment variable OPENBLAS_CORETYPE names another. On this
// project's 2-core AMD machine it picks "Cooperlake" (AVX-512), but the machine's environment
// sets OPENBLAS_CORETYPE=Haswell (AVX2), and with that the SGEMM-bound benchmarks run 1.6-1.7x
// slower (bench/results/cpu/README.md). cvgrad leaves the variable alone; the CPU benchmarks
// record the set in their JSON context ("blas_core") so that tables say what they measured.
#include <string>

namespace cvg {

// The name OpenBLAS gives its kernel set ("Haswell", "Cooperlake", ...; "" without OpenBLAS).
std::string blas_core_name();

}  // namespace cvg
