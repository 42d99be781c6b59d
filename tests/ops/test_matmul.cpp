// Tests of matmul, mm, bmm and linear (kernels/matmul.h): registry entries (hand cases,
// gradcheck and gradgradcheck over every shape rule of torch.matmul, transposed and broadcast
// operands), the BLAS path against the portable blocked loop and a naive triple loop on odd
// shapes and strides, and the error messages.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/matmul.h"
#include "kernels/reduce.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

OpFn two(std::function<Tensor(const Tensor&, const Tensor&)> f) {
  return [f](const TensorList& xs) { return f(xs[0], xs[1]); };
}

std::vector<OpSample> matmul_samples() {
  std::vector<OpSample> s;
  // [[1,2,3],[4,5,6]] @ [[1,0],[0,1],[1,1]] = [[1+3, 2+3], [4+6, 5+6]]
  s.push_back({"hand 2x3 @ 3x2", {t64({1, 2, 3, 4, 5, 6}, {2, 3}), t64({1, 0, 0, 1, 1, 1}, {3, 2})},
               t64({4, 5, 10, 11}, {2, 2}, false), true, nullptr});
  // 1*4 + 2*5 + 3*6 = 32, a 0-d result
  s.push_back({"hand dot", {t64({1, 2, 3}, {3}), t64({4, 5, 6}, {3})}, t64({32}, {}, false), true,
               nullptr});
  // [1,2] @ [[1,2,3],[4,5,6]] = [1+8, 2+10, 3+12]
  s.push_back({"hand vector @ matrix", {t64({1, 2}, {2}), t64({1, 2, 3, 4, 5, 6}, {2, 3})},
               t64({9, 12, 15}, {3}, false), true, nullptr});
  // [[1,2,3],[4,5,6]] @ [1,0,-1] = [1-3, 4-6]
  s.push_back({"hand matrix @ vector", {t64({1, 2, 3, 4, 5, 6}, {2, 3}), t64({1, 0, -1}, {3})},
               t64({-2, -2}, {2}, false), true, nullptr});
  // K = 0: an empty sum is 0 everywhere.
  s.push_back({"hand empty inner dim", {t64({}, {2, 0}), t64({}, {0, 3})},
               t64({0, 0, 0, 0, 0, 0}, {2, 3}, false), true, nullptr});
  s.push_back({"empty rows 0x3 @ 3x2", {uniform64({0, 3}, -1, 1, 18), uniform64({3, 2}, -1, 1, 19)},
               Tensor(), true, nullptr});
  s.push_back({"3x4 @ 4x5", {uniform64({3, 4}, -1, 1, 1), uniform64({4, 5}, -1, 1, 2)}, Tensor(),
               true, nullptr});
  s.push_back({"batch broadcast 2x1x3x4 @ 3x4x2",
               {uniform64({2, 1, 3, 4}, -1, 1, 3), uniform64({3, 4, 2}, -1, 1, 4)}, Tensor(), true,
               nullptr});
  s.push_back({"batched @ matrix (rows folded) 2x3x4 @ 4x5",
               {uniform64({2, 3, 4}, -1, 1, 5), uniform64({4, 5}, -1, 1, 6)}, Tensor(), true,
               nullptr});
  s.push_back({"matrix @ batched 3x4 @ 2x4x5",
               {uniform64({3, 4}, -1, 1, 7), uniform64({2, 4, 5}, -1, 1, 8)}, Tensor(), true,
               nullptr});
  s.push_back({"vector @ batched 4 @ 2x4x3", {uniform64({4}, -1, 1, 9), uniform64({2, 4, 3}, -1, 1, 10)},
               Tensor(), true, nullptr});
  s.push_back({"batched @ vector 2x3x4 @ 4", {uniform64({2, 3, 4}, -1, 1, 11), uniform64({4}, -1, 1, 12)},
               Tensor(), true, nullptr});
  // Transposed operands reach BLAS as transpose flags.
  s.push_back({"a^T @ b^T", {uniform64({4, 3}, -1, 1, 13), uniform64({5, 4}, -1, 1, 14)}, Tensor(),
               true, two([](const Tensor& a, const Tensor& b) {
                 return matmul(transpose(a, 0, 1), transpose(b, 0, 1));
               })});
  // A transposed batched operand that cannot be folded into rows.
  s.push_back({"transposed batch 2x4x3 ^T @ 4x2", {uniform64({2, 4, 3}, -1, 1, 15), uniform64({4, 2}, -1, 1, 16)},
               Tensor(), true, two([](const Tensor& a, const Tensor& b) {
                 return matmul(transpose(a, 1, 2), b);
               })});
  // Same operand on both sides: gradients from both paths add up.
  s.push_back({"a @ a^T", {uniform64({3, 4}, -1, 1, 17)}, Tensor(), true,
               [](const TensorList& xs) { return matmul(xs[0], transpose(xs[0], 0, 1)); }});
  return s;
}

}  // namespace

