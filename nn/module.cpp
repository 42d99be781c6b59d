#include "nn/module.h"

#include <set>
#include <sstream>

#include "core/autograd.h"

namespace cvg::nn {

Tensor Module::forward(const Tensor&) {
  fail(describe(), ": this module does not take a single tensor; call its own forward method");
}

std::string Module::describe() const { return "Module"; }

void Module::register_parameter(const std::string& name, Tensor* slot) {
  CVG_CHECK(slot && slot->defined(), describe(), ": parameter '", name, "' is undefined");
  CVG_CHECK(name.find('.') == std::string::npos, "register_parameter: name '", name,
            "' must not contain '.'");
  for (auto& [n, _] : params_) CVG_CHECK(n != name, describe(), ": parameter '", name, "' registered twice");
  if (!slot->requires_grad()) slot->set_requires_grad(true);
  params_.emplace_back(name, slot);
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  CVG_CHECK(slot && slot->defined(), describe(), ": buffer '", name, "' is undefined");
  for (auto& [n, _] : buffers_) CVG_CHECK(n != name, describe(), ": buffer '", name, "' registered twice");
  buffers_.emplace_back(name, slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  CVG_CHECK(m != nullptr, "register_module: module '", name, "' is null");
  for (auto& [n, _] : children_) CVG_CHECK(n != name, describe(), ": submodule '", name, "' registered twice");
  children_.emplace_back(name, std::move(m));
}

void Module::visit_tensors(const std::string& prefix, bool params, bool buffers,
                           const std::function<void(const std::string&, Tensor*, bool)>& fn) const {
  if (params)
    for (auto& [n, slot] : params_) fn(prefix + n, slot, true);
  if (buffers)
    for (auto& [n, slot] : buffers_) fn(prefix + n, slot, false);
  for (auto& [n, child] : children_) child->visit_tensors(prefix + n + ".", params, buffers, fn);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  visit_tensors("", true, false, [&](const std::string& n, Tensor* t, bool) { out.emplace_back(n, *t); });
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  visit_tensors("", false, true, [&](const std::string& n, Tensor* t, bool) { out.emplace_back(n, *t); });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [_, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, child] : children_) child->train(on);
}

void Module::to(Device device) {
  visit_tensors("", true, true, [&](const std::string&, Tensor* t, bool) {
    if (t->device() == device) return;
    Tensor moved = t->detach().to(device).detach();
    moved.set_requires_grad(t->requires_grad());
    *t = moved;
  });
}

void Module::to(DType dtype) {
  visit_tensors("", true, true, [&](const std::string&, Tensor* t, bool) {
    if (t->dtype() == dtype || !is_floating(t->dtype())) return;
    Tensor converted = t->detach().to(dtype).detach();
    converted.set_requires_grad(t->requires_grad());
    *t = converted;
  });
}

Device Module::device() const {
  const auto params = named_parameters();
  return params.empty() ? kCPU : params.front().second.device();
}

void Module::zero_grad() {
  for (auto& [_, t] : named_parameters()) t.zero_grad();
}

StateDict Module::state_dict() const {
  StateDict out;
  visit_tensors("", true, true, [&](const std::string& n, Tensor* t, bool) { out[n] = t->detach(); });
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  std::set<std::string> seen;
  visit_tensors("", true, true, [&](const std::string& n, Tensor* t, bool) {
    auto it = state.find(n);
    if (it == state.end()) {
      CVG_CHECK(!strict, "load_state_dict: missing entry '", n, "' (shape ", t->shape(), ")");
      return;
    }
    seen.insert(n);
    const Tensor& src = it->second;
    CVG_CHECK(src.shape() == t->shape(), "load_state_dict: '", n, "' has shape ", src.shape(),
              " in the state but ", t->shape(), " in the module");
    CVG_CHECK(src.dtype() == t->dtype(), "load_state_dict: '", n, "' has dtype ",
              dtype_name(src.dtype()), " in the state but ", dtype_name(t->dtype()), " in the module");
    NoGradGuard no_grad;
    t->copy_(src);
  });
  if (strict)
    for (auto& [n, _] : state)
      CVG_CHECK(seen.count(n), "load_state_dict: unexpected entry '", n, "' (not in the module)");
}

std::string Module::summary() const {
  std::ostringstream os;
  std::function<void(const Module&, const std::string&, int)> walk =
      [&](const Module& m, const std::string& name, int depth) {
        int64_t own = 0;
        for (auto& [_, slot] : m.params_) own += slot->numel();
        os << std::string(2 * depth, ' ') << (name.empty() ? "" : name + ": ") << m.describe();
        if (own > 0) os << "  [" << own << " params]";
        os << '\n';
        for (auto& [n, child] : m.children_) walk(*child, n, depth + 1);
      };
  walk(*this, "", 0);
  os << "total parameters: " << num_parameters() << '\n';
  return os.str();
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) {
  for (auto& l : layers) push_back(std::move(l));
}

void Sequential::push_back(std::shared_ptr<Module> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h);
  return h;
}

}  // namespace cvg::nn
