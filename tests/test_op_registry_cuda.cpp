// The [cuda] column of the op registry: every sample of every op runs forward and backward in
// float32 on the GPU and is compared with the CPU float64 reference, within rtol = spec.cuda_tol
// and atol = spec.cuda_tol x max(1, the largest |reference| of that tensor): a float32 sum's
// rounding error scales with the size of its terms, not of its result, so an output near 0 of a
// long sum (a convolution's weight gradient over 756 positions, |largest| 54, is off by 2e-4
// when cuDNN picks another algorithm under compute-sanitizer) is judged against the tensor's
// scale. Inputs move to the GPU as fresh leaves, so each op's CUDA kernels and the
// CUDA kernels of its backward ops are exercised.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/deepmatch.h"
#include "tests/support/op_registry.h"

using namespace cvg;
using namespace cvg::testing;

namespace {

struct Run {
  Tensor out;
  TensorList grads;
};

Run run(const OpFn& fn, const TensorList& inputs, Device dev, DType dt, const Tensor& gout_ref) {
  TensorList xs, diff;
  for (const Tensor& x : inputs) {
    if (!x.defined()) { xs.emplace_back(); continue; }
    Tensor y = x.detach().to(dev);
    if (is_floating(y.dtype())) y = y.to(dt);
    y = y.detach();
    if (x.requires_grad()) {
      y.set_requires_grad(true);
      diff.push_back(y);
    }
    xs.push_back(y);
  }
  Run r;
  r.out = fn(xs);
  if (!diff.empty() && r.out.requires_grad()) {
    const Tensor g = gout_ref.to(dev).to(r.out.dtype());
    r.grads = grad({r.out}, diff, {g}, {.allow_unused = true});
  }
  return r;
}

// got (GPU, float32) against ref (CPU, float64) within rtol = tol and atol = tol x the tensor's
// scale (NaN equals NaN; see the top of the file); a failure reports the largest difference.
void check_close(const Tensor& got, const Tensor& ref, double tol) {
  const Tensor r = ref.to(DType::float64).contiguous();
  double scale = 1.0;
  for (int64_t i = 0; i < r.numel(); ++i)
    if (std::isfinite(r.data<double>()[i])) scale = std::max(scale, std::abs(r.data<double>()[i]));
  const bool close = allclose(got, ref, tol, tol * scale, /*equal_nan=*/true);
  if (!close)
    UNSCOPED_INFO("largest |CUDA - CPU| = " << max_abs_diff(got.to(kCPU), ref)
                                            << ", scale (largest finite |CPU|, >= 1) = " << scale);
  CHECK(close);
}

// One sample: a failed shape or a missing gradient ends this sample only, and an exception (a
// missing kernel, a CUDA error) is reported with the op's name, so one run lists every op that
// fails instead of stopping at the first.
void check_sample(const OpSpec& spec, const OpSample& s) {
  const OpFn& fn = s.fn ? s.fn : spec.fn;
  Tensor probe;
  {
    NoGradGuard no_grad;
    probe = fn(s.inputs);
  }
  manual_seed(99);
  const Tensor gout = randn(probe.shape(), TensorOptions{}.with_dtype(DType::float64));
  const Run ref = run(fn, s.inputs, kCPU, DType::float64, gout);
  const Run got = run(fn, s.inputs, kCUDA, DType::float32, gout);
  CHECK(got.out.device() == kCUDA);
  CHECK(got.out.shape() == ref.out.shape());
  if (got.out.shape() != ref.out.shape()) return;
  check_close(got.out, ref.out, spec.cuda_tol);
  CHECK(got.grads.size() == ref.grads.size());
  if (got.grads.size() != ref.grads.size()) return;
  for (size_t k = 0; k < ref.grads.size(); ++k) {
    INFO("gradient of input " << k);
    CHECK(got.grads[k].defined() == ref.grads[k].defined());
    if (ref.grads[k].defined() && got.grads[k].defined())
      check_close(got.grads[k], ref.grads[k], spec.cuda_tol);
  }
}

}  // namespace

TEST_CASE("op registry: CUDA forward and backward match the CPU float64 reference", "[cuda]") {
  for (const OpSpec& spec : op_registry()) {
    for (const OpSample& s : spec.samples()) {
      INFO(spec.name << " / " << s.label);
      try {
        check_sample(spec, s);
      } catch (const std::exception& e) {
        FAIL_CHECK(spec.name << " / " << s.label << " threw: " << e.what());
      }
    }
  }
}

// The Deep Matching layers index in 32 bits on the GPU whenever the sizes fit (all of the
// registry's samples); their 64-bit path, which only tensors of 2^31 elements take, runs here.
TEST_CASE("op registry: Deep Matching layers on the GPU's 64-bit index path", "[cuda]") {
  const DmIndexWidthGuard wide(64);
  for (const OpSpec& spec : op_registry()) {
    if (spec.name.rfind("dm_", 0) != 0 && spec.name != "deep_matching") continue;
    for (const OpSample& s : spec.samples()) {
      INFO(spec.name << " / " << s.label << " (64-bit indices)");
      try {
        check_sample(spec, s);
      } catch (const std::exception& e) {
        FAIL_CHECK(spec.name << " / " << s.label << " threw: " << e.what());
      }
    }
  }
}
