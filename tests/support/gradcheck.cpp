#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"

namespace cvg {

namespace {

double inner(const Tensor& a, const std::vector<double>& v) {
  const std::vector<double> x = a.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * v[i];
  return s;
}

std::vector<double> random_vector(size_t n, uint64_t seed, uint64_t stream) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = philox_normal(seed, stream * 1000003ull + i);
  return v;
}

}  // namespace

GradcheckResult gradcheck(const DiffFn& fn, const TensorList& inputs, const GradcheckOptions& opt) {
  GradcheckResult res;
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad())
      CVG_CHECK(x.dtype() == DType::float64 && x.device().is_cpu() && x.is_leaf(),
                "gradcheck: inputs that require grad must be float64 CPU leaves, got ",
                dtype_name(x.dtype()), " on ", x.device().str());
  for (int p = 0; p < opt.projections; ++p) {
    const Tensor out = fn(inputs);
    CVG_CHECK(out.dtype() == DType::float64, "gradcheck: the function must return float64, got ",
              dtype_name(out.dtype()));
    const std::vector<double> v = random_vector(out.numel(), opt.seed, p);
    TensorList diff_inputs;
    for (const Tensor& x : inputs)
      if (x.defined() && x.requires_grad()) diff_inputs.push_back(x);
    if (diff_inputs.empty()) return res;
    TensorList analytic;
    if (out.requires_grad()) {
      analytic = grad({out}, diff_inputs, {from_vector(v, out.shape(), out.options())},
                      {.allow_unused = true});
    } else {
      analytic.resize(diff_inputs.size());
    }
    for (size_t k = 0; k < diff_inputs.size(); ++k) {
      const Tensor& x = diff_inputs[k];
      const std::vector<double> a =
          analytic[k].defined() ? analytic[k].to_vector<double>() : std::vector<double>(x.numel(), 0.0);
      // Perturb the leaf's storage in place (outside autograd), one element at a time.
      Tensor xc = x.detach();
      CVG_CHECK(xc.is_contiguous(), "gradcheck: inputs must be contiguous");
      double* px = xc.data<double>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double orig = px[i];
        px[i] = orig + opt.eps;
        const double fp = inner(fn(inputs).detach(), v);
        px[i] = orig - opt.eps;
        const double fm = inner(fn(inputs).detach(), v);
        px[i] = orig;
        const double numeric = (fp - fm) / (2 * opt.eps);
        if (!(std::fabs(a[i] - numeric) <= opt.atol + opt.rtol * std::fabs(numeric))) {
          std::ostringstream os;
          os << "gradient mismatch for input " << k << " (shape " << x.shape() << ") element "
             << i << ": analytic " << a[i] << ", numeric " << numeric << " (projection " << p
             << ")";
          res.ok = false;
          res.message = os.str();
          return res;
        }
      }
    }
  }
  return res;
}

GradcheckResult gradgradcheck(const DiffFn& fn, const TensorList& inputs,
                              const GradcheckOptions& opt) {
  // x -> sum_k <u_k, d<v, f(x)>/dx_k>, built with create_graph so that it is differentiable.
  const Tensor probe = fn(inputs);
  const std::vector<double> v = random_vector(probe.numel(), opt.seed, 101);
  const Tensor vt = from_vector(v, probe.shape(), probe.options());
  std::vector<std::vector<double>> us;
  uint64_t stream = 202;
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) us.push_back(random_vector(x.numel(), opt.seed, stream++));
  DiffFn second = [&](const TensorList& xs) -> Tensor {
    TensorList diff;
    for (const Tensor& x : xs)
      if (x.defined() && x.requires_grad()) diff.push_back(x);
    const Tensor out = fn(xs);
    Tensor total = zeros({}, TensorOptions{}.with_dtype(DType::float64));
    if (!out.requires_grad()) return total;
    const TensorList g = grad({out}, diff, {vt}, {.create_graph = true, .allow_unused = true});
    for (size_t k = 0; k < g.size(); ++k) {
      if (!g[k].defined()) continue;
      const Tensor u = from_vector(us[k], g[k].shape(), g[k].options());
      total = total + sum(g[k] * u);
    }
    return total;
  };
  return gradcheck(second, inputs, opt);
}

}  // namespace cvg
