#pragma once
// nn::Module: the base of every layer and model. A module owns named parameters (tensors that
// require grad and that optimizers update), named buffers (state such as BatchNorm's running
// statistics, saved in checkpoints but not trained) and named submodules. Names nest with dots,
// as in PyTorch: "encoder.0.weight".
//
// Parameters and buffers are registered by address (a Tensor member of the subclass), so that
// to(device) and load_state_dict can replace the tensor a layer reads in forward(). Modules are
// therefore neither copyable nor movable; hold them by shared_ptr.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace cvg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Single-input modules override forward; models with other signatures add their own methods.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  // One line describing this module's own configuration, e.g. "Linear(in=3, out=4, bias=true)".
  virtual std::string describe() const;

  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  int64_t num_parameters() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves (or converts) every parameter and buffer. Each becomes a new leaf tensor that keeps
  // the old one's requires_grad (a frozen parameter stays frozen). The module's fields now hold
  // the new tensors, so collect parameters (for an optimizer, or to freeze some) after this:
  // copies taken before still point at the old ones, which no longer get gradients.
  void to(Device device);
  void to(DType dtype);
  Device device() const;

  void zero_grad();

  // Parameters and buffers by full name (detached views sharing storage).
  StateDict state_dict() const;
  // Copies values into the registered tensors (keeping their device). With strict, missing or
  // unexpected names are an Error; shape or dtype mismatches are always an Error.
  void load_state_dict(const StateDict& state, bool strict = true);

  // A printed tree of submodules with their parameter counts and a total.
  std::string summary() const;

 protected:
  // Registers `*slot` (a member of the subclass) as a parameter; sets requires_grad.
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void visit_tensors(const std::string& prefix, bool params, bool buffers,
                     const std::function<void(const std::string&, Tensor*, bool)>& fn) const;

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Runs its children in order: Sequential({make_shared<Linear>(2, 8), make_shared<ReLU>()}).
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void push_back(std::shared_ptr<Module> layer);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Sequential"; }
  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace cvg::nn
