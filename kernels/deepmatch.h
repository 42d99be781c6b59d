#pragma once
// Deep Matching as a network (Thewlis et al., "Fully-Trainable Deep Matching", BMVC 2016; spec in
// ../shared/papers/thewlis-objects-from-motion.md, "Ch.3"): the 4-D layers of the U-network.
//
// Layout. A score map S_l or Q_l is a contiguous-or-not float32/float64 tensor
//     N x H x W x K x K          (p-major, q-minor)
// N image pairs, H x W reference points p (the same grid at every level), K = 2 R + 1 target
// offsets per axis. Element [n, i, j, ky, kx] scores the match of reference (i, j) with the target
// at offset 2^l (ky - R, kx - R) pixels from p (gamma_0 = 1): q is relative to p, so the
// aggregation shifts p and not k. R_{l+1} = ceil(R_l / 2).
//
// Reference grid. Reference (i, j) of level 0 sits at target pixel (stride i + offset,
// stride j + offset) (alpha_0 = stride, beta_0 = offset; 0-based i). Levels l >= 1 sit half a
// cell further, at stride (i + 1/2) + offset: the notes' typo fix (section 8.1), the children
// of level 0 are {i, i + 1}.
//
// Layers (each with a CPU loop and a CUDA kernel sharing kernels/deepmatch_*_math.h):
//   dm_correlation  S_0[n,i,j,k] = <ref[n,:,i,j], target[n,:,p_ij + k - R]>; 0 where the target
//                   pixel lies outside the target map. Descriptors are used as given: L2-normalise
//                   them first (and keep them >= 0) so that S_0 is in [0, 1]. Gradients are two
//                   gathers (dm_correlation_grad_ref, dm_correlation_grad_target), no atomics.
//   dm_max_pool     3 x 3 max pooling over (ky, kx) with stride 2 and padding
//                   pad = 1 + 2 R_{l+1} - R_l (1 for even R, 2 for odd R); padding is -inf and
//                   never wins. Switch (uint8): the window-local index 3 dy + dx (0..8) of the
//                   winner; ties go to the first maximum in row-major window order, a NaN beats
//                   every number (the first NaN wins).
//   dm_aggregate    A[i, k] = mean of S_{l+1/2}[child, k] over the in-grid children of (i, j):
//                   (i + d, j + d') with d, d' in {0, 1} at level 0 and {-2^(l-1), +2^(l-1)} at
//                   level l >= 1 (alpha_0 = delta_0). Children outside the grid are left out of
//                   the mean (inferred; a point with no child in the grid gets 0).
//   dm_power        S_{l+1} = A^nu = exp(nu ln A) for A > 0, and 0 for A <= 0, with nu a
//                   one-element tensor (learnable). dA = g nu A^(nu-1), dnu = sum g A^nu ln A,
//                   both 0 where A <= 0. nu is not clamped: keep it positive.
//   dm_disaggregate Q_{l+1/2}[i', k] = max over the in-grid parents (i' - d, j' - d') of
//                   Q_{l+1}[parent, k]; overlaps are maxed, never summed. Switch (uint8): the
//                   corner e = 2 ey + ex of the winning parent (ey, ex pick d from {lo, hi}),
//                   ties to the lowest e; 0xFF (and -inf) when every parent is outside the grid
//                   or -inf.
//   dm_unpool       Q_l = S_l + U, U[k] = max of Q_{l+1/2}[k'] over the coarse k' whose switch
//                   names k (a gather over the <= 2 x 2 windows covering k), -inf when none
//                   does. Ties: the first k' in row-major coarse order.
//   dm_hinge_loss   mean over all N H W K^2 terms of max(0, 1 - g_sigma(q - gt) + Q[q] - Q[gt])
//                   (the structured loss of section 2.2 on Q_0, mean-normalised: inferred), with
//                   g_sigma(z) = exp(-|z|^2 / (2 sigma^2)) and z in offset steps. gt is
//                   N x H x W x 2 int32/int64 (gy, gx) offset indices; a point whose gt lies
//                   outside [0, K)^2, or whose gt score is -inf, is skipped; -inf scores are
//                   never active terms.
//
// -inf handling. -inf enters through unpooling (targets no switch names) and disaggregation
// (no valid parent); it is IEEE -inf, never NaN. A -inf output routes no gradient: dS_l and
// dQ_{l+1/2} are 0 where Q_l is -inf, a disaggregated -inf has no switch, and the loss skips
// -inf terms.
//
// Gradients. Every backward is a gather (one writer per element, deterministic on both devices,
// no atomics) and an op of this file, itself differentiable, so create_graph gives second
// derivatives: dm_max_pool_backward <-> dm_pool_gather, dm_aggregate <-> dm_aggregate_backward,
// dm_disaggregate_backward <-> dm_disaggregate_gather, dm_unpool_backward <->
// dm_unpool_adjoint, dm_unpool_skip_backward with itself, the three correlation ops among
// themselves; dm_power's, dm_unpool's (dm_unpool_grads) and the loss's backward are one kernel
// each when no graph is built of them and compositions of differentiable ops under create_graph
// (the loss's Hessian is 0 almost everywhere).
#include <array>
#include <initializer_list>
#include <vector>

