#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "core/autograd.h"
#include "core/copy.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/trace.h"
#ifdef CVG_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace cvg {

Tensor Tensor::empty(const Shape& shape, TensorOptions opts) {
  check_shape(shape, "empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel_of(shape) * dtype_size(opts.dtype), opts.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opts.dtype;
  Tensor t(std::move(impl));
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  const Shape& st = strides();
  if (numel() == 0) return true;  // no element to address: any strides describe it densely
  int64_t expected = 1;
  for (int i = static_cast<int>(sh.size()) - 1; i >= 0; --i) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(dtype_size(dtype()));
}

Tensor& Tensor::set_requires_grad(bool r) {
  checked("set_requires_grad");
  CVG_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad (this one "
            "was produced by '", grad_fn()->name, "'); use detach() first");
  CVG_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require "
            "grad, got ", dtype_name(dtype()));
  checked("set_requires_grad")->requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const {
  auto& g = checked("grad")->grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined()) {
    CVG_CHECK(g.shape() == shape(), "set_grad: gradient shape ", g.shape(),
              " does not match tensor shape ", shape());
    CVG_CHECK(g.dtype() == dtype(), "set_grad: gradient dtype ", dtype_name(g.dtype()),
              " does not match tensor dtype ", dtype_name(dtype()));
    CVG_CHECK(g.device() == device(), "set_grad: gradient on ", g.device().str(),
              " does not match tensor device ", device().str());
  }
  checked("set_grad")->grad = g.impl_ptr();
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph, bool create_graph) const {
  cvg::backward({*this}, grad_output.defined() ? TensorList{grad_output} : TensorList{},
                retain_graph, create_graph);
}

Tensor Tensor::detach() const {
  Tensor v = make_view(*this, shape(), strides(), offset());
  return v;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  check_shape(shape, "view");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  TraceOp trace("contiguous", {*this});
  Tensor out = Tensor::empty(shape(), options());
  copy_into(out, *this, "contiguous");
  return trace.result(record("contiguous", out, {*this},
                             [](const Tensor& g, const Node&) { return TensorList{g}; }));
}

Tensor Tensor::clone() const {
  TraceOp trace("clone", {*this});
  Tensor out = Tensor::empty(shape(), options());
  copy_into(out, *this, "clone");
  return trace.result(
      record("clone", out, {*this}, [](const Tensor& g, const Node&) { return TensorList{g}; }));
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  TraceOp trace("to_dtype", {*this});
  Tensor out = Tensor::empty(shape(), options().with_dtype(dt));
  copy_into(out, *this, "to(dtype)");
  if (!is_floating(dt)) return trace.result(out);  // integer results carry no gradient
  const DType src = dtype();
  return trace.result(record("to_dtype", out, {*this}, [src](const Tensor& g, const Node&) {
    return TensorList{g.to(src)};
  }));
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  TraceOp trace("to_device", {*this});
  Tensor out = Tensor::empty(shape(), options().with_device(dev));
  copy_into(out, *this, "to(device)");
  const Device src = device();
  return trace.result(record("to_device", out, {*this}, [src](const Tensor& g, const Node&) {
    return TensorList{g.to(src)};
  }));
}

