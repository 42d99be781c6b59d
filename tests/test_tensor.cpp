// Tensor basics (core/tensor.h): dtypes, dims, factories, item, dtype conversion, allclose,
// in-place copies, and the PyTorch-like printing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "kernels/view.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const TensorOptions kF64 = TensorOptions{}.with_dtype(DType::float64);

}  // namespace

TEST_CASE("tensor: every dtype round-trips through from_vector / to_vector", "[tensor]") {
  CHECK(from_vector<float>({1.5f, -2.f}, {2}).to_vector<float>() == std::vector<float>{1.5f, -2.f});
  CHECK(from_vector<double>({1.25, -2.}, {2}, kF64).to_vector<double>() ==
        std::vector<double>{1.25, -2.});
  const auto i32 = TensorOptions{}.with_dtype(DType::int32);
  CHECK(from_vector<int32_t>({-7, 8}, {2}, i32).to_vector<int32_t>() == std::vector<int32_t>{-7, 8});
  const auto i64 = TensorOptions{}.with_dtype(DType::int64);
  const int64_t big = int64_t{1} << 40;
  CHECK(from_vector<int64_t>({big, -3}, {2}, i64).to_vector<int64_t>() ==
        std::vector<int64_t>{big, -3});
  const auto u8 = TensorOptions{}.with_dtype(DType::uint8);
  CHECK(from_vector<uint8_t>({0, 255}, {2}, u8).to_vector<uint8_t>() == std::vector<uint8_t>{0, 255});
  const auto b = TensorOptions{}.with_dtype(DType::bool_);
  CHECK(from_vector<bool>({true, false, true}, {3}, b).to_vector<bool>() ==
        std::vector<bool>{true, false, true});

  for (DType dt : {DType::float32, DType::float64, DType::int32, DType::int64, DType::uint8,
                   DType::bool_}) {
    Tensor t = zeros({2, 3}, TensorOptions{}.with_dtype(dt));
    CHECK(t.dtype() == dt);
    CHECK(t.numel() == 6);
    CHECK(static_cast<size_t>(t.storage()->nbytes()) >= 6 * dtype_size(dt));
    CHECK(ones({4}, TensorOptions{}.with_dtype(dt)).to_vector<double>() ==
          std::vector<double>(4, 1.0));
  }
  CHECK(dtype_size(DType::float32) == 4);
  CHECK(dtype_size(DType::int64) == 8);
  CHECK(dtype_size(DType::bool_) == 1);
  CHECK(promote_types(DType::int32, DType::float32) == DType::float32);
  CHECK(promote_types(DType::bool_, DType::uint8) == DType::uint8);
  CHECK(promote_types(DType::float64, DType::float32) == DType::float64);
}

TEST_CASE("tensor: up to 8 dims, 9 is an error", "[tensor]") {
  Tensor t = zeros({1, 2, 1, 2, 1, 2, 1, 2});
  CHECK(t.dim() == 8);
  CHECK(t.numel() == 16);
  CHECK(t.strides() == Shape{16, 8, 8, 4, 4, 2, 2, 1});
  CHECK(t.is_contiguous());
  const std::string msg = error_of([] { zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}); });
  CHECK_THAT(msg, Contains("at most 8 dims"));
  CHECK_THAT(msg, Contains("[1, 1, 1, 1, 1, 1, 1, 1, 1]"));
  CHECK_THAT(error_of([] { zeros({2, -1}); }), Contains("negative size"));
  Tensor s = scalar_tensor(2.5);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item() == 2.5);
  Tensor e = zeros({0, 3});
  CHECK(e.numel() == 0);
  CHECK(e.to_vector<float>().empty());
}

