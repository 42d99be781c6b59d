#pragma once
// Datasets: indexable collections of examples. A Dataset only answers size() and get(i); the
// DataLoader (nn/data/loader.h) decides the order, applies transforms and builds batches.
//
// get() may be called from the loader's background thread, so it must not touch shared mutable
// state without locking; every dataset here only reads tensors that were built up front.
// Synthetic data is a Dataset like any other: FunctionDataset wraps a function of the index.
#include <cstdint>
#include <functional>
#include <memory>

#include "core/tensor.h"

namespace cvg::data {

struct Example {
  Tensor input;
  Tensor target;  // may be undefined (unlabelled data)
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example `index`, 0 <= index < size().
  virtual Example get(int64_t index) const = 0;
};

// Rows of tensors: example i is (inputs[i], targets[i]). Both share dim 0; targets may be
// undefined. Examples are views into the given tensors (no copies).
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets = Tensor());
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;

 private:
  Tensor inputs_, targets_;
};

// Example i is fn(i); for synthetic data generated on the fly. fn must be a pure function of i
// (draw any randomness from a counter-based stream keyed by i) so that runs repeat exactly.
class FunctionDataset : public Dataset {
 public:
  FunctionDataset(int64_t size, std::function<Example(int64_t)> fn);
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;

 private:
  int64_t size_;
  std::function<Example(int64_t)> fn_;
};

// Row `index` of t along dim 0 as a view (no autograd recording, no copy).
Tensor row(const Tensor& t, int64_t index);

// Stacks equally shaped tensors along a new dim 0 into a fresh contiguous CPU tensor; `what`
// names them in errors ("input", "target").
Tensor stack_rows(const std::vector<Tensor>& rows, const char* what);

}  // namespace cvg::data