template <typename T>
T Tensor::item() const {
  CVG_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  Tensor c = detach().to(kCPU).to(dtype_of<T>());
  return *static_cast<const T*>(c.raw_data());
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int32_t Tensor::item<int32_t>() const;
template int64_t Tensor::item<int64_t>() const;
template uint8_t Tensor::item<uint8_t>() const;
template bool Tensor::item<bool>() const;

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = Tensor::empty(shape(), TensorOptions{}.with_dtype(dtype_of<T>()));
  copy_into(c, detach(), "to_vector");
  const T* p = static_cast<const T*>(c.raw_data());
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

void check_inplace(const char* op, const Tensor& t) {
  CVG_CHECK(t.defined(), op, ": undefined tensor");
  CVG_CHECK(!(GradMode::enabled() && t.requires_grad()), op,
            ": in-place change of a tensor that requires grad (shape ", t.shape(),
            "); wrap it in NoGradGuard (as optimizers do) or use the out-of-place op");
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace("copy_", *this);
  CVG_CHECK(src.defined(), "copy_: undefined tensor");
  // An expanded destination (stride 0 in a dim of size > 1) has several elements at one
  // address: writing a varying source into it would keep one value at random.
  for (int64_t d = 0; d < dim(); ++d)
    CVG_CHECK(strides()[d] != 0 || shape()[d] <= 1, "copy_: the destination (shape ", shape(),
              ", strides ", strides(), ") has overlapping elements (stride 0 in dim ", d,
              "); copy into a contiguous tensor instead");
  copy_into(*this, src, "copy_");
  bump_version();
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_inplace("fill_", *this);
  if (numel() > 0) {
    if (device().is_cpu()) {
      copy_into(*this, scalar_tensor(value, TensorOptions{}.with_dtype(DType::float64)), "fill_");
    } else {
#ifdef CVG_WITH_CUDA
      fill_cuda(*this, value);
#endif
    }
  }
  bump_version();
  return *this;
}

Shape broadcast_strides(const Tensor& t, const Shape& target, const char* op) {
  const size_t n = target.size(), m = t.shape().size();
  CVG_CHECK(m <= n, op, ": cannot broadcast shape ", t.shape(), " to ", target);
  Shape st(n, 0);
  for (size_t i = 0; i < m; ++i) {
    const size_t j = n - m + i;
    CVG_CHECK(t.shape()[i] == target[j] || t.shape()[i] == 1, op, ": cannot broadcast shape ",
              t.shape(), " to ", target);
    st[j] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  }
  return st;
}

Device common_device(const char* op, const TensorList& ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    if (!t.defined()) continue;
    if (!first) {
      first = &t;
      continue;
    }
    CVG_CHECK(t.device() == first->device(), op, ": expected all tensors on one device, got ",
              first->device().str(), " and ", t.device().str());
  }
  CVG_CHECK(first != nullptr, op, ": no defined input tensor");
  return first->device();
}

// ---- factories ----

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  const bool rg = opts.requires_grad;
  Tensor t = Tensor::empty(shape, opts.with_requires_grad(false));
  {
    t.fill_(value);
  }
  if (rg) t.set_requires_grad(true);
  return t;
}
Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.options()); }
Tensor scalar_tensor(double value, TensorOptions opts) {
  Tensor t = Tensor::empty({}, opts.with_device(kCPU).with_requires_grad(false));
  dispatch_dtype(opts.dtype, "scalar_tensor",
                 [&](auto tag) { *static_cast<decltype(tag)*>(t.raw_data()) = static_cast<decltype(tag)>(value); });
  t = t.to(opts.device);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

template <typename T>
Tensor from_vector(const std::vector<T>& data, const Shape& shape, TensorOptions opts) {
  check_shape(shape, "from_vector");
  CVG_CHECK(static_cast<int64_t>(data.size()) == numel_of(shape), "from_vector: ", data.size(),
            " values do not fill shape ", shape, " (", numel_of(shape), " elements)");
  Tensor host = Tensor::empty(shape, TensorOptions{}.with_dtype(dtype_of<T>()));
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < data.size(); ++i) host.data<bool>()[i] = data[i];
  } else {
    if (!data.empty()) std::memcpy(host.raw_data(), data.data(), data.size() * sizeof(T));
  }
  Tensor out = Tensor::empty(shape, opts.with_requires_grad(false));
  copy_into(out, host, "from_vector");
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, TensorOptions);

Tensor arange(double start, double end, double step, TensorOptions opts) {
  CVG_CHECK(step != 0, "arange: step must be non-zero");
  CVG_CHECK((end - start) * step >= 0, "arange: range [", start, ", ", end,
            ") is empty or infinite for step ", step);
  const int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i) * step;
  return from_vector(v, {n}, opts);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  CVG_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  std::vector<double> v(steps);
  for (int64_t i = 0; i < steps; ++i)
    v[i] = steps == 1 ? start : start + (end - start) * static_cast<double>(i) / (steps - 1);
  return from_vector(v, {steps}, opts);
}

