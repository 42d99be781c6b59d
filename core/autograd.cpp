// The autograd engine. See core/autograd.h for the model; docs/autodiff.md walks through it.
#include "core/autograd.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "core/accumulate.h"
#include "core/trace.h"

namespace cvg {

namespace {
thread_local bool t_grad_mode = true;
std::atomic<uint64_t> g_next_seq{1};
}  // namespace

bool GradMode::enabled() { return t_grad_mode; }
void GradMode::set_enabled(bool on) { t_grad_mode = on; }

// ---- nodes ----

// Whoever drops a node's last reference takes it apart, here, in a loop: its children go on a
// work list instead of being destroyed inside its destructor. A child still referenced elsewhere
// (by the other slot of y + y, by the other branch of a residual h + f(h), by a tensor) only
// loses one reference; the last holder to pop it frees its children in turn. So no destructor
// runs inside another, however long the chain.
Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  auto take_children = [&pending](Node& n) {
    // The backward function goes first: its saved tensors can hold references to the children
    // (a saved input's grad_fn), which would keep them alive past the pop below.
    n.backward = nullptr;
    for (auto& c : n.next)
      if (c) pending.push_back(std::move(c));
  };
  take_children(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    if (n.use_count() == 1) take_children(*n);  // the last reference: empty it before it dies
  }  // n is released here: destroyed childless, or merely one reference fewer
}

// ---- saved tensors ----

SavedTensor::SavedTensor(const Tensor& t, bool is_output) {
  if (!t.defined()) return;
  is_output_ = is_output;
  version_ = t.version();
  // An output is kept without its grad_fn: the node holds its saved tensors, so keeping the
  // output's grad_fn would make the node own itself.
  data_ = is_output ? t.detach() : t;
}

Tensor SavedTensor::unpack(const Node& self) const {
  if (!data_.defined()) return data_;
  CVG_CHECK(data_.version() == version_, self.name,
            " backward: a tensor saved for backward (shape ", data_.shape(),
            ") was modified in place after it was saved (version ", data_.version(),
            ", saved at version ", version_, "); clone it before the in-place op");
  if (!is_output_ || !GradMode::enabled()) return data_;
  // Re-attach the output to the node that produced it, so create_graph differentiates through.
  Tensor alias = data_.detach();
  alias.impl()->grad_fn = std::const_pointer_cast<Node>(self.shared_from_this());
  alias.impl()->requires_grad = true;
  return alias;
}

// ---- recording ----

bool any_requires_grad(const TensorList& inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  TensorImpl* impl = t.impl();
  if (!impl->grad_accumulator) {
    auto acc = std::make_shared<Node>();
    acc->name = "AccumulateGrad";
    acc->leaf = t.impl_ptr();
    acc->shape = t.shape();
    acc->dtype = t.dtype();
    acc->device = t.device();
    acc->seq = g_next_seq++;
    impl->grad_accumulator = acc;
  }
  return impl->grad_accumulator;
}