CVG_REGISTER_OP(OpSpec{"matmul", two([](const Tensor& a, const Tensor& b) { return matmul(a, b); }),
                       matmul_samples});

CVG_REGISTER_OP(OpSpec{
    "mm", two([](const Tensor& a, const Tensor& b) { return mm(a, b); }), [] {
      return std::vector<OpSample>{
          // [[1,2],[3,4]] @ [[0,1],[1,0]] swaps the columns.
          {"hand", {t64({1, 2, 3, 4}, {2, 2}), t64({0, 1, 1, 0}, {2, 2})},
           t64({2, 1, 4, 3}, {2, 2}, false), true, nullptr},
          {"5x3 @ 3x4", {uniform64({5, 3}, -1, 1, 21), uniform64({3, 4}, -1, 1, 22)}, Tensor(), true,
           nullptr}};
    }});

CVG_REGISTER_OP(OpSpec{
    "bmm", two([](const Tensor& a, const Tensor& b) { return bmm(a, b); }), [] {
      return std::vector<OpSample>{
          // [1,2].[5,6] = 17 and [3,4].[7,8] = 53
          {"hand", {t64({1, 2, 3, 4}, {2, 1, 2}), t64({5, 6, 7, 8}, {2, 2, 1})},
           t64({17, 53}, {2, 1, 1}, false), true, nullptr},
          {"3x2x4 @ 3x4x5", {uniform64({3, 2, 4}, -1, 1, 23), uniform64({3, 4, 5}, -1, 1, 24)},
           Tensor(), true, nullptr},
          {"transposed 3x4x2 ^T @ 3x5x4 ^T",
           {uniform64({3, 4, 2}, -1, 1, 25), uniform64({3, 5, 4}, -1, 1, 26)}, Tensor(), true,
           two([](const Tensor& a, const Tensor& b) {
             return bmm(transpose(a, 1, 2), transpose(b, 1, 2));
           })}};
    }});

CVG_REGISTER_OP(OpSpec{
    "linear", [](const TensorList& xs) { return linear(xs[0], xs[1], xs[2]); }, [] {
      return std::vector<OpSample>{
          // x = [1, 2], W = [[1,0],[0,1],[1,1]], b = [0.5, -1, 2]: x W^T + b = [1.5, 1, 5]
          {"hand", {t64({1, 2}, {1, 2}), t64({1, 0, 0, 1, 1, 1}, {3, 2}), t64({0.5, -1, 2}, {3})},
           t64({1.5, 1, 5}, {1, 3}, false), true, nullptr},
          {"batch 4x3, out 2", {uniform64({4, 3}, -1, 1, 31), uniform64({2, 3}, -1, 1, 32), uniform64({2}, -1, 1, 33)},
           Tensor(), true, nullptr},
          {"sequence 2x3x4, out 5", {uniform64({2, 3, 4}, -1, 1, 34), uniform64({5, 4}, -1, 1, 35),
                                     uniform64({5}, -1, 1, 36)},
           Tensor(), true, nullptr},
          {"no bias, 1-D x", {uniform64({3}, -1, 1, 37), uniform64({2, 3}, -1, 1, 38)}, Tensor(), true,
           [](const TensorList& xs) { return linear(xs[0], xs[1]); }}};
    }});

