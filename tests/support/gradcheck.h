#pragma once
// Finite-difference checks (test support library cvg_testing, usable from any program) of the gradients the engine computes, for ops and for users' own
// compositions. Inputs should be float64 CPU tensors; those with requires_grad are checked.
//
// gradcheck compares, for a few random projections v of the output, the analytic
// vector-Jacobian product  grad(f(x), x, v)  with central differences of  <v, f(x)>:
//     ( <v, f(x + eps e_i)> - <v, f(x - eps e_i)> ) / (2 eps)     for every input element i.
// Two projections catch a wrong Jacobian entry with probability 1 and cost one backward plus
// two forwards per input element. Draw inputs away from kinks (|x| > 10 eps from relu's 0, no
// ties in max) or the difference quotient itself is wrong there.
//
// gradgradcheck applies gradcheck to x -> <u, grad(f(x), x, v, create_graph=true)>, i.e. it
// checks the backward of the backward (the graph create_graph builds).
#include <functional>
#include <string>

#include "core/tensor.h"

namespace cvg {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  int projections = 2;
  uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatch: input, element, analytic and numeric values
};

using DiffFn = std::function<Tensor(const TensorList&)>;

GradcheckResult gradcheck(const DiffFn& fn, const TensorList& inputs,
                          const GradcheckOptions& opt = {});
GradcheckResult gradgradcheck(const DiffFn& fn, const TensorList& inputs,
                              const GradcheckOptions& opt = {});

}  // namespace cvg
