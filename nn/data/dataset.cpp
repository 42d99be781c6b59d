#include "nn/data/dataset.h"

#include <cstring>

namespace cvg::data {

Tensor row(const Tensor& t, int64_t index) {
  CVG_CHECK(t.dim() >= 1, "row: expected a tensor with at least one dim, got a 0-d tensor");
  CVG_CHECK(index >= 0 && index < t.size(0), "row: index ", index, " out of range for ", t.size(0),
            " rows");
  const Shape shape(t.shape().begin() + 1, t.shape().end());
  const Shape strides(t.strides().begin() + 1, t.strides().end());
  return make_view(t, shape, strides, t.offset() + index * t.strides()[0]);
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(inputs.detach()), targets_(targets.defined() ? targets.detach() : Tensor()) {
  CVG_CHECK(inputs_.dim() >= 1, "TensorDataset: inputs need a leading example dim, got shape ",
            inputs_.shape());
  if (targets_.defined())
    CVG_CHECK(targets_.dim() >= 1 && targets_.size(0) == inputs_.size(0),
              "TensorDataset: inputs ", inputs_.shape(), " and targets ", targets_.shape(),
              " must have the same number of rows");
}

Example TensorDataset::get(int64_t index) const {
  CVG_CHECK(index >= 0 && index < size(), "TensorDataset: index ", index, " out of range [0, ",
            size(), ")");
  return {row(inputs_, index), targets_.defined() ? row(targets_, index) : Tensor()};
}

FunctionDataset::FunctionDataset(int64_t size, std::function<Example(int64_t)> fn)
    : size_(size), fn_(std::move(fn)) {
  CVG_CHECK(size >= 0, "FunctionDataset: size must be non-negative, got ", size);
  CVG_CHECK(static_cast<bool>(fn_), "FunctionDataset: no function given");
}

Example FunctionDataset::get(int64_t index) const {
  CVG_CHECK(index >= 0 && index < size_, "FunctionDataset: index ", index, " out of range [0, ",
            size_, ")");
  return fn_(index);
}

Tensor stack_rows(const std::vector<Tensor>& rows, const char* what) {
  CVG_CHECK(!rows.empty(), "stack_rows: no ", what, " tensors to stack");
  const Tensor& first = rows[0];
  CVG_CHECK(first.defined(), "stack_rows: ", what, " 0 is undefined");
  Shape shape = first.shape();
  shape.insert(shape.begin(), static_cast<int64_t>(rows.size()));
  Tensor out = Tensor::empty(shape, TensorOptions{}.with_dtype(first.dtype()));
  const size_t row_bytes = static_cast<size_t>(first.numel()) * dtype_size(first.dtype());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    const Tensor& r = rows[i];
    CVG_CHECK(r.defined() == first.defined() && r.defined(), "stack_rows: ", what, " ", i,
              " is undefined while ", what, " 0 is not");
    CVG_CHECK(r.shape() == first.shape() && r.dtype() == first.dtype(), "stack_rows: ", what, " ", i,
              " has shape ", r.shape(), " ", dtype_name(r.dtype()), " but ", what, " 0 has shape ",
              first.shape(), " ", dtype_name(first.dtype()), "; a batch needs equal shapes");
    const Tensor c = r.detach().to(kCPU).contiguous();
    if (row_bytes) std::memcpy(dst + i * row_bytes, c.raw_data(), row_bytes);
  }
  return out;
}

}  // namespace cvg::data