namespace {

// out[b] = a[b] @ c[b] with a naive triple loop in double (the reference).
std::vector<double> naive_bmm(const Tensor& a, const Tensor& b) {
  const Tensor a64 = a.to(DType::float64).contiguous(), b64 = b.to(DType::float64).contiguous();
  const int64_t B = a.shape()[0], M = a.shape()[1], K = a.shape()[2], N = b.shape()[2];
  const double* pa = a64.data<double>();
  const double* pb = b64.data<double>();
  std::vector<double> out(B * M * N, 0.0);
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += pa[(bi * M + i) * K + k] * pb[(bi * K + k) * N + j];
        out[(bi * M + i) * N + j] = acc;
      }
  return out;
}

void check_gemm_paths(const Tensor& a, const Tensor& b, double tol) {
  const int64_t B = a.shape()[0], M = a.shape()[1], N = b.shape()[2];
  const TensorOptions o = TensorOptions{}.with_dtype(a.dtype());
  Tensor via_blas = Tensor::empty({B, M, N}, o), via_loop = Tensor::empty({B, M, N}, o);
  bmm_cpu(a, b, via_blas);
  gemm_fallback_cpu(a, b, via_loop);
  const Tensor ref = from_vector(naive_bmm(a, b), {B, M, N}, TensorOptions{}.with_dtype(DType::float64));
  CHECK(allclose(via_loop.to(DType::float64), ref, tol, tol));
  CHECK(allclose(via_blas.to(DType::float64), ref, tol, tol));
  CHECK(allclose(via_blas, via_loop, tol, tol));
}

}  // namespace

TEST_CASE("matmul: BLAS path and blocked fallback agree with a naive loop on odd shapes and strides",
          "[ops][matmul]") {
  for (DType dt : {DType::float64, DType::float32}) {
    const double tol = dt == DType::float64 ? 1e-12 : 2e-5;
    const TensorOptions o = TensorOptions{}.with_dtype(dt);
    INFO(dtype_name(dt));
    SECTION("dense, sizes that straddle every block size") {
      // M crosses the 64-row task size, K the 256 panel depth, N the 512 panel width.
      check_gemm_paths(randn({2, 67, 259}, o), randn({2, 259, 515}, o), tol * 10);
    }
    SECTION("transposed views of a and b") {
      const Tensor a = transpose(randn({3, 29, 17}, o), 1, 2);   // [3, 17, 29], column-major
      const Tensor b = transpose(randn({3, 13, 29}, o), 1, 2);   // [3, 29, 13]
      check_gemm_paths(a, b, tol);
    }
    SECTION("a read transposed, over several 64-row blocks of a small product") {
      const Tensor a = transpose(randn({2, 40, 150}, o), 1, 2);  // [2, 150, 40], column-major
      check_gemm_paths(a, randn({2, 40, 33}, o), tol);
    }
    SECTION("broadcast batch (stride 0) and strided slices") {
      const Tensor base = randn({1, 9, 40}, o);
      const Tensor a = make_view(base, {4, 9, 20}, {0, 40, 2}, 0);  // every other column, repeated
      const Tensor b = slice(randn({4, 30, 7}, o), 1, 5, 25);       // rows 5..24 of each batch
      check_gemm_paths(a, b, tol);
    }
    SECTION("vectors and single rows / columns") {
      check_gemm_paths(randn({1, 1, 33}, o), randn({1, 33, 1}, o), tol);
      check_gemm_paths(randn({5, 31, 1}, o), randn({5, 1, 3}, o), tol);
      check_gemm_paths(slice(randn({2, 3, 8}, o), 2, 0, 8, 4), randn({2, 2, 6}, o), tol);
    }
  }
}

