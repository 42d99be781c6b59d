#pragma once
// The op registry: one table that drives the tests of every op (an OpInfo-lite).
//
// A test file registers an OpSpec per op with CVG_REGISTER_OP. Each spec lists samples: float64
// CPU inputs (those with requires_grad are differentiated), optionally a hand-computed
// expected output. tests/test_op_registry.cpp then runs, for every sample of every op:
//   1. forward == expected (when given), within 1e-12 (exact for hand cases in float64);
//   2. gradcheck in float64 (central differences, tests/support/gradcheck.h);
//   3. gradgradcheck when the spec asks for second derivatives;
//   4. the float32 forward against the float64 one (within spec.f32_tol);
//   5. [cuda] forward and backward on the GPU against the CPU float64 reference
//      (tests/test_op_registry_cuda.cpp; skipped without a GPU).
// Samples should keep inputs away from kinks and ties (see gradcheck.h).
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::testing {

using OpFn = std::function<Tensor(const TensorList&)>;

struct OpSample {
  std::string label;
  TensorList inputs;        // float64 CPU
  Tensor expected;          // optional hand-computed output
  bool gradcheck = true;    // false for samples at purpose-built kinks or ties
  OpFn fn;                  // optional: overrides spec.fn for this sample (e.g. other arguments)
};

struct OpSpec {
  std::string name;
  OpFn fn;
  std::function<std::vector<OpSample>()> samples;
  bool gradgrad = true;         // also check second derivatives
  bool differentiable = true;   // false: comparisons, argmax, ...
  double f32_tol = 1e-4;        // float32 vs float64 forward (atol and rtol)
  double cuda_tol = 1e-4;       // GPU float32 vs CPU float64 (atol and rtol)
  double grad_atol = 1e-5, grad_rtol = 1e-3;
};

std::vector<OpSpec>& op_registry();
struct OpRegistrar {
  explicit OpRegistrar(OpSpec spec) { op_registry().push_back(std::move(spec)); }
};

// Helpers for writing samples.
// A float64 CPU tensor from values (requires grad when `grad`).
Tensor t64(const std::vector<double>& values, const Shape& shape, bool grad = true);
// Random float64 values in [lo, hi), requires grad; deterministic per `seed`.
Tensor uniform64(const Shape& shape, double lo, double hi, uint64_t seed, bool grad = true);
// Random values in [lo, hi) whose magnitudes are at least `margin` (keeps away from 0-kinks).
Tensor away_from_zero64(const Shape& shape, double lo, double hi, double margin, uint64_t seed);
// A random permutation of distinct values spaced by `gap` (no ties; for max, sort, pooling).
Tensor distinct64(const Shape& shape, double gap, uint64_t seed, bool grad = true);

}  // namespace cvg::testing

#define CVG_OP_CONCAT2(a, b) a##b
#define CVG_OP_CONCAT(a, b) CVG_OP_CONCAT2(a, b)
// CVG_REGISTER_OP(OpSpec{...}); at namespace scope in a test file.
#define CVG_REGISTER_OP(...) \
  static ::cvg::testing::OpRegistrar CVG_OP_CONCAT(cvg_op_registrar_, __LINE__)(__VA_ARGS__)
