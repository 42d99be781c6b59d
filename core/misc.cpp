// Small definitions shared by the core headers: shape printing, dtypes, devices, shape rules.
#include <algorithm>
#include <ostream>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace cvg {

std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os << ']';
}

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::float32: return 4;
    case DType::float64: return 8;
    case DType::int32: return 4;
    case DType::int64: return 8;
    case DType::uint8: return 1;
    case DType::bool_: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
    case DType::uint8: return "uint8";
    case DType::bool_: return "bool";
  }
  return "?";
}

bool is_floating(DType dt) { return dt == DType::float32 || dt == DType::float64; }

std::ostream& operator<<(std::ostream& os, DType dt) { return os << dtype_name(dt); }

DType promote_types(DType a, DType b) {
  auto rank = [](DType d) {
    switch (d) {
      case DType::bool_: return 0;
      case DType::uint8: return 1;
      case DType::int32: return 2;
      case DType::int64: return 3;
      case DType::float32: return 4;
      case DType::float64: return 5;
    }
    return 0;
  };
  return rank(a) >= rank(b) ? a : b;
}

std::string Device::str() const {
  if (type == DeviceType::cpu) return "cpu";
  return index == 0 ? "cuda" : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return kCPU;
  if (s == "cuda") return kCUDA;
  if (s.rfind("cuda:", 0) == 0) {
    const std::string num = s.substr(5);
    CVG_CHECK(!num.empty() && std::all_of(num.begin(), num.end(), ::isdigit),
              "Device: cannot parse device '", s, "' (expected cpu, cuda or cuda:N)");
    return Device{DeviceType::cuda, std::stoi(num)};
  }
  fail("Device: cannot parse device '", s, "' (expected cpu, cuda or cuda:N)");
}

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    CVG_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
              " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  CVG_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " is out of range for a ", ndim,
            "-d tensor (expected ", lo, "..", hi, ")");
  return static_cast<int>(dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim);
}

void check_shape(const Shape& shape, const char* op) {
  CVG_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), op, ": tensors have at most ",
            kMaxDims, " dims, got shape ", shape);
  for (int64_t s : shape) CVG_CHECK(s >= 0, op, ": negative size in shape ", shape);
}

}  // namespace cvg
