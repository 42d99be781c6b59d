// Tests of the indexing ops (kernels/index.h): registry entries with hand-computed cases and
// gradcheck samples (repeated indices, negative dims, empty and strided tensors), and plain test
// cases for the summation order, int32 indices and error messages. Index tensors are int64
// (or int32) without grad; the registry differentiates only the float inputs.
#include <catch2/catch.hpp>

#include <cstring>

#include "core/determinism.h"
#include "core/rng.h"
#include "kernels/index.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

Tensor idx64(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector<int64_t>(v, shape, TensorOptions{}.with_dtype(DType::int64));
}

// Random indices in [0, high), deterministic per seed.
Tensor random_index(const Shape& shape, int64_t high, uint64_t seed) {
  std::vector<int64_t> v(numel_of(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = philox_randint(seed, i, 0, high);
  return idx64(v, shape);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  return va.size() == vb.size() &&
         std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// index_select / index_add

CVG_REGISTER_OP(OpSpec{
    "index_select",
    [](const TensorList& xs) { return index_select(xs[0], 1, xs[1]); },
    [] {
      const Tensor x = t64({1, 2, 3, 4, 5, 6}, {2, 3});
      return std::vector<OpSample>{
          {"hand dim 1 with repeats",
           {x, idx64({2, 0, 2}, {3})},
           t64({3, 1, 3, 6, 4, 6}, {2, 3}, false),
           true,
           nullptr},
          {"hand dim 0 int32 index",
           {x, from_vector<int32_t>({1}, {1}, TensorOptions{}.with_dtype(DType::int32))},
           t64({4, 5, 6}, {1, 3}, false),
           true,
           [](const TensorList& xs) { return index_select(xs[0], 0, xs[1]); }},
          {"3-d dim -2 with repeats",
           {uniform64({2, 5, 3}, -1, 1, 1), idx64({4, 0, 4, 4, 1, 2}, {6})},
           Tensor(),
           true,
           [](const TensorList& xs) { return index_select(xs[0], -2, xs[1]); }},
          {"empty index", {uniform64({3, 4}, -1, 1, 2), idx64({}, {0})}, Tensor(), true, nullptr},
          {"empty x", {uniform64({0, 4}, -1, 1, 3), idx64({1, 3}, {2})}, Tensor(), true, nullptr},
          {"transposed x",
           {uniform64({4, 3}, -1, 1, 4), random_index({7}, 4, 5)},
           Tensor(),
           true,
           [](const TensorList& xs) { return index_select(transpose(xs[0], 0, 1), 1, xs[1]); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "index_add", [](const TensorList& xs) { return index_add(xs[0], 1, xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // Columns 0 and 2 of ones receive source columns {0, 2} and {1}.
          {"hand dim 1 with repeats",
           {t64({1, 1, 1, 1, 1, 1}, {2, 3}), idx64({0, 2, 0}, {3}),
            t64({1, 2, 3, 4, 5, 6}, {2, 3})},
           t64({5, 1, 3, 11, 1, 6}, {2, 3}, false),
           true,
           nullptr},
          {"3-d dim 0 with repeats",
           {uniform64({4, 2, 3}, -1, 1, 11), idx64({3, 0, 3, 1, 3}, {5}),
            uniform64({5, 2, 3}, -1, 1, 12)},
           Tensor(),
           true,
           [](const TensorList& xs) { return index_add(xs[0], 0, xs[1], xs[2]); }},
          {"dim -1, only source differentiable",
           {uniform64({2, 4}, -1, 1, 13, false), idx64({1, 1}, {2}), uniform64({2, 2}, -1, 1, 14)},
           Tensor(),
           true,
           [](const TensorList& xs) { return index_add(xs[0], -1, xs[1], xs[2]); }},
          {"empty index",
           {uniform64({3, 2}, -1, 1, 15), idx64({}, {0}), uniform64({0, 2}, -1, 1, 16)},
           Tensor(),
           true,
           [](const TensorList& xs) { return index_add(xs[0], 0, xs[1], xs[2]); }}};
    }});

// ---------------------------------------------------------------------------------------------
// gather / scatter_add

CVG_REGISTER_OP(OpSpec{
    "gather",
    [](const TensorList& xs) { return gather(xs[0], 1, xs[1]); },
    [] {
      const Tensor x = t64({1, 2, 3, 4}, {2, 2});
      return std::vector<OpSample>{
          {"hand dim 1",
           {x, idx64({0, 0, 1, 0}, {2, 2})},
           t64({1, 1, 4, 3}, {2, 2}, false),
           true,
           nullptr},
          {"hand dim 0, index narrower than x",
           {x, idx64({1, 0}, {1, 2})},
           t64({3, 2}, {1, 2}, false),
           true,
           [](const TensorList& xs) { return gather(xs[0], 0, xs[1]); }},
          {"index smaller than x, longer along dim",
           {uniform64({4, 5}, -1, 1, 21), random_index({2, 7}, 5, 22)},
           Tensor(),
           true,
           nullptr},
          {"3-d dim -2 with repeats",
           {uniform64({2, 3, 4}, -1, 1, 23), random_index({2, 5, 3}, 3, 24)},
           Tensor(),
           true,
           [](const TensorList& xs) { return gather(xs[0], -2, xs[1]); }},
          {"empty index",
           {uniform64({2, 3}, -1, 1, 25), idx64({}, {2, 0})},
           Tensor(),
           true,
           nullptr},
          {"transposed x",
           {uniform64({4, 3}, -1, 1, 26), random_index({5, 2}, 3, 27)},
           Tensor(),
           true,
           [](const TensorList& xs) { return gather(transpose(xs[0], 0, 1), 0, xs[1]); }}};
    }});

CVG_REGISTER_OP(OpSpec{
    "scatter_add", [](const TensorList& xs) { return scatter_add(xs[0], 1, xs[1], xs[2]); },
    [] {
      return std::vector<OpSample>{
          // Row 0: columns 0 <- 1 + 3, 1 <- 2; row 1: column 2 <- 4 + 5, 1 <- 6.
          {"hand dim 1 with repeats",
           {t64({0, 0, 0, 0, 0, 0}, {2, 3}), idx64({0, 1, 0, 2, 2, 1}, {2, 3}),
            t64({1, 2, 3, 4, 5, 6}, {2, 3})},
           t64({4, 2, 0, 0, 6, 9}, {2, 3}, false),
           true,
           nullptr},
          {"src larger than index, dim 0",
           {uniform64({3, 4}, -1, 1, 31), random_index({2, 3}, 3, 32),
            uniform64({4, 5}, -1, 1, 33)},
           Tensor(),
           true,
           [](const TensorList& xs) { return scatter_add(xs[0], 0, xs[1], xs[2]); }},
          {"3-d dim -1 with repeats",
           {uniform64({2, 3, 4}, -1, 1, 34), random_index({2, 3, 6}, 4, 35),
            uniform64({2, 3, 6}, -1, 1, 36)},
           Tensor(),
           true,
           [](const TensorList& xs) { return scatter_add(xs[0], -1, xs[1], xs[2]); }},
          {"index narrower than self",
           {uniform64({4, 5}, -1, 1, 37), random_index({2, 8}, 5, 38),
            uniform64({3, 8}, -1, 1, 39)},
           Tensor(),
           true,
           nullptr},
          {"empty index",
           {uniform64({2, 3}, -1, 1, 40), idx64({}, {0, 3}), uniform64({0, 3}, -1, 1, 41)},
           Tensor(),
           true,
           nullptr}};
    }});

// ---------------------------------------------------------------------------------------------
// Plain tests

TEST_CASE("scatter_add and index_add sum in increasing index order on the CPU",
          "[ops][index]") {
  // Enough columns for parallel_for to split the work across threads; each destination's sum
  // must still equal the sequential left-to-right float32 sum, bit for bit.
  const int64_t rows = 40, cols = 20000, targets = 3;
  const Tensor src = rand({rows, cols});
  const Tensor index = random_index({rows, cols}, targets, 7);
  const Tensor out = scatter_add(zeros({targets, cols}), 0, index, src);
  std::vector<float> expect(targets * cols, 0.0f);
  const std::vector<float> s = src.to_vector<float>();
  const std::vector<int64_t> ix = index.to_vector<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) expect[ix[r * cols + c] * cols + c] += s[r * cols + c];
  CHECK(bitwise_equal(out, from_vector(expect, {targets, cols})));

  const Tensor rows_index = random_index({rows}, targets, 8);
  const Tensor out2 = index_add(zeros({targets, cols}), 0, rows_index, src);
  std::vector<float> expect2(targets * cols, 0.0f);
  const std::vector<int64_t> rx = rows_index.to_vector<int64_t>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) expect2[rx[r] * cols + c] += s[r * cols + c];
  CHECK(bitwise_equal(out2, from_vector(expect2, {targets, cols})));
}

TEST_CASE("index ops accept int32 indices and integer data", "[ops][index]") {
  const TensorOptions i32 = TensorOptions{}.with_dtype(DType::int32);
  const TensorOptions i64 = TensorOptions{}.with_dtype(DType::int64);
  const Tensor x = from_vector<int64_t>({10, 20, 30, 40, 50, 60}, {2, 3}, i64);
  const Tensor g32 = gather(x, 1, from_vector<int32_t>({2, 2, 0, 1}, {2, 2}, i32));
  CHECK(g32.dtype() == DType::int64);
  CHECK(g32.to_vector<int64_t>() == std::vector<int64_t>{30, 30, 40, 50});
  const Tensor s = scatter_add(x, 0, from_vector<int32_t>({1, 1, 0}, {1, 3}, i32),
                               from_vector<int64_t>({1, 2, 3}, {1, 3}, i64));
  CHECK(s.to_vector<int64_t>() == std::vector<int64_t>{10, 20, 33, 41, 52, 60});
  const Tensor a = index_add(x, 1, from_vector<int32_t>({0, 0}, {2}, i32),
                             from_vector<int64_t>({1, 2, 3, 4}, {2, 2}, i64));
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{13, 20, 30, 47, 50, 60});
  CHECK(index_select(x, 0, from_vector<int32_t>({1, 0}, {2}, i32)).to_vector<int64_t>() ==
        std::vector<int64_t>{40, 50, 60, 10, 20, 30});
}

TEST_CASE("index ops: errors name the op and the offending values", "[ops][index][errors]") {
  const Tensor x = zeros({2, 3});
  std::string m = error_of([&] { index_select(x, 1, idx64({0, 5}, {2})); });
  CHECK_THAT(m, Catch::Contains(
                    "index_select: index 5 at position [1] is out of range for dim 1 of size 3"));
  m = error_of([&] { index_select(x, 0, idx64({-1}, {1})); });
  CHECK_THAT(m, Catch::Contains(
                    "index_select: index -1 at position [0] is out of range for dim 0 of size 2"));
  m = error_of([&] { index_select(x, 0, from_vector<float>({0}, {1})); });
  CHECK_THAT(m, Catch::Contains("index_select: index must be int32 or int64, got float32"));
  m = error_of([&] { index_select(x, 0, idx64({0, 1}, {1, 2})); });
  CHECK_THAT(m, Catch::Contains("index_select: index must be 1-D, got shape [1, 2]"));

  m = error_of([&] { gather(x, 1, idx64({0, 3}, {1, 2})); });
  CHECK_THAT(
      m, Catch::Contains("gather: index 3 at position [0, 1] is out of range for dim 1 of size 3"));
  m = error_of([&] { gather(x, 1, idx64({0}, {1})); });
  CHECK_THAT(m, Catch::Contains("gather: index must have as many dims as x (2)"));
  m = error_of([&] { gather(x, 1, idx64({0, 0, 0}, {3, 1})); });
  CHECK_THAT(m, Catch::Contains("gather: index shape [3, 1] exceeds x shape [2, 3] in dim 0"));
  m = error_of([&] {
    gather(x, 0, from_vector<double>({0}, {1, 1}, TensorOptions{}.with_dtype(DType::float64)));
  });
  CHECK_THAT(m, Catch::Contains("gather: index must be int32 or int64, got float64"));

  m = error_of([&] {
    scatter_add(x, 1, idx64({0}, {1, 1}),
                zeros({1, 1}, TensorOptions{}.with_dtype(DType::float64)));
  });
  CHECK_THAT(m, Catch::Contains("scatter_add: self is float32 but src is float64"));
  m = error_of([&] { scatter_add(x, 1, idx64({0, 0}, {1, 2}), zeros({1, 1})); });
  CHECK_THAT(m,
             Catch::Contains("scatter_add: index shape [1, 2] exceeds src shape [1, 1] in dim 1"));
  m = error_of([&] { scatter_add(x, 0, idx64({2}, {1, 1}), zeros({1, 1})); });
  CHECK_THAT(m, Catch::Contains(
                    "scatter_add: index 2 at position [0, 0] is out of range for dim 0 of size 2"));

  m = error_of([&] { index_add(x, 1, idx64({0, 1}, {2}), zeros({2, 3})); });
  CHECK_THAT(m, Catch::Contains("index_add: source has shape [2, 3] but self shape [2, 3] with 2 "
                                "indices along dim 1 needs [2, 2]"));
  m = error_of([&] { index_add(x, 0, idx64({7}, {1}), zeros({1, 3})); });
  CHECK_THAT(
      m, Catch::Contains("index_add: index 7 at position [0] is out of range for dim 0 of size 2"));
}

// Runs only in the CUDA suite (hidden from the CPU suite): the deterministic CUDA paths must
// reproduce the CPU's float32 sums bit for bit, and the atomic paths must agree to rounding.
TEST_CASE("scatter_add and index_add on CUDA: deterministic paths match the CPU bitwise",
          "[.][cuda]") {
  if (!cuda_available()) return;
  const int64_t rows = 300, cols = 257, targets = 5;
  const Tensor src = rand({rows, cols});
  const Tensor index = random_index({rows, cols}, targets, 9);
  const Tensor rows_index = random_index({rows}, targets, 10);
  const Tensor ref_s = scatter_add(zeros({targets, cols}), 0, index, src);
  const Tensor ref_i = index_add(zeros({targets, cols}), 0, rows_index, src);
  auto on_gpu = [&](bool deterministic) {
    const bool prev = deterministic_algorithms();
    set_deterministic_algorithms(deterministic);
    const Tensor s = scatter_add(zeros({targets, cols}, TensorOptions{}.with_device(kCUDA)), 0,
                                 index.to(kCUDA), src.to(kCUDA));
    const Tensor i = index_add(zeros({targets, cols}, TensorOptions{}.with_device(kCUDA)), 0,
                               rows_index.to(kCUDA), src.to(kCUDA));
    set_deterministic_algorithms(prev);
    return std::make_pair(s.to(kCPU), i.to(kCPU));
  };
  const auto det = on_gpu(true);
  CHECK(bitwise_equal(det.first, ref_s));
  CHECK(bitwise_equal(det.second, ref_i));
  const auto atomic = on_gpu(false);
  CHECK(allclose(atomic.first, ref_s, 1e-5, 1e-5));
  CHECK(allclose(atomic.second, ref_i, 1e-5, 1e-5));
}
