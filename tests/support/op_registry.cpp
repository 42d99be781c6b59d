#include "tests/support/op_registry.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace cvg::testing {

std::vector<OpSpec>& op_registry() {
  static std::vector<OpSpec> registry;
  return registry;
}

Tensor t64(const std::vector<double>& values, const Shape& shape, bool grad) {
  return from_vector(values, shape, TensorOptions{}.with_dtype(DType::float64).with_requires_grad(grad));
}

Tensor uniform64(const Shape& shape, double lo, double hi, uint64_t seed, bool grad) {
  std::vector<double> v(numel_of(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = lo + (hi - lo) * philox_uniform<double>(seed, i);
  return t64(v, shape, grad);
}

Tensor away_from_zero64(const Shape& shape, double lo, double hi, double margin, uint64_t seed) {
  std::vector<double> v(numel_of(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    double x = lo + (hi - lo) * philox_uniform<double>(seed, i);
    if (std::fabs(x) < margin) x = x < 0 ? -margin : margin;
    v[i] = x;
  }
  return t64(v, shape, true);
}

Tensor distinct64(const Shape& shape, double gap, uint64_t seed, bool grad) {
  const int64_t n = numel_of(shape);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = (static_cast<double>(i) - n / 2.0) * gap;
  // Fisher-Yates with Philox draws: deterministic per seed.
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = philox_randint(seed, static_cast<uint64_t>(i), 0, i + 1);
    std::swap(v[i], v[j]);
  }
  return t64(v, shape, grad);
}

}  // namespace cvg::testing
