// Tests of softmax and log_softmax (kernels/softmax.h): hand cases whose probabilities are
// simple fractions (logits log 1, log 2, log 3 give 1/6, 2/6, 3/6), huge logits (the max shift),
// the non-finite rows PyTorch defines, gradchecks along every kind of dim (last, first, middle:
// the strided-row path), and agreement between the contiguous-row and strided-row loops.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "kernels/softmax.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "tests/support/op_registry.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double l2 = std::log(2.0), l3 = std::log(3.0);

OpFn along(bool log, int64_t dim) {
  return [log, dim](const TensorList& xs) {
    return log ? log_softmax(xs[0], dim) : softmax(xs[0], dim);
  };
}

// `expected` maps a probability p to the op's output: p for softmax, log p for log_softmax.
std::vector<OpSample> softmax_samples(bool log) {
  auto out = [log](std::vector<double> p) {
    for (double& v : p) v = log ? std::log(v) : v;
    return p;
  };
  std::vector<OpSample> s;
  s.push_back({"hand [0, log 2, log 3]", {t64({0, l2, l3}, {3})},
               t64(out({1.0 / 6, 2.0 / 6, 3.0 / 6}), {3}, false), true, nullptr});
  // dim 0 of [[0, log 3], [log 3, 0]]: each column is [1/4, 3/4] or [3/4, 1/4].
  s.push_back({"hand dim 0", {t64({0, l3, l3, 0}, {2, 2})}, t64(out({0.25, 0.75, 0.75, 0.25}), {2, 2}, false),
               true, along(log, 0)});
  // Without the max shift exp(1000) overflows.
  s.push_back({"hand huge logits", {t64({1000, 1000 + l3, -1000, -1000 + l2}, {2, 2})},
               t64(out({0.25, 0.75, 1.0 / 3, 2.0 / 3}), {2, 2}, false), true, nullptr});
  // -inf entries get probability 0; an all -inf row and +inf give NaN (as PyTorch).
  s.push_back({"hand -inf entry", {t64({-kInf, 0, l3}, {3}, false)}, t64(out({0, 0.25, 0.75}), {3}, false),
               false, nullptr});
  s.push_back({"hand all -inf row", {t64({-kInf, -kInf, 0, 0}, {2, 2}, false)},
               t64({kNaN, kNaN, out({0.5})[0], out({0.5})[0]}, {2, 2}, false), false, nullptr});
  s.push_back({"hand +inf entry", {t64({0, kInf}, {2}, false)}, t64({out({0.0})[0], kNaN}, {2}, false),
               false, nullptr});
  s.push_back({"hand NaN poisons its row", {t64({kNaN, 0, 1, 2}, {2, 2}, false)},
               t64({kNaN, kNaN, out({1 / (1 + std::exp(1.0))})[0], out({1 / (1 + std::exp(-1.0))})[0]},
                   {2, 2}, false),
               false, nullptr});
  s.push_back({"hand scalar", {t64({2.5}, {})}, t64(out({1.0}), {}, false), true, nullptr});
  s.push_back({"rows 4x7", {uniform64({4, 7}, -3, 3, 1)}, Tensor(), true, nullptr});
  s.push_back({"dim 0 of 5x3", {uniform64({5, 3}, -3, 3, 2)}, Tensor(), true, along(log, 0)});
  s.push_back({"middle dim of 2x4x3", {uniform64({2, 4, 3}, -3, 3, 3)}, Tensor(), true, along(log, 1)});
  s.push_back({"dim -2 of a transposed view", {uniform64({3, 4}, -3, 3, 4)}, Tensor(), true,
               [log](const TensorList& xs) {
                 const Tensor t = transpose(xs[0], 0, 1);
                 return log ? log_softmax(t, -2) : softmax(t, -2);
               }});
  s.push_back({"empty 0x4", {uniform64({0, 4}, -3, 3, 5)}, Tensor(), true, nullptr});
  s.push_back({"long row 2x300", {uniform64({2, 300}, -3, 3, 6)}, Tensor(), true, nullptr});
  return s;
}

}  // namespace

CVG_REGISTER_OP(OpSpec{"softmax", along(false, -1), [] { return softmax_samples(false); }});
CVG_REGISTER_OP(OpSpec{"log_softmax", along(true, -1), [] { return softmax_samples(true); }});