TEST_CASE("tensor: factories", "[tensor]") {
  CHECK(zeros({3}).to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(ones({2}).to_vector<float>() == std::vector<float>{1, 1});
  CHECK(full({2}, -1.5, kF64).to_vector<double>() == std::vector<double>{-1.5, -1.5});
  Tensor r = full({2}, 3.0, kF64.with_requires_grad(true));
  CHECK(r.requires_grad());
  CHECK(r.is_leaf());
  CHECK(zeros_like(r).dtype() == DType::float64);
  CHECK_FALSE(zeros_like(r).requires_grad());
  CHECK(full_like(r, 2.0).to_vector<double>() == std::vector<double>{2.0, 2.0});

  CHECK(arange(0, 5).to_vector<double>() == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25, kF64).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(arange(5, 0, -1.5, kF64).to_vector<double>() == std::vector<double>{5, 3.5, 2, 0.5});
  CHECK(arange(3, 3).numel() == 0);
  CHECK(arange(0, 4, 1, TensorOptions{}.with_dtype(DType::int64)).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 1, 2, 3});
  CHECK_THAT(error_of([] { arange(0, 5, 0); }), Contains("arange: step must be non-zero"));
  CHECK_THAT(error_of([] { arange(0, 5, -1); }), Contains("arange: range [0, 5)"));

  CHECK(linspace(0, 1, 5, kF64).to_vector<double>() ==
        std::vector<double>{0, 0.25, 0.5, 0.75, 1.0});
  CHECK(linspace(2, -2, 3, kF64).to_vector<double>() == std::vector<double>{2, 0, -2});
  CHECK(linspace(7, 9, 1, kF64).to_vector<double>() == std::vector<double>{7});
  CHECK(linspace(7, 9, 0).numel() == 0);
  CHECK_THAT(error_of([] { linspace(0, 1, -1); }), Contains("linspace: steps must be >= 0"));

  const std::string msg = error_of([] { tensor({1, 2, 3}, {2, 2}); });
  CHECK_THAT(msg, Contains("from_vector: 3 values"));
  CHECK_THAT(msg, Contains("[2, 2]"));
  CHECK_THAT(msg, Contains("4 elements"));
  // Data is laid out row-major.
  Tensor m = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, kF64);
  CHECK(m.strides() == Shape{3, 1});
  CHECK(m.data<double>()[4] == 5.0);
}

TEST_CASE("tensor: item and dtype conversion", "[tensor]") {
  CHECK(scalar_tensor(-3.75).item() == -3.75);
  CHECK(tensor({4.0}, {1, 1}).item<float>() == 4.0f);
  CHECK(scalar_tensor(2.9).item<int64_t>() == 2);
  CHECK_THAT(error_of([] { zeros({2}).item(); }), Contains("item: expected a tensor with one element"));

  Tensor f = tensor({2.7, -2.7, 0.0, 1.5}, {4}, kF64);
  // float -> int truncates toward zero, like C++ and PyTorch.
  CHECK(f.to(DType::int32).to_vector<int32_t>() == std::vector<int32_t>{2, -2, 0, 1});
  CHECK(f.to(DType::int64).to_vector<int64_t>() == std::vector<int64_t>{2, -2, 0, 1});
  CHECK(f.to(DType::bool_).to_vector<bool>() == std::vector<bool>{true, true, false, true});
  CHECK(f.to(DType::float32).to_vector<float>() == std::vector<float>{2.7f, -2.7f, 0.0f, 1.5f});
  Tensor i = from_vector<int32_t>({3, -4}, {2}, TensorOptions{}.with_dtype(DType::int32));
  CHECK(i.to(DType::float64).to_vector<double>() == std::vector<double>{3.0, -4.0});
  CHECK(i.to(DType::int32).impl() == i.impl());  // same dtype: the same tensor
  // A differentiable conversion: the gradient comes back in the source dtype.
  Tensor x = tensor({1.0, 2.0}, {2}, kF64.with_requires_grad(true));
  Tensor y = x.to(DType::float32);
  CHECK(y.grad_fn()->name == "to_dtype");
  y.backward(ones({2}));
  CHECK(x.grad().dtype() == DType::float64);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1.0, 1.0});
  // Integer results carry no gradient.
  CHECK_FALSE(x.to(DType::int64).requires_grad());
}

