#pragma once
// Per-element math of the Deep Matching 4-D layers, shared by deepmatch_cpu.cpp and
// deepmatch_cuda.cu (conventions in kernels/deepmatch.h). Every kernel is a functor with
//     CVG_HD void operator()(I l) const
// that writes work item l of its output(s) and nothing else, so the CPU runs it under
// parallel_for and CUDA under a grid-stride loop, with the same sums in the same order on both
// (the few that are not one item per thread say how each device runs them). One header per
// layer family:
//   deepmatch_common_math.h       index helpers, the first-maximum rule, exp / log / pow, the
//                                 fixed-order grid sum
//   deepmatch_correlation_math.h  the correlation and its gradients
//   deepmatch_pool_math.h         max pooling with switches, its gradient, unpooling
//   deepmatch_aggregation_math.h  aggregation and disaggregation (per element, runs, spans)
//   deepmatch_power_math.h        the power layer
//   deepmatch_hinge_math.h        the structured hinge loss
#include "kernels/deepmatch_aggregation_math.h"
#include "kernels/deepmatch_common_math.h"
#include "kernels/deepmatch_correlation_math.h"
#include "kernels/deepmatch_hinge_math.h"
#include "kernels/deepmatch_pool_math.h"
#include "kernels/deepmatch_power_math.h"
