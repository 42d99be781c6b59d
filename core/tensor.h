#pragma once
// Tensor: a reference-counted handle to a strided view of a Storage.
//
// Layout convention: sizes and strides are in elements, outermost dimension first; element
// (i0, ..., ik) lives at storage offset  offset + sum_j i_j * stride_j.  Views (reshape of a
// contiguous tensor, permute, transpose, slice, expand, detach) share storage and only change
// sizes/strides/offset; expand gives stride 0 to broadcast dimensions. Kernels that need dense
// memory call contiguous(), which copies only when the tensor is not already row-major dense.
//
// Copying a Tensor copies the handle, not the data (like torch.Tensor). clone() copies data.
// Autograd state (requires_grad, grad, grad_fn) lives in the TensorImpl; see core/autograd.h.
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace cvg {

class Node;
class Tensor;
using TensorList = std::vector<Tensor>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::float32;

  // Autograd. A tensor with requires_grad and no grad_fn is a leaf; gradients accumulate into
  // `grad`. A non-leaf has the node that produced it in grad_fn.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  std::shared_ptr<Node> grad_accumulator;  // leaves only, created on first use
  std::string name;                        // optional, shown in graph exports
};

struct TensorOptions {
  DType dtype = DType::float32;
  Device device = kCPU;
  bool requires_grad = false;

  TensorOptions with_dtype(DType d) const { auto o = *this; o.dtype = d; return o; }
  TensorOptions with_device(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions with_requires_grad(bool r) const { auto o = *this; o.requires_grad = r; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised tensor with fresh contiguous storage.
  static Tensor empty(const Shape& shape, TensorOptions opts = {});

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- metadata ----
  const Shape& shape() const { return checked("shape")->shape; }
  const Shape& strides() const { return checked("strides")->strides; }
  int64_t size(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const { return numel_of(shape()); }
  int64_t offset() const { return checked("offset")->offset; }
  DType dtype() const { return checked("dtype")->dtype; }
  Device device() const { return checked("device")->storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  TensorOptions options() const { return {dtype(), device(), false}; }
  const std::shared_ptr<Storage>& storage() const { return checked("storage")->storage; }
  uint64_t version() const { return storage()->version(); }
  void bump_version() const { storage()->bump_version(); }

  // Pointer to element 0 of this view (CPU only for typed access; raw for any device).
  void* raw_data() const;
  template <typename T> T* data() const {
    CVG_CHECK(dtype_of<T>() == dtype(), "Tensor::data: requested ", dtype_name(dtype_of<T>()),
              " from a ", dtype_name(dtype()), " tensor");
    return static_cast<T*>(raw_data());
  }

  // ---- autograd ----
  bool requires_grad() const { return checked("requires_grad")->requires_grad; }
  // Only leaves may change requires_grad, and only floating tensors can require grad.
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const { return checked("is_leaf")->grad_fn == nullptr; }
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const { checked("zero_grad")->grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return checked("grad_fn")->grad_fn; }
  // Computes gradients of this tensor (a scalar unless `grad_output` is given) with respect to
  // every leaf that requires grad, accumulating them into the leaves' grad().
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false,
                bool create_graph = false) const;
  // A view of the same data that is cut from the graph (requires_grad false).
  Tensor detach() const;
  Tensor& set_name(const std::string& n) { checked("set_name")->name = n; return *this; }
  const std::string& name() const { return checked("name")->name; }

  // ---- conversion and copies (differentiable where it makes sense) ----
  Tensor contiguous() const;           // self when already contiguous
  Tensor clone() const;                // always a fresh contiguous copy
  Tensor to(DType dt) const;           // self when already of that dtype
  Tensor to(Device dev) const;         // self when already on that device
  template <typename T> T item() const;
  double item() const { return item<double>(); }
  // All elements as a flat vector, converted to T (row-major order of the view).
  template <typename T> std::vector<T> to_vector() const;

  // ---- in-place (bump the version counter; refused on tensors that autograd tracks) ----
  Tensor& copy_(const Tensor& src);  // broadcasting, dtype-converting copy into this view
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  std::string str() const;  // PyTorch-like printing, truncated for large tensors

 private:
  // `what` names the accessor in the error, e.g. "Tensor::shape: undefined tensor ...".
  TensorImpl* checked(const char* what = "operation") const {
    if (!impl_)
      fail("Tensor::", what, ": undefined tensor (a default-constructed Tensor, or a gradient "
           "that was never computed)");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// A new handle that views `base`'s storage with the given geometry (no autograd recording).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

// Strides that read `t` as if it had shape `target` (NumPy broadcasting: stride 0 in stretched
// dims). Throws naming `op` when t does not broadcast to target.
Shape broadcast_strides(const Tensor& t, const Shape& target, const char* op);
// Throws naming `op` unless every defined tensor is on the same device; returns that device.
Device common_device(const char* op, const TensorList& ts);
// Throws naming `op` when an in-place op would modify a tensor autograd needs.
void check_inplace(const char* op, const Tensor& t);

// ---- factories ----
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor scalar_tensor(double value, TensorOptions opts = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
// From host data in row-major order; data.size() must equal numel(shape).
template <typename T>
Tensor from_vector(const std::vector<T>& data, const Shape& shape, TensorOptions opts = {});
inline Tensor tensor(const std::vector<double>& data, const Shape& shape, TensorOptions opts = {}) {
  return from_vector<double>(data, shape, opts);
}

// Random factories draw from the global generator (core/rng.h): uniform [0, 1), standard
// normal, integers in [low, high).
Tensor rand(const Shape& shape, TensorOptions opts = {});
Tensor randn(const Shape& shape, TensorOptions opts = {});
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = {});

// |a - b| <= atol + rtol * |b| elementwise (after broadcasting); NaNs compare equal when
// equal_nan. Shapes must broadcast.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
              bool equal_nan = false);
// Largest |a - b| (as double), for test messages.
double max_abs_diff(const Tensor& a, const Tensor& b);

}  // namespace cvg
