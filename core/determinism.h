#pragma once
// The global deterministic mode. Kernels that accumulate with atomics (scatter_add, index_add,
// grid_sample's input gradient, ...) produce results whose float rounding depends on thread
// scheduling. With deterministic mode on, every such op takes a path with a fixed summation
// order instead (slower), so that two runs give bitwise-identical results. CPU paths are always
// deterministic. Set from code, or with the environment variable CVG_DETERMINISTIC=1.
namespace cvg {

bool deterministic_algorithms();
void set_deterministic_algorithms(bool on);

}  // namespace cvg
