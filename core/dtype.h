#pragma once
// Element types. float32 is the default; float64 serves as the reference type in gradchecks.
// dispatch_dtype(dt, "op", fn) calls fn(T{}) with the C++ type for dt; ops that accept only a
// subset use dispatch_floating (float32, float64).
#include <cstdint>
#include <string>

#include "core/error.h"

namespace cvg {

enum class DType : uint8_t { float32, float64, int32, int64, uint8, bool_ };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);
bool is_floating(DType dt);
std::ostream& operator<<(std::ostream& os, DType dt);

// The type an op computes in when given two dtypes (NumPy-like: float64 > float32 > int64 >
// int32 > uint8 > bool).
DType promote_types(DType a, DType b);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::float32; }
template <> constexpr DType dtype_of<double>() { return DType::float64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::uint8; }
template <> constexpr DType dtype_of<bool>() { return DType::bool_; }

template <typename Fn>
decltype(auto) dispatch_dtype(DType dt, const char* op, Fn&& fn) {
  switch (dt) {
    case DType::float32: return fn(float{});
    case DType::float64: return fn(double{});
    case DType::int32: return fn(int32_t{});
    case DType::int64: return fn(int64_t{});
    case DType::uint8: return fn(uint8_t{});
    case DType::bool_: return fn(bool{});
  }
  fail(op, ": unknown dtype");
}

template <typename Fn>
decltype(auto) dispatch_floating(DType dt, const char* op, Fn&& fn) {
  switch (dt) {
    case DType::float32: return fn(float{});
    case DType::float64: return fn(double{});
    default: fail(op, ": expected a floating-point tensor (float32 or float64), got ", dtype_name(dt));
  }
}

}  // namespace cvg