TEST_CASE("tensor: allclose", "[tensor]") {
  Tensor a = tensor({1.0, 2.0}, {2}, kF64);
  CHECK(allclose(a, tensor({1.0, 2.0 + 1e-9}, {2}, kF64)));
  CHECK_FALSE(allclose(a, tensor({1.0, 2.1}, {2}, kF64)));
  CHECK(allclose(a, tensor({1.0, 2.1}, {2}, kF64), 0.0, 0.2));
  CHECK(allclose(a, tensor({1.1, 2.2}, {2}, kF64), 0.11, 0.0));  // rtol is relative to b
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Tensor n = tensor({1.0, nan}, {2}, kF64);
  CHECK_FALSE(allclose(n, n));
  CHECK(allclose(n, n, 1e-5, 1e-8, /*equal_nan=*/true));
  CHECK_FALSE(allclose(n, a, 1e-5, 1e-8, true));
  // Infinities equal only themselves: a finite value is never close to inf, whatever rtol.
  Tensor i = tensor({inf, -inf}, {2}, kF64);
  CHECK(allclose(i, i));
  CHECK_FALSE(allclose(tensor({1e300, -inf}, {2}, kF64), i));
  CHECK_FALSE(allclose(tensor({inf, inf}, {2}, kF64), i));
  CHECK(max_abs_diff(i, i) == 0.0);
  CHECK(max_abs_diff(a, tensor({1.5, 2.0}, {2}, kF64)) == 0.5);
  // Broadcasting; mismatched shapes are an error naming allclose.
  CHECK(allclose(tensor({1.0, 1.0}, {2}, kF64), scalar_tensor(1.0)));
  CHECK_THAT(error_of([&] { allclose(a, zeros({3})); }), Contains("allclose: shapes [2] and [3]"));
}

TEST_CASE("tensor: copy_ and fill_", "[tensor]") {
  Tensor d = zeros({2, 3}, kF64);
  const uint64_t v0 = d.version();
  d.copy_(from_vector<int32_t>({1, 2, 3}, {3}, TensorOptions{}.with_dtype(DType::int32)));
  CHECK(d.to_vector<double>() == std::vector<double>{1, 2, 3, 1, 2, 3});  // broadcast, converted
  CHECK(d.version() == v0 + 1);
  d.fill_(4);
  CHECK(d.version() == v0 + 2);
  CHECK(d.to_vector<double>() == std::vector<double>(6, 4.0));
  CHECK_THAT(error_of([&] { d.copy_(zeros({4})); }), Contains("copy_: cannot broadcast shape [4] to [2, 3]"));

  // Overlapping source and destination in one storage: the result is as if src were read
  // completely before dst is written (NumPy's rule).
  Tensor x = arange(0, 5, 1, kF64);
  slice(x, 0, 1, 5).copy_(slice(x, 0, 0, 4));
  CHECK(x.to_vector<double>() == std::vector<double>{0, 0, 1, 2, 3});
  Tensor m = tensor({1, 2, 3, 4}, {2, 2}, kF64);
  m.copy_(transpose(m, 0, 1));
  CHECK(m.to_vector<double>() == std::vector<double>{1, 3, 2, 4});
  // A destination whose elements overlap (an expanded view) cannot be written elementwise.
  Tensor base = zeros({1, 3}, kF64);
  Tensor wide = expand(base, {2, 3});
  const std::string msg = error_of([&] { wide.copy_(tensor({0, 1, 2, 3, 4, 5}, {2, 3}, kF64)); });
  CHECK_THAT(msg, Contains("copy_"));
  CHECK_THAT(msg, Contains("overlap"));
}

TEST_CASE("tensor: contiguous copies of transposes and permutes, in tiles or not", "[tensor]") {
  // Source values are their flat indices, so element (i_0 .. i_d) of the permuted copy must hold
  // sum_d i_d * (the source's stride of the dimension perm[d]). Sizes around the 32 x 32 tiles.
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const std::vector<Case> cases = {
      {{37, 45}, {1, 0}},        {{32, 64}, {1, 0}},          {{1, 70}, {1, 0}},
      {{3, 33, 70}, {0, 2, 1}},  {{4, 5, 6, 7}, {3, 1, 2, 0}}, {{5, 6, 40}, {2, 0, 1}},
      {{2, 31, 3, 33}, {0, 3, 2, 1}}};
  for (const Case& c : cases) {
    INFO("shape " << c.shape.size() << "-D, first size " << c.shape[0]);
    const int64_t n = numel_of(c.shape);
    const Tensor src = reshape(arange(0, static_cast<double>(n), 1, kF64), c.shape);
    const Tensor view = permute(src, c.perm);
    const Shape st = contiguous_strides(c.shape);
    std::vector<double> want;
    const Shape& vs = view.shape();
    for (int64_t l = 0; l < n; ++l) {
      int64_t rem = l, v = 0;
      for (int d = static_cast<int>(vs.size()) - 1; d >= 0; --d) {
        v += (rem % vs[d]) * st[static_cast<size_t>(c.perm[static_cast<size_t>(d)])];
        rem /= vs[d];
      }
      want.push_back(static_cast<double>(v));
    }
    CHECK(view.contiguous().to_vector<double>() == want);
    // With a dtype conversion on the way (float64 -> float32 is exact for these integers).
    const std::vector<float> f = view.to(DType::float32).to_vector<float>();
    CHECK(std::vector<double>(f.begin(), f.end()) == want);
    // Into a strided destination (a transposed view of a fresh tensor).
    Tensor dst = zeros({vs.back(), vs.front()}, kF64);
    if (vs.size() == 2) {
      transpose(dst, 0, 1).copy_(view);
      CHECK(transpose(dst, 0, 1).to_vector<double>() == want);
    }
  }
}