TEST_CASE("softmax: strided rows (inner > 1) match contiguous rows, rows sum to 1", "[ops][softmax]") {
  // dim 1 of [2, 100, 70]: rows of 100 with stride 70, more columns than one 64-wide task.
  const Tensor x = randn({2, 100, 70}) * 4.0;
  const Tensor y = softmax(x, 1);
  const Tensor ref = permute(softmax(permute(x, {0, 2, 1}).contiguous(), -1), {0, 2, 1});
  CHECK(allclose(y, ref, 1e-6, 1e-7));
  CHECK(allclose(sum(y, {1}), ones({2, 70}), 1e-5, 1e-5));
  const Tensor ly = log_softmax(x, 1);
  CHECK(allclose(ly, log(y), 1e-4, 1e-5));
  // log_softmax stays finite where softmax underflows to 0.
  const Tensor far = log_softmax(tensor({0, -200}, {2}).to(DType::float32), 0);
  CHECK(std::isfinite(far.to_vector<double>()[1]));
  CHECK(far.to_vector<double>()[1] == Approx(-200).epsilon(1e-6));
}

TEST_CASE("softmax: long rows agree with a two-pass reference", "[ops][softmax]") {
  const Tensor x = randn({3, 5000}, TensorOptions{}.with_dtype(DType::float64)) * 10.0;
  const std::vector<double> v = x.to_vector<double>();
  const std::vector<double> y = softmax(x, 1).to_vector<double>();
  for (int r = 0; r < 3; ++r) {
    double m = -kInf, s = 0;
    for (int j = 0; j < 5000; ++j) m = std::max(m, v[r * 5000 + j]);
    for (int j = 0; j < 5000; ++j) s += std::exp(v[r * 5000 + j] - m);
    for (int j = 0; j < 5000; j += 499)
      CHECK(y[r * 5000 + j] == Approx(std::exp(v[r * 5000 + j] - m) / s).epsilon(1e-12));
  }
}

TEST_CASE("softmax: gradient of a -inf entry is zero, not NaN", "[ops][softmax]") {
  Tensor x = tensor({-kInf, 0, 1}, {3}).set_requires_grad(true);
  Tensor g = tensor({1, 2, 3}, {3});
  const TensorList gx = grad({softmax(x, 0)}, {x}, {g});
  const std::vector<double> v = gx[0].to_vector<double>();
  CHECK(v[0] == 0.0);
  CHECK(std::isfinite(v[1]));
  CHECK(std::isfinite(v[2]));
}

TEST_CASE("softmax: errors name the op", "[ops][softmax][errors]") {
  REQUIRE_THROWS_WITH(softmax(zeros({2, 3}), 2), Contains("softmax"));
  REQUIRE_THROWS_WITH(log_softmax(zeros({2, 3}, TensorOptions{}.with_dtype(DType::int64)), 1),
                      Contains("log_softmax") && Contains("int64"));
}

namespace {

// softmax / log_softmax of x along `dim`, worked out in double with std::exp in the two-pass
// textbook way, as a flat vector in x's layout (x contiguous).
std::vector<double> softmax_reference(const Tensor& x, int dim, bool log) {
  const std::vector<double> v = x.to_vector<double>();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; ++i) outer *= x.shape()[i];
  for (int i = dim + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  const int64_t D = x.shape()[dim];
  std::vector<double> y(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t d) { return (o * D + d) * inner + i; };
      double m = -kInf, s = 0;
      for (int64_t d = 0; d < D; ++d) m = std::max(m, v[at(d)]);
      for (int64_t d = 0; d < D; ++d) s += std::exp(v[at(d)] - m);
      for (int64_t d = 0; d < D; ++d)
        y[at(d)] = log ? v[at(d)] - m - std::log(s) : std::exp(v[at(d)] - m) / s;
    }
  return y;
}

// Largest |got - want| / (|want| + floor) over finite entries; a non-finite mismatch counts as
// infinitely far.
double worst_rel(const std::vector<double>& got, const std::vector<double>& want, double floor) {
  double worst = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    if (!std::isfinite(want[k])) {
      if (!(got[k] == want[k])) return kInf;
      continue;
    }
    worst = std::max(worst, std::fabs(got[k] - want[k]) / (std::fabs(want[k]) + floor));
  }
  return worst;
}

}  // namespace

