#pragma once
// Exports the autograd graph behind some tensors, for people who want to see what the engine
// will run. Nodes are listed in creation order; an edge goes from a node to each node that
// produced one of its inputs (the direction gradients flow). Leaves appear as AccumulateGrad
// nodes carrying the leaf's name when it has one.
//
// DOT:  digraph cvgrad { n3 [label="mul\n(2, 3) float32 cpu"]; n3 -> n1; ... }
// JSON: {"nodes":[{"id":3,"op":"mul","shape":[2,3],"dtype":"float32","device":"cpu",
//                   "inputs":[1,2],"released":false}, ...], "outputs":[3]}
#include <string>

#include "core/tensor.h"

namespace cvg {

std::string graph_to_dot(const TensorList& outputs);
std::string graph_to_json(const TensorList& outputs);

}  // namespace cvg
