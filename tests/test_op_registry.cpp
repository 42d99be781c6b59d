// Runs the op registry (tests/support/op_registry.h): hand-computed forward cases, float64
// gradcheck and gradgradcheck, and float32-vs-float64 agreement for every registered sample.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/autograd.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

TensorList to_f32(const TensorList& xs) {
  TensorList out;
  for (const Tensor& x : xs) {
    if (!x.defined()) { out.emplace_back(); continue; }
    Tensor y = is_floating(x.dtype()) ? x.detach().to(DType::float32) : x.detach();
    out.push_back(y);
  }
  return out;
}

const OpFn& fn_of(const OpSpec& spec, const OpSample& s) { return s.fn ? s.fn : spec.fn; }

}  // namespace

TEST_CASE("op registry is populated", "[ops]") {
  REQUIRE(op_registry().size() > 0);
}

TEST_CASE("op registry: hand-computed forward cases", "[ops]") {
  int checked = 0;
  for (const OpSpec& spec : op_registry()) {
    for (const OpSample& s : spec.samples()) {
      if (!s.expected.defined()) continue;
      INFO(spec.name << " / " << s.label);
      const Tensor out = fn_of(spec, s)(s.inputs);
      REQUIRE(out.shape() == s.expected.shape());
      CHECK(allclose(out, s.expected, 1e-12, 1e-12, /*equal_nan=*/true));
      if (!allclose(out, s.expected, 1e-12, 1e-12, true)) {
        WARN("got " << out << "\nexpected " << s.expected);
      }
      ++checked;
    }
  }
  CHECK(checked > 0);
}

TEST_CASE("op registry: every differentiable op passes gradcheck in float64", "[ops][grad]") {
  // CVG_REGISTRY_TIMES=1 prints each op's gradcheck time (to find what makes the suite slow).
  const bool report = std::getenv("CVG_REGISTRY_TIMES") != nullptr;
  for (const OpSpec& spec : op_registry()) {
    if (!spec.differentiable) continue;
    const auto t0 = std::chrono::steady_clock::now();
    bool any = false;
    for (const OpSample& s : spec.samples()) {
      if (!s.gradcheck) continue;
      any = true;
      INFO(spec.name << " / " << s.label);
      GradcheckOptions opt;
      opt.atol = spec.grad_atol;
      opt.rtol = spec.grad_rtol;
      const GradcheckResult r = gradcheck(fn_of(spec, s), s.inputs, opt);
      INFO(r.message);
      CHECK(r.ok);
      if (spec.gradgrad) {
        const GradcheckResult r2 = gradgradcheck(fn_of(spec, s), s.inputs, opt);
        INFO("second derivative: " << r2.message);
        CHECK(r2.ok);
      }
    }
    INFO(spec.name << " registers no gradcheck sample");
    CHECK(any);
    if (report)
      std::fprintf(stderr, "gradcheck %-36s %8.3f s\n", spec.name.c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

TEST_CASE("op registry: float32 forward agrees with float64", "[ops]") {
  for (const OpSpec& spec : op_registry()) {
    for (const OpSample& s : spec.samples()) {
      INFO(spec.name << " / " << s.label);
      NoGradGuard no_grad;
      const Tensor ref = fn_of(spec, s)(s.inputs);
      const Tensor got = fn_of(spec, s)(to_f32(s.inputs));
      REQUIRE(got.shape() == ref.shape());
      CHECK(allclose(got, ref, spec.f32_tol, spec.f32_tol, /*equal_nan=*/true));
    }
  }
}