#include "core/tensor.h"
#include "kernels/deepmatch_math.h"

namespace cvg {

// ---- correlation ----
// ref: N x d x H x W (descriptors at the reference grid), target: N x d x Ht x Wt (dense).
// Returns N x H x W x K x K with K = 2 radius + 1.
Tensor dm_correlation(const Tensor& ref, const Tensor& target, int64_t radius, int64_t stride,
                      int64_t offset);
// grad: N x H x W x K x K. d ref (N x d x H x W) and d target (N x d x Ht x Wt, target_size =
// {Ht, Wt}).
Tensor dm_correlation_grad_ref(const Tensor& grad, const Tensor& target, int64_t stride,
                               int64_t offset);
Tensor dm_correlation_grad_target(const Tensor& grad, const Tensor& ref,
                                  std::array<int64_t, 2> target_size, int64_t stride,
                                  int64_t offset);

// ---- max pooling over q ----
struct DmPooled {
  Tensor values;    // N x H x W x K' x K', K' = 2 ceil(R / 2) + 1
  Tensor switches;  // uint8, same shape, window-local 0..8
};
DmPooled dm_max_pool(const Tensor& s);
// d S of dm_max_pool: grad and switches N x H x W x K' x K'; fine_k = K of the pooled input.
Tensor dm_max_pool_backward(const Tensor& grad, const Tensor& switches, int64_t fine_k);
// The fine value each switch names: N x H x W x K x K -> N x H x W x K' x K'.
Tensor dm_pool_gather(const Tensor& x, const Tensor& switches);

// ---- aggregation and power (level l >= 0 aggregates S_{l+1/2} into S_{l+1}) ----
Tensor dm_aggregate(const Tensor& s, int64_t level);
Tensor dm_aggregate_backward(const Tensor& grad, int64_t level);
// nu: one element (any shape with numel 1), the dtype and device of a.
Tensor dm_power(const Tensor& a, const Tensor& nu);

// ---- disaggregation (reverse of the aggregation of `level`) ----
struct DmDisaggregated {
  Tensor values;    // N x H x W x K x K
  Tensor switches;  // uint8 corner 0..3, or 0xFF
};
DmDisaggregated dm_disaggregate(const Tensor& q, int64_t level);
Tensor dm_disaggregate_backward(const Tensor& grad, const Tensor& switches, int64_t level);
Tensor dm_disaggregate_gather(const Tensor& x, const Tensor& switches, int64_t level);

// ---- unpooling + skip sum ----
// q_half and switches: N x H x W x K' x K' (the switches of dm_max_pool(s)); s: N x H x W x K x K.
// Returns Q_l = s + unpool(q_half).
Tensor dm_unpool(const Tensor& q_half, const Tensor& switches, const Tensor& s);
// d q_half of dm_unpool (grad: N x H x W x K x K); q_half decides the winners and gets no
// gradient through this op.
Tensor dm_unpool_backward(const Tensor& grad, const Tensor& q_half, const Tensor& switches,
                          int64_t fine_k);
// Adjoint of dm_unpool_backward: x (coarse) to the fine elements it wins, 0 elsewhere.
Tensor dm_unpool_adjoint(const Tensor& x, const Tensor& q_half, const Tensor& switches,
                         int64_t fine_k);
// d s of dm_unpool: grad where q (dm_unpool's output Q_l) is finite, 0 where it is -inf. Linear
// in grad, so its own gradient is itself (q gets none).
Tensor dm_unpool_skip_backward(const Tensor& grad, const Tensor& q);
// Both gradients of dm_unpool in one pass (its backward when no graph is built of it): d q_half
// as dm_unpool_backward and d s as dm_unpool_skip_backward give them, bit for bit, reading grad
// once. q: Q_l, dm_unpool's output. A gradient not wanted is left undefined. Not differentiable
// (create_graph composes the two ops): grad must not require a gradient while grad mode is on.
struct DmUnpoolGrads {
  Tensor q_half;  // N x H x W x K' x K'
  Tensor s;       // N x H x W x K x K
};
DmUnpoolGrads dm_unpool_grads(const Tensor& grad, const Tensor& q_half, const Tensor& switches,
                              const Tensor& q, bool want_q_half = true, bool want_s = true);

// ---- loss ----
Tensor dm_hinge_loss(const Tensor& q, const Tensor& gt, double sigma);

// ---- the whole U-network ----
// S_0 -> Q_0 with L = nus.size() levels: for l = 0..L-1, (S_{l+1/2}, m_l) = dm_max_pool(S_l),
// S_{l+1} = dm_power(dm_aggregate(S_{l+1/2}, l), nus[l]); then Q_L = S_L and, for l = L-1..0,
// Q_l = dm_unpool(dm_disaggregate(Q_{l+1}, l), m_l, S_l).
Tensor deep_matching(const Tensor& s0, const TensorList& nus);

// Raw kernels (no autograd, no checks): contiguous inputs, fresh contiguous outputs on their
// device. One entry per functor of deepmatch_math.h; `n` is the number of work items (of
// blocks for corr_tiled, whose CUDA runner falls back to corr_forward when a block's scratch
// exceeds the GPU's shared memory; of points for hinge_loss, one block each). Each is
// built for float and double, and for 32- and 64-bit indexing (CVG_DM_EACH_TYPE).
#define CVG_DM_KERNELS(X)                                                  \
  X(corr_forward, DmCorrForward)                                           \
  X(corr_tiled, DmCorrTiled)                                               \
  X(corr_grad_ref, DmCorrGradRef)                                          \
  X(corr_grad_ref_tiled, DmCorrGradRefTiled)                               \
  X(corr_grad_target, DmCorrGradTarget)                                    \
  X(corr_grad_target_tiled, DmCorrGradTargetTiled)                         \
  X(pool_backward, DmPoolBackward)                                         \
  X(pool_gather, DmPoolGather)                                             \
  X(unpool_forward, DmUnpoolForward)                                       \
  X(unpool_backward, DmUnpoolBackward)                                     \
  X(unpool_adjoint, DmUnpoolAdjoint)                                       \
  X(skip_backward, DmSkipBackward)                                         \
  X(agg_forward, DmAggForward)                                             \
  X(agg_backward, DmAggBackward)                                           \
  X(disagg_backward, DmDisaggBackward)                                     \
  X(disagg_gather, DmDisaggGather)                                         \
  X(power_forward, DmPowerForward)                                         \
  X(power_backward, DmPowerBackward)                                       \
  X(pool_backward_cells, DmPoolBackwardCells)                              \
  X(unpool_forward_cells, DmUnpoolForwardCells)                            \
  X(unpool_backward_cells, DmUnpoolBackwardCells)                          \
  X(unpool_adjoint_cells, DmUnpoolAdjointCells)                            \
  X(unpool_grads_cells, DmUnpoolGradsCells)                                \
  X(hinge_loss, DmHingeLoss)                                               \
  X(hinge_grad, DmHingeGrad)                                               \
  X(pool_forward, DmPoolForward)                                           \
  X(disagg_forward, DmDisaggForward)                                       \
  X(agg_forward_run, DmAggForwardRun)                                      \
  X(agg_backward_run, DmAggBackwardRun)                                    \
  X(disagg_forward_run, DmDisaggForwardRun)                                \
  X(disagg_backward_run, DmDisaggBackwardRun)                              \
  X(agg_forward_span, DmAggForwardSpan)                                    \
  X(agg_backward_span, DmAggBackwardSpan)                                  \
  X(disagg_forward_span, DmDisaggForwardSpan)                              \
  X(disagg_backward_span, DmDisaggBackwardSpan)                           \
  X(agg_forward_run4, DmAggForwardRun4)                                    \
  X(agg_backward_run4, DmAggBackwardRun4)                                  \
  X(disagg_forward_run4, DmDisaggForwardRun4)                              \
  X(disagg_backward_run4, DmDisaggBackwardRun4)                           \
  X(pool_forward_pairs, DmPoolForwardPairs)

#define CVG_DM_EACH_TYPE(Y, name, F) \
  Y(name, F, float, int32_t)         \
  Y(name, F, float, int64_t)         \
  Y(name, F, double, int32_t)        \
  Y(name, F, double, int64_t)

#define CVG_DM_DECLARE_ONE(name, F, T, I)                \
  void dm_##name##_cpu(const F<T, I>& f, int64_t n);     \
  void dm_##name##_cuda(const F<T, I>& f, int64_t n);
#define CVG_DM_DECLARE(name, F) CVG_DM_EACH_TYPE(CVG_DM_DECLARE_ONE, name, F)
CVG_DM_KERNELS(CVG_DM_DECLARE)
#undef CVG_DM_DECLARE
#undef CVG_DM_DECLARE_ONE

// CPU-only loops (a scratch buffer per thread; no GPU counterpart): `n` counts reference points.
#define CVG_DM_DECLARE_CPU_ONE(name, F, T, I) void dm_##name##_cpu(const F<T, I>& f, int64_t n);
#define CVG_DM_CPU_KERNELS(X)                          \
  X(pool_forward_plane, DmPoolForwardPlane)            \
  X(pool_backward_plane, DmPoolBackwardPlane)          \
  X(unpool_forward_plane, DmUnpoolForwardPlane)        \
  X(unpool_backward_plane, DmUnpoolBackwardPlane)      \
  X(unpool_adjoint_plane, DmUnpoolAdjointPlane)
#define CVG_DM_DECLARE_CPU(name, F) CVG_DM_EACH_TYPE(CVG_DM_DECLARE_CPU_ONE, name, F)
CVG_DM_CPU_KERNELS(CVG_DM_DECLARE_CPU)
#undef CVG_DM_DECLARE_CPU
#undef CVG_DM_DECLARE_CPU_ONE

// Index width. On a GPU a launch indexes in 32 bits when every extent its index math reaches
// (the element counts of its tensors, and the largest coordinate it forms) lies in
// [1, dm_index32_limit()] (2^31 - 1, the largest int32), else in 64 bits (empty tensors
// included: nothing runs). A GPU has no 64-bit integer ALU (core/fast_div.h), so 32 bits halve
// the index arithmetic and the registers. The CPU always indexes in 64 bits: an x86-64 core does
// 64-bit arithmetic natively (32-bit indices add sign extensions to the address arithmetic), and
// on this project's 2-core machine the 32-bit path measured no faster (docs/deepmatch.md).
// While a DmIndexWidthGuard(bits) lives, launches on both devices use `bits` (32 still only
// where the extents fit): tests compare the two paths on the CPU, benchmarks time them.
// Correlation kernel version. Forward: 2 (DmCorrTiled, the default on both devices: a block
// per target row and 8 reference columns, through a scratch buffer; 3.2x faster than v1 on an
// H100) or 1 (DmCorrForward, one dot product per score read from the tensors: the reference
// the tiled one is tested and timed against); both give the same bits. Gradients: 1, the
// default on both devices, or 2 (tiled), which on an H100 measured 1.06-1.12x v1's time
// (bench/results, session 11). In the descriptors: 1 (DmCorrGradRef: per point and 8
// channels; on the GPU one block per point) or 2 (DmCorrGradRefTiled: blocks of 8 points and
// 16 window rows through a scratch buffer, partial sums added in part order); the two agree
// to rounding. In the target: 1 (DmCorrGradTarget: per pixel and 8 channels) or 2
// (DmCorrGradTargetTiled: a block per target row and up to 64 columns, 16 channels per thread,
// descriptors staged per reference row); the same sums in the same order. On the GPU a
// scratch larger than dm_tile_smem_limit() runs version 1. A DmCorrVersionGuard(v) picks one
// for its lifetime, on both devices (tests, benchmarks); dm_corr_version() is 0 while none is
// live.
int dm_corr_version();
class DmCorrVersionGuard {
 public:
  explicit DmCorrVersionGuard(int version);
  ~DmCorrVersionGuard();
  DmCorrVersionGuard(const DmCorrVersionGuard&) = delete;
  DmCorrVersionGuard& operator=(const DmCorrVersionGuard&) = delete;