namespace {
template <typename Draw>
Tensor random_tensor(const Shape& shape, TensorOptions opts, const char* op, Draw draw) {
  check_shape(shape, op);
  Tensor host = Tensor::empty(shape, TensorOptions{}.with_dtype(opts.dtype));
  const uint64_t first = global_generator().take(static_cast<uint64_t>(host.numel()));
  const uint64_t seed = global_generator().seed;
  dispatch_dtype(opts.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* p = host.data<T>();
    parallel_for(host.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = draw(tag, seed, first + static_cast<uint64_t>(i));
    });
  });
  Tensor out = host.to(opts.device);
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions opts) {
  dispatch_floating(opts.dtype, "rand", [](auto) {});
  return random_tensor(shape, opts, "rand", [](auto tag, uint64_t seed, uint64_t i) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) return philox_uniform<T>(seed, i);
    else return T{};
  });
}

Tensor randn(const Shape& shape, TensorOptions opts) {
  dispatch_floating(opts.dtype, "randn", [](auto) {});
  return random_tensor(shape, opts, "randn", [](auto tag, uint64_t seed, uint64_t i) {
    return static_cast<decltype(tag)>(philox_normal(seed, i));
  });
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts) {
  CVG_CHECK(high > low, "randint: high (", high, ") must be greater than low (", low, ")");
  CVG_CHECK(opts.dtype != DType::bool_, "randint: bool is not an integer dtype");
  if (opts.dtype == DType::float32) opts.dtype = DType::int64;  // the default for integers
  // Values the dtype cannot hold would wrap (uint8 300 -> 44); refuse them instead.
  const auto [dt_lo, dt_hi] = dispatch_dtype(opts.dtype, "randint", [](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      // Integers stay exact up to 2^mantissa.
      const double m = std::ldexp(1.0, std::numeric_limits<T>::digits);
      return std::pair<double, double>{-m, m};
    } else {
      return std::pair<double, double>{static_cast<double>(std::numeric_limits<T>::min()),
                                       static_cast<double>(std::numeric_limits<T>::max())};
    }
  });
  CVG_CHECK(static_cast<double>(low) >= dt_lo && static_cast<double>(high) - 1 <= dt_hi,
            "randint: range [", low, ", ", high, ") does not fit in ", dtype_name(opts.dtype));
  return random_tensor(shape, opts, "randint", [low, high](auto tag, uint64_t seed, uint64_t i) {
    return static_cast<decltype(tag)>(philox_randint(seed, i, low, high));
  });
}

// ---- comparison helpers ----

namespace {
Tensor as_f64_cpu(const Tensor& t) { return t.detach().to(kCPU).to(DType::float64); }
}  // namespace

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "allclose");
  Tensor x = Tensor::empty(shape, TensorOptions{}.with_dtype(DType::float64));
  Tensor y = Tensor::empty(shape, TensorOptions{}.with_dtype(DType::float64));
  copy_into(x, as_f64_cpu(a), "allclose");
  copy_into(y, as_f64_cpu(b), "allclose");
  const double* px = x.data<double>();
  const double* py = y.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(px[i]) || std::isnan(py[i])) {
      if (equal_nan && std::isnan(px[i]) && std::isnan(py[i])) continue;
      return false;
    }
    if (px[i] == py[i]) continue;  // also equal infinities
    // An infinity is close only to itself; without this, b = inf makes the tolerance
    // rtol * |b| infinite and every finite a "close" to it.
    if (std::isinf(px[i]) || std::isinf(py[i])) return false;
    if (!(std::fabs(px[i] - py[i]) <= atol + rtol * std::fabs(py[i]))) return false;
  }
  return true;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "max_abs_diff");
  Tensor x = Tensor::empty(shape, TensorOptions{}.with_dtype(DType::float64));
  Tensor y = Tensor::empty(shape, TensorOptions{}.with_dtype(DType::float64));
  copy_into(x, as_f64_cpu(a), "max_abs_diff");
  copy_into(y, as_f64_cpu(b), "max_abs_diff");
  double m = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (x.data<double>()[i] == y.data<double>()[i]) continue;  // equal infinities differ by 0
    const double d = std::fabs(x.data<double>()[i] - y.data<double>()[i]);
    if (std::isnan(d)) return NAN;
    m = std::max(m, d);
  }
  return m;
}

}  // namespace cvg