TEST_CASE("tensor: printing", "[tensor][print]") {
  CHECK(tensor({1.0, -2.5, 3.0, 4.0}, {2, 2}).str() ==
        "tensor([[ 1.0000, -2.5000],\n"
        "        [ 3.0000,  4.0000]])");
  CHECK(from_vector<int64_t>({1, -20, 3}, {3}, TensorOptions{}.with_dtype(DType::int64)).str() ==
        "tensor([  1, -20,   3])");
  CHECK(from_vector<int32_t>({5, 6}, {2}, TensorOptions{}.with_dtype(DType::int32)).str() ==
        "tensor([5, 6], dtype=int32)");
  CHECK(scalar_tensor(3.5).str() == "tensor(3.5000)");
  CHECK(scalar_tensor(7, TensorOptions{}.with_dtype(DType::int64)).str() == "tensor(7)");
  CHECK(tensor({0.5}, {1}, kF64).str() == "tensor([0.5000], dtype=float64)");
  CHECK(from_vector<bool>({true, false}, {2}, TensorOptions{}.with_dtype(DType::bool_)).str() ==
        "tensor([ True, False])");
  CHECK(tensor({1e-5, 1.0}, {2}).str() == "tensor([1.0000e-05, 1.0000e+00])");
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(tensor({std::nan(""), inf, -1.0}, {3}).str() == "tensor([    nan,     inf, -1.0000])");
  CHECK(tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}, {2, 2, 2}).str() ==
        "tensor([[[1.0000, 2.0000],\n"
        "         [3.0000, 4.0000]],\n"
        "\n"
        "        [[5.0000, 6.0000],\n"
        "         [7.0000, 8.0000]]])");
  Tensor x = tensor({1.0, 2.0}, {2}, TensorOptions{}.with_requires_grad(true));
  CHECK(x.str() == "tensor([1.0000, 2.0000], requires_grad=True)");
  CHECK(x.clone().str() == "tensor([1.0000, 2.0000], grad_fn=<clone>)");
  CHECK(Tensor().str() == "tensor(undefined)");

  // More than 1000 elements: the first and last three of each dim, "..." between.
  CHECK(arange(0, 2000, 1, TensorOptions{}.with_dtype(DType::int64)).str() ==
        "tensor([   0,    1,    2, ..., 1997, 1998, 1999], shape=[2000])");
  const std::string big = arange(0, 40 * 40, 1, TensorOptions{}.with_dtype(DType::int64))
                              .str();  // 1-D: one line
  CHECK(big.find('\n') == std::string::npos);
  Tensor m = zeros({100, 100}, TensorOptions{}.with_dtype(DType::int64));
  const std::string sm = m.str();
  CHECK_THAT(sm, Contains("..."));
  CHECK(std::count(sm.begin(), sm.end(), '\n') == 6);  // 3 rows, "...", 3 rows
  CHECK_THAT(sm, Contains("shape=[100, 100]"));
}

TEST_CASE("empty tensors count as contiguous whatever their strides", "[tensor]") {
  const Tensor e = zeros({2, 0, 3});
  CHECK(e.is_contiguous());
  CHECK(make_view(e, {0, 2}, {1, 7}, 0).is_contiguous());
  CHECK(e.contiguous().impl() == e.impl());  // no copy
}