 private:
  int previous_;
};

// Version of the per-element 4-D layer kernels: 1 (one output per item), 2, 3 or 4, which share
// each item's index work and loads among several outputs:
//   dm_aggregate, dm_aggregate_backward, dm_disaggregate, dm_disaggregate_backward:
//     version 2, the *Run functors: a work item walks up to kDmAggRun outputs along j and loads
//     each run's columns once (2.25 loads per output instead of 4): the GPU's default (fastest
//     of the three for all four layers on an H100);
//     version 3, the *Span functors: a work item owns kDmSpan outputs of one point (offsets
//     K^2 / kDmSpan apart), decoding the point and testing its neighbours once: the CPU's
//     default (1.2-2x faster than version 1 there);
//     version 4, the *Run4 functors: runs of kDmAggShortRun outputs (2.5 loads per output, fewer
//     registers: more threads per SM);
//   dm_max_pool_backward, dm_unpool, dm_unpool_backward, dm_unpool_adjoint, dm_unpool_grads:
//     version 2 (and 3, 4), the *Cells functors: a work item per 2 x 2 cell of fine elements and
//     the 4 coarse windows that can name them; the GPU's default for dm_max_pool_backward (3.7x
//     faster than version 1 on an H100), dm_unpool (2.5x there) and dm_unpool_grads;
//     dm_unpool_backward and dm_unpool_adjoint keep version 1 on the GPU (the backward's cells
//     measured no faster). On the CPU dm_max_pool_backward and the three unpooling ops run none
//     of these but their own loop by whole point planes (the *Plane functors,
//     CVG_DM_CPU_KERNELS: 2.4-14x faster than version 1 there), and dm_unpool_grads the two
//     ops;
//   dm_max_pool: version 1 (one output per item) on the GPU; on the CPU by whole point planes
//     (DmPoolForwardPlane), version 1 under a guard; version 2 (and 3, 4) by horizontal pairs
//     of outputs (DmPoolForwardPairs: 7.5 taps loaded per output instead of 9), not yet run on
//     a GPU.
// Every version gives the same bits. A layer runs the newest of its versions not above the
// guard's. Measurements: docs/deepmatch.md and the bench rows *_v2, *_v3. A
// DmLayerVersionGuard(v) picks one for its lifetime (tests, benchmarks); dm_layer_version() is 0
// while none is live.
int dm_layer_version();
class DmLayerVersionGuard {
 public:
  explicit DmLayerVersionGuard(int version);
  ~DmLayerVersionGuard();
  DmLayerVersionGuard(const DmLayerVersionGuard&) = delete;
  DmLayerVersionGuard& operator=(const DmLayerVersionGuard&) = delete;

 private:
  int previous_;
};

#ifdef CVG_WITH_CUDA
// Shared memory one block of a tiled correlation kernel may use on the current GPU: half an
// SM's (two blocks per SM), within the per-block opt-in limit. Larger scratch takes v1.
int64_t dm_tile_smem_limit(const char* op);
#endif

int64_t dm_index32_limit();
bool dm_index32(Device dev, std::initializer_list<int64_t> extents);
class DmIndexWidthGuard {
 public:
  explicit DmIndexWidthGuard(int bits);
  ~DmIndexWidthGuard();
  DmIndexWidthGuard(const DmIndexWidthGuard&) = delete;
  DmIndexWidthGuard& operator=(const DmIndexWidthGuard&) = delete;

 private:
  int previous_;
};

}  // namespace cvg