Tensor record(const char* op, Tensor out, const TensorList& inputs, Node::BackwardFn backward) {
  if (!any_requires_grad(inputs) || !is_floating(out.dtype())) return out;
  CVG_CHECK(out.grad_fn() == nullptr, "record: output of '", op, "' already has a grad_fn");
  auto node = std::make_shared<Node>();
  node->name = op;
  node->backward = std::move(backward);
  node->shape = out.shape();
  node->dtype = out.dtype();
  node->device = out.device();
  node->seq = g_next_seq++;
  node->next.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next.push_back(gradient_edge(t));
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

// ---- the engine ----

namespace {

// Nodes reachable from the roots, each after every node that feeds gradient into it (reverse
// DFS post-order). Iterative, so deep graphs (long training unrolls) cannot overflow the stack.
std::vector<Node*> topological_order(const std::vector<Node*>& roots) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;
  for (Node* r : roots) {
    if (!r || !seen.insert(r).second) continue;
    stack.emplace_back(r, 0);
    while (!stack.empty()) {
      auto& [node, child] = stack.back();
      if (child < node->next.size()) {
        Node* c = node->next[child++].get();
        if (c && seen.insert(c).second) stack.emplace_back(c, 0);
      } else {
        post.push_back(node);
        stack.pop_back();
      }
    }
  }
  return {post.rbegin(), post.rend()};
}

struct RunOptions {
  bool retain_graph = false;
  bool create_graph = false;
  const std::vector<Node*>* capture = nullptr;  // grad(): nodes whose incoming grads we return
};

// The first gradient stored in a leaf's .grad. Backward functions may return views (sum's
// backward expands a 0-d tensor with stride 0) or one tensor for several inputs (add's backward
// returns {g, g}), and the seed may be the caller's own tensor. A .grad is updated in place by
// optimizers and read through data<T>() as dense memory, so it must be a contiguous tensor that
// nothing else references: g is adopted when it already is one, and copied otherwise.
Tensor owned_gradient(Tensor g, const RunOptions& opt) {
  const bool exclusive = g.is_contiguous() && g.impl_ptr().use_count() == 1 &&
                         g.storage().use_count() == 1;
  if (!exclusive) g = g.clone();  // recorded when create_graph, so it stays differentiable
  return opt.create_graph ? g : g.detach();
}

std::unordered_map<Node*, Tensor> run_backward(const TensorList& outputs,
                                               const TensorList& grad_outputs,
                                               const RunOptions& opt, const char* api) {
  CVG_CHECK(!outputs.empty(), api, ": no outputs given");
  CVG_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), api, ": got ",
            grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
  GradModeGuard mode(opt.create_graph);

  std::vector<Node*> roots;
  std::unordered_map<Node*, Tensor> grads;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    CVG_CHECK(out.defined() && out.requires_grad(), api, ": output ", i,
              " does not require grad and has no grad_fn");
    Tensor g;
    if (grad_outputs.empty() || !grad_outputs[i].defined()) {
      CVG_CHECK(out.numel() == 1, api, ": a gradient can be created implicitly only for "
                "single-element outputs, output ", i, " has shape ", out.shape(),
                "; pass grad_outputs");
      g = ones_like(out);
    } else {
      g = grad_outputs[i];
      CVG_CHECK(g.shape() == out.shape(), api, ": grad_outputs[", i, "] has shape ", g.shape(),
                " but output ", i, " has shape ", out.shape());
      CVG_CHECK(g.dtype() == out.dtype(), api, ": grad_outputs[", i, "] has dtype ",
                dtype_name(g.dtype()), " but output ", i, " has dtype ", dtype_name(out.dtype()));
      CVG_CHECK(g.device() == out.device(), api, ": grad_outputs[", i, "] is on ",
                g.device().str(), " but output ", i, " is on ", out.device().str());
    }
    Node* root = gradient_edge(out).get();
    roots.push_back(root);
    auto it = grads.find(root);
    grads[root] = it == grads.end() ? g : accumulate_grad(it->second, g);
  }

  const std::vector<Node*> order = topological_order(roots);

  // With capture (grad()), a node runs only when its backward sends gradient towards a
  // captured node: some child is captured or runs itself. A captured node receives its
  // gradient, which is the answer; running its own backward is not needed for that (and would
  // release it: grad(y, h) must leave h's node usable).
  std::unordered_set<Node*> capture_set, needed;
  if (opt.capture) {
    capture_set.insert(opt.capture->begin(), opt.capture->end());
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      bool need = false;
      for (auto& c : n->next) need = need || (c && (capture_set.count(c.get()) || needed.count(c.get())));
      if (need) needed.insert(n);
    }
  }

  std::unordered_map<Node*, Tensor> captured;
  for (Node* node : order) {
    auto it = grads.find(node);
    if (it == grads.end()) continue;
    Tensor g = std::move(it->second);
    grads.erase(it);

    if (opt.capture) {
      if (capture_set.count(node)) captured[node] = g;
      // Accumulators never run under grad(): it leaves every .grad as it was.
      if (!needed.count(node) || node->is_accumulator()) continue;
    } else if (node->is_accumulator()) {
      auto leaf = node->leaf.lock();
      if (!leaf) continue;  // the leaf itself is gone; nobody can read its grad
      Tensor lt(leaf);
      Tensor old = lt.grad();
      lt.set_grad(old.defined() ? accumulate_grad(old, g) : owned_gradient(std::move(g), opt));
      continue;
    }

    CVG_CHECK(!node->released(), "backward: trying to run the backward of '", node->name,
              "' a second time, but its saved tensors were freed after the first backward; "
              "pass retain_graph=true to the first backward (or grad) call");
    const bool traced = trace_enabled(), cuda = g.defined() && g.device().is_cuda();
    TraceSpan span;
    if (traced) span.start(cuda);
    TensorList in_grads = node->backward(g, *node);
    if (traced) {
      double ms = 0, self = 0;
      span.stop(cuda, &ms, &self);
      trace_line(str_cat("[cvg bwd] ", node->name, "  grad ", describe(g), " -> ",
                         node->next.size(), " inputs  ", ms, " ms (self ", self, " ms)"));
    }
    CVG_CHECK(in_grads.size() == node->next.size(), node->name, " backward: returned ",
              in_grads.size(), " gradients for ", node->next.size(), " inputs");
    if (!opt.retain_graph) node->backward = nullptr;

    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* child = node->next[i].get();
      if (!child || !in_grads[i].defined()) continue;
      CVG_CHECK(in_grads[i].shape() == child->shape, node->name, " backward: gradient for input ",
                i, " has shape ", in_grads[i].shape(), ", expected ", child->shape);
      CVG_CHECK(in_grads[i].device() == child->device, node->name,
                " backward: gradient for input ", i, " is on ", in_grads[i].device().str(),
                ", expected ", child->device.str());
      CVG_CHECK(is_floating(in_grads[i].dtype()), node->name, " backward: gradient for input ",
                i, " has dtype ", dtype_name(in_grads[i].dtype()), ", expected ",
                dtype_name(child->dtype));
      // Ops that promote (float32 * float64 -> float64) hand back gradients in the promoted
      // dtype; each input receives its gradient in its own dtype (as in PyTorch).
      if (in_grads[i].dtype() != child->dtype) in_grads[i] = in_grads[i].to(child->dtype);
      auto cit = grads.find(child);
      if (cit == grads.end()) grads.emplace(child, std::move(in_grads[i]));
      else cit->second = accumulate_grad(cit->second, in_grads[i]);
    }
  }
  return captured;
}

}  // namespace