TEST_CASE("matmul: a small product gives the same bits at 1 and 3 threads", "[ops][matmul]") {
  // Small products are split into fixed blocks of rows over the threads (kernels/matmul_cpu.cpp).
  manual_seed(41);
  const Tensor a = randn({3, 130, 70}), b = randn({3, 70, 90});
  const auto [one, three] = at_one_and_three_threads([&] { return matmul(a, b); });
  CHECK(max_abs_diff(one, three) == 0.0);
}

TEST_CASE("matmul: folded batch, broadcast and transposed operands match per-batch products",
          "[ops][matmul]") {
  const Tensor a = randn({2, 3, 5, 4});
  const Tensor w = randn({6, 4});
  // linear on a 4-D input folds [2, 3, 5] into 30 rows of one GEMM with a transposed weight.
  const Tensor y = linear(a, w);
  REQUIRE(y.shape() == Shape{2, 3, 5, 6});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      const Tensor ref = mm(select(select(a, 0, i), 0, j), transpose(w, 0, 1).contiguous());
      CHECK(allclose(select(select(y, 0, i), 0, j), ref, 1e-5, 1e-5));
    }
  // [2, 1, 5, 4] x [3, 4, 2] -> [2, 3, 5, 2]
  const Tensor p = randn({2, 1, 5, 4}), q = randn({3, 4, 2});
  const Tensor r = matmul(p, q);
  REQUIRE(r.shape() == Shape{2, 3, 5, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      CHECK(allclose(select(select(r, 0, i), 0, j), mm(select(select(p, 0, i), 0, 0), select(q, 0, j)),
                     1e-5, 1e-5));
}

TEST_CASE("matmul: gradients of broadcast batch dims are summed", "[ops][matmul]") {
  // d/dB sum(A @ B) for A [3, 2, 4] and a shared B [4, 5]: every batch adds A[b]^T @ ones.
  Tensor A = randn({3, 2, 4}, TensorOptions{}.with_dtype(DType::float64));
  Tensor B = randn({4, 5}, TensorOptions{}.with_dtype(DType::float64).with_requires_grad(true));
  sum(matmul(A, B)).backward();
  const Tensor expected = sum(matmul(transpose(A, 1, 2), ones({3, 2, 5}, A.options())), {0});
  CHECK(allclose(B.grad(), expected, 1e-12, 1e-12));
}

TEST_CASE("matmul: errors name the op and the offending shapes or dtypes", "[ops][matmul][errors]") {
  const Tensor a = zeros({2, 3}), b = zeros({4, 5});
  REQUIRE_THROWS_WITH(matmul(a, b), Contains("matmul") && Contains("[2, 3]") && Contains("[4, 5]"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 2, 3}), zeros({3, 3, 4})), Contains("matmul"));
  REQUIRE_THROWS_WITH(matmul(zeros({}), zeros({3})), Contains("at least 1-D"));
  REQUIRE_THROWS_WITH(matmul(zeros({3}), zeros({4})), Contains("dot product"));
  const TensorOptions i64 = TensorOptions{}.with_dtype(DType::int64);
  REQUIRE_THROWS_WITH(matmul(zeros({2, 2}, i64), zeros({2, 2}, i64)),
                      Contains("matmul") && Contains("int64"));
  REQUIRE_THROWS_WITH(matmul(zeros({2, 2}), zeros({2, 2}, TensorOptions{}.with_dtype(DType::float64))),
                      Contains("same dtype"));
  REQUIRE_THROWS_WITH(mm(zeros({2, 2, 2}), zeros({2, 2})), Contains("mm: expected 2-D"));
  REQUIRE_THROWS_WITH(bmm(zeros({2, 2, 3}), zeros({3, 3, 4})), Contains("bmm: batch sizes differ"));
  REQUIRE_THROWS_WITH(bmm(zeros({2, 3}), zeros({3, 4})), Contains("bmm: expected 3-D"));
  REQUIRE_THROWS_WITH(linear(zeros({2, 5}), zeros({3, 4})),
                      Contains("linear") && Contains("5 features"));
  REQUIRE_THROWS_WITH(linear(zeros({2, 4}), zeros({3, 4}), zeros({4})), Contains("linear: bias"));
}
