#pragma once
// Reverse-mode automatic differentiation on a graph built while the forward pass runs.
//
// Every differentiable op produces exactly one differentiable output tensor (further outputs,
// such as max's indices, are not differentiable). When grad mode is on and one of
// its inputs requires grad, the op calls record(), which attaches a Node to the output:
//   - node.next[i] is the node that produced input i (or that input's AccumulateGrad node when
//     it is a leaf), or null when input i does not need a gradient;
//   - node.backward maps the gradient of the output to the gradients of the inputs.
// backward() runs the nodes reachable from the output, each after every node that sends it
// gradient, summing the gradients that reach a node, so a tensor used twice receives the sum of
// both paths.
//
// Backward functions are written with the library's own differentiable ops. When the engine runs
// with create_graph=true, grad mode stays on while they run, so the gradient is itself a graph
// and can be differentiated again (second derivatives, gradient penalties).
//
// Saved tensors are captured in SavedTensor, which remembers the storage version at save time:
// an in-place change to a saved tensor turns into an Error at backward time instead of a wrong
// gradient. After a node has run, its backward function (with everything it saved) is released
// unless retain_graph is set; running it again is an Error.
//
// Ownership: TensorImpl::grad_fn, Node::next and TensorImpl::grad_accumulator are strong
// references; Node::leaf (accumulator -> leaf) is weak, and a saved output is kept without its
// grad_fn, since either would make an object own itself. One cycle remains, as in PyTorch:
// backward(create_graph=true) stores a .grad whose graph reaches nodes that saved the leaf;
// zero_grad() breaks it (grad() with create_graph stores nothing and makes none).
//
// Not thread-safe: grad mode is per thread, but a graph (or graphs sharing a leaf) must be used
// by one thread at a time.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg {

class Node : public std::enable_shared_from_this<Node> {
 public:
  using BackwardFn = std::function<TensorList(const Tensor& grad_output, const Node& self)>;

  std::string name;                         // op name, e.g. "mul"
  std::vector<std::shared_ptr<Node>> next;  // one entry per input, null = no gradient needed
  BackwardFn backward;                      // empty once released
  // Geometry of the output: every gradient sent into this node is checked against it (also
  // used by exports and the trace).
  Shape shape;
  DType dtype = DType::float32;
  Device device;
  uint64_t seq = 0;                         // creation order (ids and order of graph exports)
  std::weak_ptr<TensorImpl> leaf;           // set on AccumulateGrad nodes only

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees the nodes it holds the last reference to with a loop, not by recursion: a graph of a
  // million ops (a long unroll) would otherwise need a million nested destructor frames.
  ~Node();

  bool is_accumulator() const { return !leaf.expired() || name == "AccumulateGrad"; }
  bool needs_grad(size_t input) const { return input < next.size() && next[input] != nullptr; }
  bool released() const { return !backward; }
};

// Grad mode: on by default, per thread. NoGradGuard turns recording off in a scope.
struct GradMode {
  static bool enabled();
  static void set_enabled(bool on);
};
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : prev_(GradMode::enabled()) { GradMode::set_enabled(on); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;
 private:
  bool prev_;
};

// A tensor kept for backward. Pass is_output=true when saving the op's own output (exp, tanh,
// softmax do): it is then held without its grad_fn (a graph cycle otherwise) and re-attached to
// the running node when unpacked.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t, bool is_output = false);
  // The saved tensor; throws when it was modified in place since it was saved.
  Tensor unpack(const Node& self) const;
  bool defined() const { return data_.defined(); }

 private:
  Tensor data_;
  bool is_output_ = false;
  uint64_t version_ = 0;
};

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(const TensorList& inputs);

// Attaches a node named `op` to `out` (a freshly made tensor), with one edge per input, and
// returns `out`. Does nothing when no input requires grad or grad mode is off.
Tensor record(const char* op, Tensor out, const TensorList& inputs, Node::BackwardFn backward);

// The node a gradient for `t` flows into: its grad_fn, or its AccumulateGrad node for a leaf
// that requires grad (created on first use), or null.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Runs the backward pass from `outputs`. grad_outputs may be empty (every output must then be a
// single-element tensor, seeded with 1) or give one gradient per output (an undefined entry:
// that output is seeded with 1). create_graph implies retain_graph.
void backward(const TensorList& outputs, const TensorList& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

// How grad() runs; name the fields you set: grad(outs, ins, {}, {.create_graph = true}).
struct GradOptions {
  // Record the backward pass, so the results can be differentiated again.
  bool create_graph = false;
  // Keep the graph's saved tensors for another backward or grad() over it. Unset: create_graph.
  std::optional<bool> retain_graph = std::nullopt;
  // An input that receives no gradient gives an undefined tensor instead of an Error.
  bool allow_unused = false;
};

// Returns d(sum_i <outputs_i, grad_outputs_i>)/d(inputs_j) for every input, without touching
// any .grad field. The results are dense tensors that share memory with nothing (as a .grad),
// recorded when create_graph. An input that is a non-leaf gets the gradient arriving at it;
// its own node does not run. An input that receives no gradient is an Error unless
// allow_unused.
TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs = {},
                const GradOptions& options = {});

}  // namespace cvg