// The CPU fast path (max pass, exp pass with 8 partial sums, scaling pass) on row lengths around
// the lane count and the 64-column chunk of the strided path, in both dtypes, against a float64
// std::exp reference. -inf entries stay on the fast path and must give 0 / -inf.
TEST_CASE("softmax: CPU fast path matches a std::exp reference at odd sizes", "[ops][softmax]") {
  for (DType dt : {DType::float32, DType::float64}) {
    // float32: x - max itself rounds by up to 2e-6 absolute at |x - max| ~ 60, which exp turns
    // into a relative error of that size, on top of exp_nonpositive's few ulp.
    const double tol = dt == DType::float32 ? 1e-5 : 1e-13;
    const Shape shapes[] = {{3, 1},  {3, 7},  {2, 8},  {4, 9},      {3, 17},     {2, 1000},
                            {5, 1, 3}, {2, 9, 5}, {2, 33, 64}, {2, 31, 67}, {1, 300, 130}};
    for (const Shape& shape : shapes)
      for (int dim = 0; dim < static_cast<int>(shape.size()); ++dim)
        for (bool log : {false, true}) {
          Tensor x = (uniform64(shape, -30, 30, 900 + shape[0] * 7 + dim, false)).to(dt);
          // One -inf entry (flat element 0) where its row still has a finite maximum.
          if (shape[dim] > 1) {
            std::vector<double> v = x.to_vector<double>();
            v[0] = -kInf;
            x = t64(v, shape, false).to(dt);
          }
          const Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
          std::string label = dtype_name(dt);
          for (int64_t n : shape) label.append(" ").append(std::to_string(n));
          INFO(label << " dim " << dim << (log ? " log" : ""));
          // Relative for probabilities (floor 1e-30); log-probabilities are O(10) here, so a
          // relative measure with floor 1 is close to absolute.
          CHECK(worst_rel(y.to_vector<double>(), softmax_reference(x.to(DType::float64), dim, log),
                          log ? 1.0 : 1e-30) < tol);
        }
  }
}

// A batch whose rows take different paths (finite rows the fast path; NaN, +inf and all -inf
// rows the online reference): each row gets its own answer, in the contiguous layout and in
// the strided one (where a bad column sends its whole 64-column chunk to the reference path).
TEST_CASE("softmax: rows needing the reference path do not disturb their neighbours", "[ops][softmax]") {
  const std::vector<double> rows = {0, 1, 2, 3,  kNaN, 1, 2, 3,  -kInf, -kInf, -kInf, -kInf,
                                    0, kInf, 1, 2,  -kInf, 5, -1, 4};
  const double e = std::exp(1.0);
  const double z1 = 1 + e + e * e + e * e * e, z5 = std::exp(5.0) + std::exp(-1.0) + std::exp(4.0);
  const std::vector<double> want = {1 / z1, e / z1, e * e / z1, e * e * e / z1,
                                    kNaN, kNaN, kNaN, kNaN,  kNaN, kNaN, kNaN, kNaN,
                                    0, kNaN, 0, 0,
                                    0, std::exp(5.0) / z5, std::exp(-1.0) / z5, std::exp(4.0) / z5};
  auto same = [](const std::vector<double>& got, const std::vector<double>& ref) {
    REQUIRE(got.size() == ref.size());
    for (size_t k = 0; k < got.size(); ++k) {
      INFO("element " << k << " got " << got[k] << " want " << ref[k]);
      if (std::isnan(ref[k])) CHECK(std::isnan(got[k]));
      else CHECK(got[k] == Approx(ref[k]).epsilon(2e-6).margin(1e-30));
    }
  };
  for (DType dt : {DType::float32, DType::float64}) {
    const Tensor x = t64(rows, {5, 4}, false).to(dt);
    same(softmax(x, 1).to_vector<double>(), want);
    // The same rows as columns of a [4, 5] tensor (inner = 5), and again with 66 more finite
    // columns so that the bad columns share a chunk with good ones and a second chunk is clean.
    same(transpose(softmax(transpose(x, 0, 1).contiguous(), 0), 0, 1).contiguous().to_vector<double>(),
         want);
    const Tensor wide = cat({transpose(x, 0, 1), uniform64({4, 66}, -2, 2, 950, false).to(dt)}, 1).contiguous();
    const Tensor ys = softmax(wide, 0);
    same(transpose(narrow(ys, 1, 0, 5), 0, 1).contiguous().to_vector<double>(), want);
    const Tensor rest = narrow(wide, 1, 5, 66).contiguous();
    CHECK(worst_rel(narrow(ys, 1, 5, 66).contiguous().to_vector<double>(),
                    softmax_reference(rest.to(DType::float64), 0, false), 1e-30) < 1e-5);
  }
}

#ifdef _OPENMP
TEST_CASE("softmax: CPU results do not depend on the thread count", "[ops][softmax]") {
  const Tensor rows = randn({300, 257}) * 5.0, cols = randn({7, 130, 70}) * 5.0;
  auto run = [&] {
    std::vector<double> v = softmax(rows, 1).to_vector<double>();
    for (const Tensor& t : {log_softmax(rows, 1), softmax(cols, 1), log_softmax(cols, 1)}) {
      const std::vector<double> w = t.to_vector<double>();
      v.insert(v.end(), w.begin(), w.end());
    }
    return v;
  };
  const auto [one, three] = at_one_and_three_threads(run);
  CHECK(one == three);
}
#endif