void backward(const TensorList& outputs, const TensorList& grad_outputs, bool retain_graph,
              bool create_graph) {
  RunOptions opt{retain_graph || create_graph, create_graph, nullptr};
  run_backward(outputs, grad_outputs, opt, "backward");
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, const TensorList& grad_outputs,
                const GradOptions& options) {
  std::vector<Node*> capture;
  for (size_t j = 0; j < inputs.size(); ++j) {
    CVG_CHECK(inputs[j].defined() && inputs[j].requires_grad(), "grad: input ", j,
              " does not require grad");
    capture.push_back(gradient_edge(inputs[j]).get());
  }
  RunOptions opt{options.retain_graph.value_or(options.create_graph), options.create_graph, &capture};
  auto captured = run_backward(outputs, grad_outputs, opt, "grad");
  TensorList result;
  for (size_t j = 0; j < inputs.size(); ++j) {
    auto it = captured.find(capture[j]);
    if (it == captured.end()) {
      CVG_CHECK(options.allow_unused, "grad: input ", j, " (shape ", inputs[j].shape(),
                ") received no gradient from the outputs (it was not used to compute them, or "
                "only through ops that pass it none); pass allow_unused = true if that is intended");
      result.emplace_back();
    } else {
      // Dense and private, as a .grad: the engine's gradient may be a stride-0 expansion, or
      // shared with another result or with a grad_outputs tensor. (An input asked for twice
      // gets two copies.)
      const bool again = std::find(capture.begin() + static_cast<std::ptrdiff_t>(j) + 1, capture.end(),
                                   capture[j]) != capture.end();
      result.push_back(owned_gradient(again ? it->second : std::move(it->second), opt));
    }
  }
  return result;
}

}  // namespace cvg
