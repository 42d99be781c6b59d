// core/strided.h: strided_for_each visits every element once with the offsets of its definition
// (offset + sum_d i_d stride_d per operand), whatever the dimensions coalesce into, and whatever
// chunks the range is cut into.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "core/strided.h"

using namespace cvg;

namespace {

struct Case {
  const char* label;
  Shape shape;
  Shape a, b;  // strides of two input operands (the output is contiguous)
  int64_t off_a, off_b;
};

// Offsets of every element in row-major order, from the definition.
std::vector<std::array<int64_t, 2>> reference(const Case& c) {
  std::vector<std::array<int64_t, 2>> out;
  const int64_t n = numel_of(c.shape);
  for (int64_t l = 0; l < n; ++l) {
    std::array<int64_t, 2> o{c.off_a, c.off_b};
    int64_t rem = l;
    for (int d = static_cast<int>(c.shape.size()) - 1; d >= 0; --d) {
      const int64_t i = rem % c.shape[d];
      rem /= c.shape[d];
      o[0] += i * c.a[d];
      o[1] += i * c.b[d];
    }
    out.push_back(o);
  }
  return out;
}

}  // namespace

TEST_CASE("strided_for_each: each element once, at its offsets", "[strided]") {
  const std::vector<Case> cases = {
      {"dense 3-D (one coalesced dimension)", {4, 5, 6}, {30, 6, 1}, {30, 6, 1}, 0, 7},
      {"scalar broadcast", {4, 5, 6}, {30, 6, 1}, {0, 0, 0}, 2, 3},
      {"row broadcast", {4, 5, 6}, {30, 6, 1}, {0, 0, 1}, 0, 0},
      {"column broadcast", {7, 9}, {9, 1}, {1, 0}, 0, 0},
      {"transposed", {6, 5}, {1, 6}, {5, 1}, 0, 0},
      {"slice of a wider row", {3, 4, 5}, {40, 10, 1}, {20, 5, 1}, 11, 0},
      {"size-1 dimensions between", {3, 1, 4, 1, 5}, {20, 999, 5, 999, 1}, {0, 7, 1, 3, 0}, 0, 1},
      {"negative stride (flip)", {4, 6}, {6, -1}, {6, 1}, 5, 0},
      {"0-d", {}, {}, {}, 4, 9},
      {"only size-1", {1, 1}, {3, 5}, {0, 0}, 1, 2},
      {"empty", {3, 0, 2}, {0, 2, 1}, {0, 2, 1}, 0, 0},
      {"permuted 4-D", {2, 3, 4, 5}, {1, 40, 10, 2}, {60, 20, 5, 1}, 0, 0},
  };
  for (const Case& c : cases) {
    const Shape out_strides = contiguous_strides(c.shape);
    const std::vector<std::array<int64_t, 2>> want = reference(c);
    // Grains from one element (every chunk ends mid-run) to all of them.
    for (int64_t grain : {int64_t{1}, int64_t{3}, int64_t{7}, int64_t{1} << 20}) {
      INFO(c.label << ", grain " << grain);
      std::vector<std::array<int64_t, 2>> got(want.size(), {-1, -1});
      std::vector<int> visits(want.size(), 0);
      std::atomic<bool> out_of_range{false};  // set from worker threads (no Catch macros there)
      StridedOperands<3> ops{{out_strides.data(), c.a.data(), c.b.data()}, {0, c.off_a, c.off_b}};
      strided_for_each<3>(
          c.shape, ops,
          [&](const std::array<int64_t, 3>& o) {
            if (o[0] < 0 || o[0] >= static_cast<int64_t>(want.size())) {
              out_of_range = true;
              return;
            }
            got[static_cast<size_t>(o[0])] = {o[1], o[2]};
            ++visits[static_cast<size_t>(o[0])];
          },
          grain);
      CHECK_FALSE(out_of_range);
      CHECK(got == want);
      CHECK(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }));
    }
  }
}

TEST_CASE("strided_for_each: coalescing merges what steps as one dimension", "[strided]") {
  const Shape shape{4, 5, 6};
  const Shape dense = contiguous_strides(shape), zero{0, 0, 0}, t{1, 4, 20};
  // Dense and broadcast scalars: one dimension of 120.
  const CoalescedDims<2> one(shape, StridedOperands<2>{{dense.data(), zero.data()}});
  CHECK(one.nd == 1);
  CHECK(one.size[0] == 120);
  // A transposed operand keeps all three.
  const CoalescedDims<2> three(shape, StridedOperands<2>{{dense.data(), t.data()}});
  CHECK(three.nd == 3);
  // Size-1 dimensions are dropped; a scalar is one element.
  const Shape s1{1, 8, 1}, st1{8, 1, 1};
  const CoalescedDims<1> drop(s1, StridedOperands<1>{{st1.data()}});
  CHECK(drop.nd == 1);
  CHECK(drop.size[0] == 8);
  const Shape none{};
  const CoalescedDims<1> scalar(none, StridedOperands<1>{{none.data()}});
  CHECK(scalar.nd == 1);
  CHECK(scalar.size[0] == 1);
}
