// Geometry (core/geometry.h), the index decoding of the CUDA elementwise, broadcast and copy
// kernels, checked on the CPU: for views of every kind (contiguous, permuted, sliced with steps,
// broadcast, offset), offset_of(i) must equal a plain unravel of i over the unsimplified shape,
// for every i and for each operand of a launch; and the simplification must merge what it can
// (a contiguous tensor is one dim) and no more.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <sstream>
#include <vector>

#include "core/geometry.h"
#include "core/tensor.h"
#include "kernels/view.h"

using namespace cvg;

namespace {

// Storage offset of element `linear` of t broadcast to shape, by unravelling over every dim.
int64_t unravel_offset(const Tensor& t, const Shape& shape, int64_t linear) {
  const int nd = static_cast<int>(shape.size()), lead = nd - static_cast<int>(t.dim());
  int64_t off = t.offset();
  for (int d = nd - 1; d >= 0; --d) {
    const int64_t i = linear % shape[d];
    linear /= shape[d];
    const int sd = d - lead;
    if (sd >= 0 && t.shape()[sd] != 1) off += i * t.strides()[sd];
  }
  return off;
}

template <size_t N>
void check_all(const std::array<const Tensor*, N>& ts, const Shape& shape) {
  const std::array<Geometry, N> gs = geometries_for<N>(ts, shape);
  const int64_t n = numel_of(shape);
  for (size_t k = 0; k < N; ++k) {
    std::ostringstream what;  // cvg's operator<< for shapes is not found from Catch's namespace
    cvg::operator<<(what << "operand " << k << " of shape ", ts[k]->shape());
    cvg::operator<<(what << " over ", shape);
    INFO(what.str());
    int64_t wrong = 0, first = -1;
    for (int64_t i = 0; i < n; ++i)
      if (gs[k].offset_of(i) != unravel_offset(*ts[k], shape, i)) {
        if (first < 0) first = i;
        ++wrong;
      }
    INFO("first wrong linear index " << first);
    CHECK(wrong == 0);
  }
}

}  // namespace

TEST_CASE("geometry: a contiguous tensor is one dim; size-1 dims vanish", "[geometry]") {
  const Tensor x = zeros({2, 3, 4, 5});
  const Geometry g = geometry_for(x, x.shape());
  CHECK(g.ndim == 1);
  CHECK(g.sizes[0].divisor() == 120);
  check_all<1>({&x}, x.shape());
  const Tensor y = zeros({1, 7, 1});
  CHECK(geometry_for(y, y.shape()).ndim == 1);
  const Tensor s = zeros({});
  CHECK(geometry_for(s, s.shape()).ndim == 0);
  CHECK(geometry_for(s, s.shape()).offset_of(0) == 0);
}

TEST_CASE("geometry: a per-channel broadcast keeps three dims for both operands", "[geometry]") {
  const Tensor x = zeros({2, 3, 4, 5}), b = zeros({1, 3, 1, 1});
  const std::array<Geometry, 2> gs = geometries_for<2>({&x, &b}, x.shape());
  REQUIRE(gs[0].ndim == 3);
  REQUIRE(gs[1].ndim == 3);
  CHECK(gs[0].sizes[0].divisor() == 2);
  CHECK(gs[0].sizes[1].divisor() == 3);
  CHECK(gs[0].sizes[2].divisor() == 20);
  CHECK(gs[1].strides[0] == 0);
  CHECK(gs[1].strides[1] == 1);
  CHECK(gs[1].strides[2] == 0);
  check_all<2>({&x, &b}, x.shape());
  // A leading broadcast (fewer dims than the shape) and a trailing one.
  const Tensor row = zeros({5}), col = zeros({4, 1});
  check_all<3>({&x, &row, &col}, x.shape());
}

TEST_CASE("geometry: permuted, stepped, offset and expanded views decode like an unravel",
          "[geometry]") {
  std::mt19937 rng(3);
  const Tensor base = zeros({6, 7, 8, 9});
  for (int trial = 0; trial < 40; ++trial) {
    // A random view: a slice with a random start and step in each dim, then a random permute.
    Tensor v = base;
    for (int64_t d = 0; d < 4; ++d) {
      const int64_t size = v.shape()[d], start = rng() % 2, step = 1 + rng() % 2;
      v = slice(v, d, start, size, step);
    }
    std::vector<int64_t> perm{0, 1, 2, 3};
    std::shuffle(perm.begin(), perm.end(), rng);
    v = permute(v, perm);
    // A second operand: contiguous of the same shape, or the view broadcast from one dim.
    const Tensor dense = zeros(v.shape());
    Shape one = v.shape();
    const int64_t keep = rng() % 4;
    for (int64_t d = 0; d < 4; ++d)
      if (d != keep) one[d] = 1;
    const Tensor small = slice(zeros({one[0] * 2, one[1], one[2], one[3]}), 0, 1, 2 * one[0], 2);
    check_all<3>({&v, &dense, &small}, v.shape());
    // Every operand strided the same way merges the same dims as the view alone would.
    check_all<2>({&v, &v}, v.shape());
  }
}

TEST_CASE("geometry: an expanded view and a zero-size shape", "[geometry]") {
  const Tensor x = zeros({3, 1, 4});
  const Tensor e = expand(x, {2, 3, 5, 4});
  check_all<1>({&e}, e.shape());
  const Tensor empty = zeros({3, 0, 2});
  const Geometry g = geometry_for(empty, empty.shape());  // must not throw on the zero size
  CHECK(g.ndim <= 3);
}
