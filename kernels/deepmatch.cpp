// Deep Matching layers: argument checks, device dispatch and autograd (conventions in
// kernels/deepmatch.h). Each op checks its arguments, builds the geometry of its functor
// (kernels/deepmatch_math.h), runs it on the inputs' device and records its backward, which is
// another op of this file or a composition of differentiable ops.
#include "kernels/deepmatch.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <limits>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

namespace {

// Runs functor `f` over n elements on `dev` (name: an entry of CVG_DM_KERNELS).
#ifdef CVG_WITH_CUDA
#define CVG_DM_CUDA_CALL(name, f, n) dm_##name##_cuda(f, n)
#else
#define CVG_DM_CUDA_CALL(name, f, n) (void)0
#endif
#define CVG_DM_RUN(op, dev, name, f, n)                                         \
  on_device(op, dev, [&] { dm_##name##_cpu(f, n); },                            \
            [&] { CVG_DM_CUDA_CALL(name, f, n); })

TensorOptions uint8_on(Device dev) {
  return TensorOptions{}.with_dtype(DType::uint8).with_device(dev);
}

Tensor dense(const Tensor& t) { return t.detach().contiguous(); }

// ---- index width ---------------------------------------------------------------------------

// 0: each device's default width; 32 or 64: the width a live DmIndexWidthGuard forces.
std::atomic<int> forced_width{0};

// Runs body(T{}, I{}) with T the floating dtype and I the index type dm_index32 picks for the
// device and the extents (kernels/deepmatch.h).
template <typename Body>
void dispatch_dm(const char* op, Device dev, DType dtype, std::initializer_list<int64_t> extents,
                 Body&& body) {
  const bool narrow = dm_index32(dev, extents);
  dispatch_floating(dtype, op, [&](auto tag) {
    if (narrow)
      body(tag, int32_t{});
    else
      body(tag, int64_t{});
  });
}

// A score map: N x H x W x K x K with K odd, float32 or float64.
void check_scores(const char* op, const char* name, const Tensor& t) {
  CVG_CHECK(t.defined(), op, ": undefined ", name);
  CVG_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
            dtype_name(t.dtype()));
  CVG_CHECK(t.dim() == 5, op, ": ", name, " must be N x H x W x K x K, got shape ", t.shape());
  CVG_CHECK(t.shape()[3] == t.shape()[4] && t.shape()[3] % 2 == 1, op, ": ", name,
            " must have K x K offsets with K = 2 R + 1 odd, got shape ", t.shape());
}

void check_same_dtype(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b) {
  CVG_CHECK(a.dtype() == b.dtype(), op, ": ", a_name, " and ", b_name,
            " must have one dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
}

void check_switches(const char* op, const Tensor& sw, const Shape& want) {
  CVG_CHECK(sw.defined(), op, ": undefined switches");
  CVG_CHECK(sw.dtype() == DType::uint8, op, ": switches must be uint8, got ",
            dtype_name(sw.dtype()));
  CVG_CHECK(sw.shape() == want, op, ": switches must have shape ", want, ", got ", sw.shape());
}

void check_level(const char* op, int64_t level) {
  CVG_CHECK(level >= 0 && level < 40, op, ": level must be in [0, 40), got ", level);
}

Shape with_k(const Shape& s, int64_t k) { return {s[0], s[1], s[2], k, k}; }

// Pooling geometry of a fine K: R' = ceil(R / 2), pad = 1 + 2 R' - R.
template <typename I = int64_t>
DmPoolGeom<I> pool_geom(const Shape& fine) {
  const int64_t r = (fine[3] - 1) / 2, rc = (r + 1) / 2;
  DmPoolGeom<I> g;
  g.points = fine[0] * fine[1] * fine[2];
  g.k = fine[3];
  g.kc = 2 * rc + 1;
  g.pad = 1 + 2 * rc - r;
  g.fk = FastDivOf<I>::for_size(g.k);
  g.fkk = FastDivOf<I>::for_size(g.k * g.k);
  g.fkc = FastDivOf<I>::for_size(g.kc);
  g.fkkc = FastDivOf<I>::for_size(g.kc * g.kc);
  return g;
}

// The 2 x 2 cells of version 2's pooling kernels (DmPoolCells in deepmatch_pool_math.h):
// floor((K + pad) / 2) per axis cover every fine row once.
int64_t pool_cells_per_axis(const DmPoolGeom<int64_t>& g) { return (g.k + g.pad) / 2; }
template <typename I>
DmPoolCells<I> pool_cells(const DmPoolGeom<int64_t>& g) {
  const int64_t n = pool_cells_per_axis(g);
  return {static_cast<I>(n), FastDivOf<I>::for_size(n), FastDivOf<I>::for_size(n * n)};
}
int64_t pool_cell_items(const DmPoolGeom<int64_t>& g) {
  return g.points * pool_cells_per_axis(g) * pool_cells_per_axis(g);
}

// Child shifts of a level: {0, 1} at level 0, {-2^(l-1), 2^(l-1)} above; lo < hi always (the
// runs' walkers rely on it: dm_run_load's Up).
template <typename I = int64_t>
DmAggGeom<I> agg_geom(const Shape& s, int64_t level) {
  DmAggGeom<I> g;
  g.n = s[0];
  g.h = s[1];
  g.w = s[2];
  g.k = s[3];
  if (level == 0) {
    g.lo = 0;
    g.hi = 1;
  } else {
    g.hi = int64_t{1} << (level - 1);
    g.lo = -g.hi;
  }
  g.fkk = FastDivOf<I>::for_size(g.k * g.k);
  g.fh = FastDivOf<I>::for_size(g.h);
  g.fw = FastDivOf<I>::for_size(g.w);
  return g;
}

// A bound on the index arithmetic of every version: a child or parent search forms i + the
// level's shift (i + hi); the runs (agg_runs, Run <= kDmAggRun) form Delta Run (Delta = hi -
// lo), W + Delta Run - 1 and columns j0 + lo + u Delta (j0 < W, lo < 0, u <= Run), all below
// max(H, W) + Delta kDmAggRun. At level 28 Delta kDmAggRun = 2^31: the runs need 64 bits long
// before the searches do (with hi + max(H, W) alone they wrapped there on a 32-bit launch).
int64_t agg_extent(const DmAggGeom<int64_t>& g) {
  static_assert(kDmAggShortRun <= kDmAggRun);
  return std::max(g.h, g.w) + (g.hi - g.lo) * kDmAggRun;
}

// The runs of version 2 (Run = kDmAggRun) or 4 (kDmAggShortRun) for geometry g (DmAggRuns in
// deepmatch_aggregation_math.h).
template <int Run = kDmAggRun, typename I>
DmAggRuns<I, Run> agg_runs(const DmAggGeom<I>& g) {
  DmAggRuns<I, Run> r;
  r.delta = g.hi - g.lo;
  r.classes = std::min(r.delta, g.w);
  const I span = r.delta * Run;
  r.strips = r.classes * ((g.w + span - 1) / span);
  r.fstrips = FastDivOf<I>::for_size(r.strips);
  r.fclasses = FastDivOf<I>::for_size(r.classes);
  r.fdelta = FastDivOf<I>::for_size(r.delta);
  return r;
}

// Work items of versions 2 and 4: N H S K^2 (a little more than the outputs when W is not a
// multiple of Delta Run).
template <int Run = kDmAggRun>
int64_t agg_run_items(const DmAggGeom<int64_t>& g) {
  return g.n * g.h * agg_runs<Run>(g).strips * g.k * g.k;
}

// The spans of version 3 (DmSpans in deepmatch_aggregation_math.h): S = ceil(K^2 / kDmSpan)
// items per point.
template <typename I>
DmSpans<I> agg_spans(const DmAggGeom<I>& g) {
  const I kk = g.k * g.k;
  const I span = kk / kDmSpan + (kk % kDmSpan != 0);
  return {span, FastDivOf<I>::for_size(span)};
}
int64_t agg_span_items(const DmAggGeom<int64_t>& g) {
  return g.n * g.h * g.w * agg_spans(g).span;
}

// The version a layer with versions 1 .. newest runs (kernels/deepmatch.h): the guard's, capped
// at newest, or `fallback` (the layer's default on its device) while no guard is live.
int layer_version(int newest, int fallback) {
  const int v = dm_layer_version();
  return v == 0 ? fallback : std::min(v, newest);
}

// The aggregation family's version (1, 2, 3 or 4). Default: runs (2) on the GPU, fastest for all
// four layers once their columns left local memory (H100, 1024 points, K = 161, runs / spans /
// one output per item: aggregate 93 / 107 / 140 us, its backward 110 / 165 / 191, disaggregate
// 113 / 125 / 140, its backward 132 / 166 / 260; 2026-11-23); spans (3) on the CPU since their
// outputs dropped the per-corner grid tests (2 threads, 192 points, K = 33, spans / runs / one
// output per item: aggregate 0.39-0.40 / 0.47 / 0.79-0.81 ms, its backward 0.57-0.60 / 0.62-0.68
// / 1.08-1.09, disaggregate 1.25-1.29 / 1.30-1.34 / 1.80-1.84, its backward 1.15-1.17 /
// 1.07-1.16 / 1.34-1.36). Version 4, runs of kDmAggShortRun, has not run on a GPU yet.
int agg_version(const Device& dev) { return layer_version(4, dev.is_cuda() ? 2 : 3); }

// The loss over scores of shape s (N x H x W x K x K).
template <typename I>
DmHingeGeom<I> hinge_geom(const Shape& s, double sigma) {
  DmHingeGeom<I> g;
  g.points = s[0] * s[1] * s[2];
  g.k = s[3];
  g.slices = std::min<int64_t>(s[3] * s[3], kDmHingeSlices);
  g.inv_two_sigma2 = 1.0 / (2.0 * sigma * sigma);
  g.near[0] = static_cast<I>(dm_hinge_near<float>(g.inv_two_sigma2, g.k));
  g.near[1] = static_cast<I>(dm_hinge_near<double>(g.inv_two_sigma2, g.k));
  g.fk = FastDivOf<I>::for_size(g.k);
  g.spans = (s[3] * s[3] + kDmHingeSpan - 1) / kDmHingeSpan;
  g.fspans = FastDivOf<I>::for_size(g.spans);
  return g;
}

// ---- correlation ---------------------------------------------------------------------------

template <typename I = int64_t>
DmCorrGeom<I> corr_geom(const Shape& ref, const Shape& tgt, int64_t radius, int64_t stride,
                        int64_t offset) {
  return dm_corr_geom<I>(ref[0], ref[1], ref[2], ref[3], tgt[2], tgt[3], radius, stride, offset);
}

// Whether a tiled gradient's blocks fit the device: at most kDmGradThreads channel groups and,
// on a GPU, `scratch` elements within dm_tile_smem_limit.
bool tile_fits(const char* op, Device dev, int64_t groups, int64_t scratch, DType dtype) {
  if (groups > kDmGradThreads) return false;
#ifdef CVG_WITH_CUDA
  if (dev.is_cuda())
    return scratch * static_cast<int64_t>(dtype_size(dtype)) <= dm_tile_smem_limit(op);
#else
  (void)op, (void)dev, (void)scratch, (void)dtype;
#endif
  return true;
}

// 0: each op's default; 1 or 2: the version a live DmCorrVersionGuard picks.
std::atomic<int> forced_corr_version{0};

void check_descriptors(const char* op, const char* name, const Tensor& t) {
  CVG_CHECK(t.defined(), op, ": undefined ", name);
  CVG_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
            dtype_name(t.dtype()));
  CVG_CHECK(t.dim() == 4, op, ": ", name, " must be N x d x H x W, got shape ", t.shape());
}

void check_grid(const char* op, int64_t stride) {
  CVG_CHECK(stride >= 1, op, ": stride must be >= 1, got ", stride);
}

// The largest target coordinate (plus radius) the correlation's index math forms.
int64_t corr_extent(const Shape& ref, const Shape& tgt, int64_t radius, int64_t stride,
                    int64_t offset) {
  return stride * std::max({ref[2], ref[3], tgt[2], tgt[3]}) + std::abs(offset) + 2 * radius + 1;
}

}  // namespace

int dm_corr_version() { return forced_corr_version.load(); }

namespace {
int checked_corr_version(int v) {
  CVG_CHECK(v == 1 || v == 2, "DmCorrVersionGuard: version must be 1 (one dot product per score) "
            "or 2 (tiled), got ", v);
  return v;
}
}  // namespace

DmCorrVersionGuard::DmCorrVersionGuard(int version)
    : previous_(forced_corr_version.exchange(checked_corr_version(version))) {}
DmCorrVersionGuard::~DmCorrVersionGuard() { forced_corr_version.store(previous_); }

namespace {
// 0: each op's default; 1 to 4: the version a live DmLayerVersionGuard picks.
std::atomic<int> forced_layer_version{0};
int checked_layer_version(int v) {
  CVG_CHECK(v >= 1 && v <= 4, "DmLayerVersionGuard: version must be 1 (one output per item), 2 "
            "(runs along j, 2 x 2 cells), 3 (spans of k) or 4 (short runs along j), got ", v);
  return v;
}
}  // namespace

int dm_layer_version() { return forced_layer_version.load(); }
DmLayerVersionGuard::DmLayerVersionGuard(int version)
    : previous_(forced_layer_version.exchange(checked_layer_version(version))) {}
DmLayerVersionGuard::~DmLayerVersionGuard() { forced_layer_version.store(previous_); }

int64_t dm_index32_limit() { return std::numeric_limits<int32_t>::max(); }

bool dm_index32(Device dev, std::initializer_list<int64_t> extents) {
  for (const int64_t e : extents)
    if (e < 1 || e > dm_index32_limit()) return false;
  const int forced = forced_width.load();
  return forced != 0 ? forced == 32 : dev.is_cuda();
}

namespace {
int checked_width(int bits) {
  CVG_CHECK(bits == 32 || bits == 64, "DmIndexWidthGuard: bits must be 32 or 64, got ", bits);
  return bits;
}
}  // namespace

DmIndexWidthGuard::DmIndexWidthGuard(int bits)
    : previous_(forced_width.exchange(checked_width(bits))) {}
DmIndexWidthGuard::~DmIndexWidthGuard() { forced_width.store(previous_); }

Tensor dm_correlation(const Tensor& ref, const Tensor& target, int64_t radius, int64_t stride,
                      int64_t offset) {
  const char* op = "dm_correlation";
  TraceOp trace(op, {ref, target});
  check_descriptors(op, "ref", ref);
  check_descriptors(op, "target", target);
  check_same_dtype(op, "ref", ref, "target", target);
  CVG_CHECK(ref.shape()[0] == target.shape()[0] && ref.shape()[1] == target.shape()[1], op,
            ": ref and target must have the same N and d, got ", ref.shape(), " and ",
            target.shape());
  CVG_CHECK(radius >= 0, op, ": radius must be >= 0, got ", radius);
  check_grid(op, stride);
  const Device dev = common_device(op, {ref, target});
  const auto g = corr_geom(ref.shape(), target.shape(), radius, stride, offset);
  const Tensor rc = dense(ref), tc = dense(target);
  Tensor out = Tensor::empty({g.n, g.h, g.w, g.k, g.k}, ref.options());
  const int64_t extent = corr_extent(ref.shape(), target.shape(), radius, stride, offset);
  const auto tg = dm_corr_tile_geom(g);
  const int64_t blocks = out.numel() > 0 ? g.n * tg.rows * tg.jtiles : 0;
  dispatch_dm(op, dev, ref.dtype(),
              {rc.numel(), tc.numel(), out.numel(), extent, blocks, tg.scratch(g.d)},
              [&](auto tag, auto itag) {
                using T = decltype(tag);
                using I = decltype(itag);
                const auto gi = corr_geom<I>(ref.shape(), target.shape(), radius, stride, offset);
                if (dm_corr_version() == 1) {  // default: 2
                  const DmCorrForward<T, I> f{rc.data<T>(), tc.data<T>(), gi, out.data<T>()};
                  CVG_DM_RUN(op, dev, corr_forward, f, out.numel());
                } else {
                  const DmCorrTiled<T, I> f{rc.data<T>(), tc.data<T>(), gi, dm_corr_tile_geom(gi),
                                            out.data<T>()};
                  CVG_DM_RUN(op, dev, corr_tiled, f, blocks);
                }
              });
  const SavedTensor sr(ref), st(target);
  const std::array<int64_t, 2> tsize{g.ht, g.wt};
  return trace.result(record(op, out, {ref, target},
                             [sr, st, tsize, stride, offset](const Tensor& gr, const Node& n) {
                               TensorList r(2);
                               if (n.needs_grad(0))
                                 r[0] = dm_correlation_grad_ref(gr, st.unpack(n), stride, offset);
                               if (n.needs_grad(1))
                                 r[1] = dm_correlation_grad_target(gr, sr.unpack(n), tsize,
                                                                   stride, offset);
                               return r;
                             }));
}

Tensor dm_correlation_grad_ref(const Tensor& grad, const Tensor& target, int64_t stride,
                               int64_t offset) {
  const char* op = "dm_correlation_grad_ref";
  TraceOp trace(op, {grad, target});
  check_scores(op, "grad", grad);
  check_descriptors(op, "target", target);
  check_same_dtype(op, "grad", grad, "target", target);
  CVG_CHECK(grad.shape()[0] == target.shape()[0], op,
            ": grad and target must have the same N, got ", grad.shape(), " and ",
            target.shape());
  check_grid(op, stride);
  const Device dev = common_device(op, {grad, target});
  const Shape& s = grad.shape();
  const int64_t radius = (s[3] - 1) / 2;
  const Shape rshape{s[0], target.shape()[1], s[1], s[2]};
  const auto g = corr_geom(rshape, target.shape(), radius, stride, offset);
  const Tensor gc = dense(grad), tc = dense(target);
  const int64_t extent = corr_extent(rshape, target.shape(), radius, stride, offset);
  // Version 2 (tiled) is the GPU's default, 1 the CPU's (kernels/deepmatch.h).
  const auto tg = dm_grad_ref_tile_geom(g);
  // Default 1 on both devices: on an H100 the tiled version took 1.06-1.12x v1's time
  // (bench/results/NVIDIA_H100_80GB_HBM3, session 11).
  const int version = dm_corr_version() != 0 ? dm_corr_version() : 1;
  const bool tiled = version == 2 && numel_of(rshape) > 0 &&
                     tile_fits(op, dev, tg.cg, tg.scratch(g.d), grad.dtype());
  const int64_t blocks = tg.parts * g.n * g.h * tg.jtiles;
  // Part p's sums go to partial[p] and are added up below; with one part, straight to out.
  const bool parts = tiled && tg.parts > 1;
  Tensor out = parts ? Tensor() : Tensor::empty(rshape, grad.options());
  const Tensor partial =
      parts ? Tensor::empty({tg.parts, g.n, g.d, g.h, g.w}, grad.options()) : out;
  dispatch_dm(op, dev, grad.dtype(),
              {gc.numel(), tc.numel(), partial.numel(), extent, blocks, tg.scratch(g.d)},
              [&](auto tag, auto itag) {
                using T = decltype(tag);
                using I = decltype(itag);
                const auto gi = corr_geom<I>(rshape, target.shape(), radius, stride, offset);
                if (tiled) {
                  const DmCorrGradRefTiled<T, I> f{gc.data<T>(), tc.data<T>(), gi,
                                                   dm_grad_ref_tile_geom(gi), partial.data<T>()};
                  CVG_DM_RUN(op, dev, corr_grad_ref_tiled, f, blocks);
                } else {
                  const DmCorrGradRef<T, I> f{gc.data<T>(), tc.data<T>(), gi, out.data<T>()};
                  CVG_DM_RUN(op, dev, corr_grad_ref, f, g.n * dm_corr_blocks(g.d) * g.h * g.w);
                }
              });
  if (parts) {
    const NoGradGuard raw;
    out = sum(partial, {0});  // the parts in a fixed order on both devices
  }
  // Bilinear in (grad, target): <u, out> = <grad, corr(u, target)> = <target, grad_target(grad, u)>.
  const SavedTensor sg(grad), st(target);
  const std::array<int64_t, 2> tsize{g.ht, g.wt};
  return trace.result(
      record(op, out, {grad, target},
             [sg, st, tsize, radius, stride, offset](const Tensor& u, const Node& n) {
               TensorList r(2);
               if (n.needs_grad(0)) r[0] = dm_correlation(u, st.unpack(n), radius, stride, offset);
               if (n.needs_grad(1))
                 r[1] = dm_correlation_grad_target(sg.unpack(n), u, tsize, stride, offset);
               return r;
             }));
}

Tensor dm_correlation_grad_target(const Tensor& grad, const Tensor& ref,
                                  std::array<int64_t, 2> target_size, int64_t stride,
                                  int64_t offset) {
  const char* op = "dm_correlation_grad_target";
  TraceOp trace(op, {grad, ref});
  check_scores(op, "grad", grad);
  check_descriptors(op, "ref", ref);
  check_same_dtype(op, "grad", grad, "ref", ref);
  const Shape& s = grad.shape();
  CVG_CHECK(ref.shape()[0] == s[0] && ref.shape()[2] == s[1] && ref.shape()[3] == s[2], op,
            ": ref must be N x d x H x W with grad's N, H, W, got ref ", ref.shape(),
            " and grad ", s);
  CVG_CHECK(target_size[0] >= 0 && target_size[1] >= 0, op,
            ": target_size must be non-negative, got ", target_size[0], " x ", target_size[1]);
  check_grid(op, stride);
  const Device dev = common_device(op, {grad, ref});
  const int64_t radius = (s[3] - 1) / 2;
  const Shape tshape{s[0], ref.shape()[1], target_size[0], target_size[1]};
  const auto g = corr_geom(ref.shape(), tshape, radius, stride, offset);
  const Tensor gc = dense(grad), rc = dense(ref);
  Tensor out = Tensor::empty(tshape, grad.options());
  const int64_t extent = corr_extent(ref.shape(), tshape, radius, stride, offset);
  // Version 2 (tiled) is the GPU's default, 1 the CPU's (kernels/deepmatch.h).
  const auto tg = dm_grad_tgt_tile_geom(g);
  // Default 1 on both devices: on an H100 the tiled version took 1.06-1.12x v1's time
  // (bench/results/NVIDIA_H100_80GB_HBM3, session 11).
  const int version = dm_corr_version() != 0 ? dm_corr_version() : 1;
  const bool tiled = version == 2 && out.numel() > 0 && g.h * g.w > 0 &&
                     tile_fits(op, dev, tg.cg, tg.scratch(), grad.dtype());
  const int64_t blocks = g.n * g.ht * tg.xtiles;
  dispatch_dm(op, dev, grad.dtype(),
              {gc.numel(), rc.numel(), out.numel(), extent, blocks, tg.scratch()},
              [&](auto tag, auto itag) {
                using T = decltype(tag);
                using I = decltype(itag);
                const auto gi = corr_geom<I>(ref.shape(), tshape, radius, stride, offset);
                if (tiled) {
                  const DmCorrGradTargetTiled<T, I> f{gc.data<T>(), rc.data<T>(), gi,
                                                      dm_grad_tgt_tile_geom(gi), out.data<T>()};
                  CVG_DM_RUN(op, dev, corr_grad_target_tiled, f, blocks);
                } else {
                  const DmCorrGradTarget<T, I> f{gc.data<T>(), rc.data<T>(), gi, out.data<T>()};
                  CVG_DM_RUN(op, dev, corr_grad_target, f, g.n * dm_corr_blocks(g.d) * g.ht * g.wt);
                }
              });
  // <u, out> = <grad, corr(ref, u)> = <ref, grad_ref(grad, u)>.
  const SavedTensor sg(grad), sr(ref);
  return trace.result(record(op, out, {grad, ref},
                             [sg, sr, radius, stride, offset](const Tensor& u, const Node& n) {
                               TensorList r(2);
                               if (n.needs_grad(0))
                                 r[0] = dm_correlation(sr.unpack(n), u, radius, stride, offset);
                               if (n.needs_grad(1))
                                 r[1] = dm_correlation_grad_ref(sg.unpack(n), u, stride, offset);
                               return r;
                             }));
}

// ---- max pooling over q --------------------------------------------------------------------

DmPooled dm_max_pool(const Tensor& s) {
  const char* op = "dm_max_pool";
  TraceOp trace(op, {s});
  check_scores(op, "input", s);
  const Device dev = s.device();
  const auto g = pool_geom(s.shape());
  const Tensor sc = dense(s);
  Tensor values = Tensor::empty(with_k(s.shape(), g.kc), s.options());
  Tensor switches = Tensor::empty(values.shape(), uint8_on(dev));
  dispatch_dm(op, dev, s.dtype(), {sc.numel(), values.numel()}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    // Default: whole planes on the CPU (0: DmPoolForwardPlane), one output per item on the GPU;
    // a DmLayerVersionGuard picks the per-item kernel (1) or the pairs (2 and up) on both.
    const int version = layer_version(2, dev.is_cuda() ? 1 : 0);
    if (version == 0) {
      const DmPoolForwardPlane<T, I> f{sc.data<T>(), pool_geom<I>(s.shape()), values.data<T>(),
                                       switches.data<uint8_t>()};
      dm_pool_forward_plane_cpu(f, g.points);
    } else if (version == 2) {
      const I pairs = static_cast<I>((g.kc + 1) / 2);
      const DmPoolForwardPairs<T, I> f{sc.data<T>(),          pool_geom<I>(s.shape()),
                                       pairs,                 FastDivOf<I>::for_size(pairs),
                                       values.data<T>(),      switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, pool_forward_pairs, f, g.points * g.kc * pairs);
    } else {
      const DmPoolForward<T, I> f{sc.data<T>(), pool_geom<I>(s.shape()), values.data<T>(),
                                  switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, pool_forward, f, values.numel());
    }
  });
  const int64_t k = g.k;
  values = record(op, values, {s}, [switches, k](const Tensor& gr, const Node&) {
    return TensorList{dm_max_pool_backward(gr, switches, k)};
  });
  return {trace.result(values), switches};
}

Tensor dm_max_pool_backward(const Tensor& grad, const Tensor& switches, int64_t fine_k) {
  const char* op = "dm_max_pool_backward";
  TraceOp trace(op, {grad, switches});
  check_scores(op, "grad", grad);
  CVG_CHECK(fine_k >= 1 && fine_k % 2 == 1, op, ": fine_k must be odd and positive, got ",
            fine_k);
  const Shape fine = with_k(grad.shape(), fine_k);
  const auto g = pool_geom(fine);
  CVG_CHECK(grad.shape()[3] == g.kc, op, ": grad has K = ", grad.shape()[3],
            " but fine_k = ", fine_k, " pools to K = ", g.kc);
  check_switches(op, switches, grad.shape());
  const Device dev = common_device(op, {grad, switches});
  const Tensor gc = dense(grad), swc = switches.contiguous();
  Tensor out = Tensor::empty(fine, grad.options());
  const int64_t items = pool_cell_items(g);
  dispatch_dm(op, dev, grad.dtype(), {gc.numel(), out.numel(), items}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    // Default: whole planes on the CPU (0: DmPoolBackwardPlane, 0.08 against 0.71 ms for
    // the cells, cpu/dm_max_pool_bwd, _v2), cells on the GPU (H100, 1024 points, K = 161: 56-59
    // against 206 us for one element per item, 2026-11-23).
    const int version = layer_version(2, dev.is_cuda() ? 2 : 0);
    if (version == 0) {
      const DmPoolBackwardPlane<T, I> f{gc.data<T>(), swc.data<uint8_t>(), pool_geom<I>(fine),
                                        out.data<T>()};
      dm_pool_backward_plane_cpu(f, g.points);
    } else if (version == 2) {
      const DmPoolBackwardCells<T, I> f{gc.data<T>(), swc.data<uint8_t>(), pool_geom<I>(fine),
                                        pool_cells<I>(g), out.data<T>()};
      CVG_DM_RUN(op, dev, pool_backward_cells, f, items);
    } else {
      const DmPoolBackward<T, I> f{gc.data<T>(), swc.data<uint8_t>(), pool_geom<I>(fine),
                                   out.data<T>()};
      CVG_DM_RUN(op, dev, pool_backward, f, out.numel());
    }
  });
  return trace.result(record(op, out, {grad}, [swc](const Tensor& u, const Node&) {
    return TensorList{dm_pool_gather(u, swc)};
  }));
}

Tensor dm_pool_gather(const Tensor& x, const Tensor& switches) {
  const char* op = "dm_pool_gather";
  TraceOp trace(op, {x, switches});
  check_scores(op, "input", x);
  const auto g = pool_geom(x.shape());
  check_switches(op, switches, with_k(x.shape(), g.kc));
  const Device dev = common_device(op, {x, switches});
  const Tensor xc = dense(x), swc = switches.contiguous();
  Tensor out = Tensor::empty(switches.shape(), x.options());
  dispatch_dm(op, dev, x.dtype(), {xc.numel(), out.numel()}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const DmPoolGather<T, I> f{xc.data<T>(), swc.data<uint8_t>(), pool_geom<I>(x.shape()),
                               out.data<T>()};
    CVG_DM_RUN(op, dev, pool_gather, f, out.numel());
  });
  const int64_t k = g.k;
  return trace.result(record(op, out, {x}, [swc, k](const Tensor& u, const Node&) {
    return TensorList{dm_max_pool_backward(u, swc, k)};
  }));
}

// ---- aggregation and power -----------------------------------------------------------------

namespace {

Tensor aggregate_impl(const char* op, const Tensor& s, int64_t level, bool backward) {
  TraceOp trace(op, {s});
  check_scores(op, backward ? "grad" : "input", s);
  check_level(op, level);
  const Device dev = s.device();
  const auto g = agg_geom(s.shape(), level);
  const Tensor sc = dense(s);
  Tensor out = Tensor::empty(s.shape(), s.options());
  const int64_t runs = agg_run_items(g), spans = agg_span_items(g);
  const int64_t runs4 = agg_run_items<kDmAggShortRun>(g);
  const int version = agg_version(dev);
  dispatch_dm(op, dev, s.dtype(), {sc.numel(), agg_extent(g), runs, runs4, spans},
              [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const auto gi = agg_geom<I>(s.shape(), level);
    if (backward && version == 4) {
      const DmAggBackwardRun4<T, I> f{sc.data<T>(), gi, agg_runs<kDmAggShortRun>(gi),
                                      out.data<T>()};
      CVG_DM_RUN(op, dev, agg_backward_run4, f, runs4);
    } else if (backward && version == 3) {
      const DmAggBackwardSpan<T, I> f{sc.data<T>(), gi, agg_spans(gi), out.data<T>()};
      CVG_DM_RUN(op, dev, agg_backward_span, f, spans);
    } else if (backward && version == 2) {
      const DmAggBackwardRun<T, I> f{sc.data<T>(), gi, agg_runs(gi), out.data<T>()};
      CVG_DM_RUN(op, dev, agg_backward_run, f, runs);
    } else if (backward) {
      const DmAggBackward<T, I> f{sc.data<T>(), gi, out.data<T>()};
      CVG_DM_RUN(op, dev, agg_backward, f, out.numel());
    } else if (version == 4) {
      const DmAggForwardRun4<T, I> f{sc.data<T>(), gi, agg_runs<kDmAggShortRun>(gi),
                                     out.data<T>()};
      CVG_DM_RUN(op, dev, agg_forward_run4, f, runs4);
    } else if (version == 3) {
      const DmAggForwardSpan<T, I> f{sc.data<T>(), gi, agg_spans(gi), out.data<T>()};
      CVG_DM_RUN(op, dev, agg_forward_span, f, spans);
    } else if (version == 2) {
      const DmAggForwardRun<T, I> f{sc.data<T>(), gi, agg_runs(gi), out.data<T>()};
      CVG_DM_RUN(op, dev, agg_forward_run, f, runs);
    } else {
      const DmAggForward<T, I> f{sc.data<T>(), gi, out.data<T>()};
      CVG_DM_RUN(op, dev, agg_forward, f, out.numel());
    }
  });
  // Linear: each is the other's adjoint.
  return trace.result(record(op, out, {s}, [level, backward](const Tensor& u, const Node&) {
    return TensorList{backward ? dm_aggregate(u, level) : dm_aggregate_backward(u, level)};
  }));
}

}  // namespace

Tensor dm_aggregate(const Tensor& s, int64_t level) {
  return aggregate_impl("dm_aggregate", s, level, false);
}

Tensor dm_aggregate_backward(const Tensor& grad, int64_t level) {
  return aggregate_impl("dm_aggregate_backward", grad, level, true);
}

namespace {

// dm_power's backward as one kernel (DmPowerBackward) and a sum of its partial sums: {d a, d nu},
// each undefined when not wanted. The same values as the composition in dm_power's closure, to
// rounding.
TensorList power_backward_fused(const Tensor& grad, const Tensor& a, const Tensor& nu,
                                bool want_a, bool want_nu) {
  const char* op = "dm_power_backward";
  const Device dev = a.device();
  const Tensor gc = dense(grad), ac = dense(a), nc = dense(nu);
  const int64_t n = ac.numel(), items = n / kDmPowerRun + (n % kDmPowerRun != 0);
  const int64_t blocks = (items + kDmGridBlock - 1) / kDmGridBlock;
  TensorList r(2);
  Tensor block_sum, total;
  if (want_a) r[0] = Tensor::empty(a.shape(), a.options());
  if (want_nu) {
    block_sum = Tensor::empty({blocks}, a.options());
    total = n > 0 ? Tensor::empty({}, a.options()) : zeros({}, a.options());
  }
  // Items reach element kDmPowerRun items - 1 < n + kDmPowerRun, blocks item 256 blocks - 1.
  dispatch_dm(op, dev, a.dtype(), {n, n + kDmPowerRun, blocks * kDmGridBlock},
              [&](auto tag, auto itag) {
                using T = decltype(tag);
                using I = decltype(itag);
                DmGridSum<T, I> dnu;
                if (want_nu) {
                  dnu.block_sum = block_sum.data<T>();
                  dnu.total = total.data<T>();
                  dnu.blocks = static_cast<I>(blocks);
                }
                const DmPowerBackward<T, I> f{gc.data<T>(),      ac.data<T>(), nc.data<T>(),
                                              want_a ? r[0].data<T>() : nullptr,
                                              dnu,               static_cast<I>(n),
                                              static_cast<I>(items)};
                CVG_DM_RUN(op, dev, power_backward, f, items);
              });
  if (want_nu) r[1] = reshape(total, nu.shape());
  return r;
}

}  // namespace

Tensor dm_power(const Tensor& a, const Tensor& nu) {
  const char* op = "dm_power";
  TraceOp trace(op, {a, nu});
  CVG_CHECK(a.defined() && nu.defined(), op, ": undefined input or nu");
  CVG_CHECK(is_floating(a.dtype()), op, ": input must be float32 or float64, got ",
            dtype_name(a.dtype()));
  CVG_CHECK(nu.numel() == 1, op, ": nu must hold one exponent, got shape ", nu.shape());
  check_same_dtype(op, "input", a, "nu", nu);
  const Device dev = common_device(op, {a, nu});
  const Tensor ac = dense(a), nc = dense(nu);
  Tensor out = Tensor::empty(a.shape(), a.options());
  // Items reach element 4 quarter - 1 <= n + 2 (the extent n + span keeps that in range).
  dispatch_dm(op, dev, a.dtype(), {ac.numel(), ac.numel() + kDmPowerSpan}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const I n = static_cast<I>(out.numel());
    const I quarter = n / kDmPowerSpan + (n % kDmPowerSpan != 0);
    const DmPowerForward<T, I> f{ac.data<T>(), nc.data<T>(), out.data<T>(), n, quarter};
    CVG_DM_RUN(op, dev, power_forward, f, quarter);
  });
  const SavedTensor sa(a), snu(nu), sy(out, /*is_output=*/true);
  return trace.result(record(op, out, {a, nu}, [sa, snu, sy](const Tensor& g, const Node& n) {
    const Tensor a = sa.unpack(n), nu = snu.unpack(n);
    // Without create_graph nothing differentiates this backward: one kernel and a sum instead
    // of the composition's ten elementwise passes over the scores (the compositions of this
    // backward and the loss's took about 40 % of the GPU's Deep Matching step: docs/deepmatch.md).
    if (!GradMode::enabled())
      return power_backward_fused(g, a, nu, n.needs_grad(0), n.needs_grad(1));
    const Tensor nu0 = reshape(nu, {});
    TensorList r(2);
    // d A = g nu A^(nu - 1), 0 where A <= 0 (dm_power's own convention).
    if (n.needs_grad(0)) r[0] = mul(g, mul(dm_power(a, sub(nu0, 1.0)), nu0));
    if (n.needs_grad(1)) {
      // d nu = sum g A^nu ln A; ln A is taken of 1 where A <= 0, so those terms vanish.
      const Tensor pos = gt(a.detach(), zeros({}, a.options()));
      const Tensor ln_a = log(where(pos, a, ones({}, a.options())));
      r[1] = reshape(sum(mul(mul(g, sy.unpack(n)), ln_a)), nu.shape());
    }
    return r;
  }));
}

// ---- disaggregation ------------------------------------------------------------------------

DmDisaggregated dm_disaggregate(const Tensor& q, int64_t level) {
  const char* op = "dm_disaggregate";
  TraceOp trace(op, {q});
  check_scores(op, "input", q);
  check_level(op, level);
  const Device dev = q.device();
  const auto g = agg_geom(q.shape(), level);
  const Tensor qc = dense(q);
  Tensor values = Tensor::empty(q.shape(), q.options());
  Tensor switches = Tensor::empty(q.shape(), uint8_on(dev));
  const int64_t runs = agg_run_items(g), spans = agg_span_items(g);
  const int64_t runs4 = agg_run_items<kDmAggShortRun>(g);
  const int version = agg_version(dev);
  dispatch_dm(op, dev, q.dtype(), {qc.numel(), agg_extent(g), runs, runs4, spans},
              [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const auto gi = agg_geom<I>(q.shape(), level);
    if (version == 4) {
      const DmDisaggForwardRun4<T, I> f{qc.data<T>(), gi, agg_runs<kDmAggShortRun>(gi),
                                        values.data<T>(), switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, disagg_forward_run4, f, runs4);
    } else if (version == 3) {
      const DmDisaggForwardSpan<T, I> f{qc.data<T>(), gi, agg_spans(gi), values.data<T>(),
                                        switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, disagg_forward_span, f, spans);
    } else if (version == 2) {
      const DmDisaggForwardRun<T, I> f{qc.data<T>(), gi, agg_runs(gi), values.data<T>(),
                                       switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, disagg_forward_run, f, runs);
    } else {
      const DmDisaggForward<T, I> f{qc.data<T>(), gi, values.data<T>(), switches.data<uint8_t>()};
      CVG_DM_RUN(op, dev, disagg_forward, f, values.numel());
    }
  });
  values = record(op, values, {q}, [switches, level](const Tensor& gr, const Node&) {
    return TensorList{dm_disaggregate_backward(gr, switches, level)};
  });
  return {trace.result(values), switches};
}

namespace {

Tensor disagg_route(const char* op, const Tensor& x, const Tensor& switches, int64_t level,
                    bool backward) {
  TraceOp trace(op, {x, switches});
  check_scores(op, backward ? "grad" : "input", x);
  check_level(op, level);
  check_switches(op, switches, x.shape());
  const Device dev = common_device(op, {x, switches});
  const auto g = agg_geom(x.shape(), level);
  const Tensor xc = dense(x), swc = switches.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.options());
  const int64_t runs = agg_run_items(g), spans = agg_span_items(g);
  const int64_t runs4 = agg_run_items<kDmAggShortRun>(g);
  const int version = agg_version(dev);
  dispatch_dm(op, dev, x.dtype(), {xc.numel(), agg_extent(g), runs, runs4, spans},
              [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const auto gi = agg_geom<I>(x.shape(), level);
    if (backward && version == 4) {
      const DmDisaggBackwardRun4<T, I> f{xc.data<T>(), swc.data<uint8_t>(), gi,
                                         agg_runs<kDmAggShortRun>(gi), out.data<T>()};
      CVG_DM_RUN(op, dev, disagg_backward_run4, f, runs4);
    } else if (backward && version == 3) {
      const DmDisaggBackwardSpan<T, I> f{xc.data<T>(), swc.data<uint8_t>(), gi, agg_spans(gi),
                                         out.data<T>()};
      CVG_DM_RUN(op, dev, disagg_backward_span, f, spans);
    } else if (backward && version == 2) {
      const DmDisaggBackwardRun<T, I> f{xc.data<T>(), swc.data<uint8_t>(), gi, agg_runs(gi),
                                        out.data<T>()};
      CVG_DM_RUN(op, dev, disagg_backward_run, f, runs);
    } else if (backward) {
      const DmDisaggBackward<T, I> f{xc.data<T>(), swc.data<uint8_t>(), gi, out.data<T>()};
      CVG_DM_RUN(op, dev, disagg_backward, f, out.numel());
    } else {
      const DmDisaggGather<T, I> f{xc.data<T>(), swc.data<uint8_t>(), gi, out.data<T>()};
      CVG_DM_RUN(op, dev, disagg_gather, f, out.numel());
    }
  });
  return trace.result(
      record(op, out, {x}, [swc, level, backward](const Tensor& u, const Node&) {
        return TensorList{backward ? dm_disaggregate_gather(u, swc, level)
                                   : dm_disaggregate_backward(u, swc, level)};
      }));
}

}  // namespace

Tensor dm_disaggregate_backward(const Tensor& grad, const Tensor& switches, int64_t level) {
  return disagg_route("dm_disaggregate_backward", grad, switches, level, true);
}

Tensor dm_disaggregate_gather(const Tensor& x, const Tensor& switches, int64_t level) {
  return disagg_route("dm_disaggregate_gather", x, switches, level, false);
}

// ---- unpooling + skip sum ------------------------------------------------------------------

namespace {

// q_half (coarse, decides the winners) and switches must match the pooling of fine_shape.
DmPoolGeom<int64_t> check_unpool(const char* op, const Tensor& q_half, const Tensor& switches,
                        const Shape& fine_shape) {
  check_scores(op, "q_half", q_half);
  const auto g = pool_geom(fine_shape);
  const Shape coarse = with_k(fine_shape, g.kc);
  CVG_CHECK(q_half.shape() == coarse, op, ": q_half must have shape ", coarse,
            " (the pooling of ", fine_shape, "), got ", q_half.shape());
  check_switches(op, switches, coarse);
  return g;
}

}  // namespace

Tensor dm_unpool(const Tensor& q_half, const Tensor& switches, const Tensor& s) {
  const char* op = "dm_unpool";
  TraceOp trace(op, {q_half, switches, s});
  check_scores(op, "s", s);
  const auto g = check_unpool(op, q_half, switches, s.shape());
  check_same_dtype(op, "q_half", q_half, "s", s);
  const Device dev = common_device(op, {q_half, switches, s});
  const Tensor qc = dense(q_half), swc = switches.contiguous(), sc = dense(s);
  Tensor out = Tensor::empty(s.shape(), s.options());
  const int64_t items = pool_cell_items(g);
  dispatch_dm(op, dev, s.dtype(), {qc.numel(), sc.numel(), items}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    // Default: whole planes on the CPU (0: DmUnpoolForwardPlane, 12x faster than the cells
    // there: cpu/dm_unpool, _v2), cells on the GPU (H100, 1024 points, K = 161: 112 against
    // 276 us for one element per item, 2026-11-23). A DmLayerVersionGuard picks version 1 or 2
    // on both devices.
    const int version = layer_version(2, dev.is_cuda() ? 2 : 0);
    if (version == 0) {
      const DmUnpoolForwardPlane<T, I> f{qc.data<T>(), swc.data<uint8_t>(), sc.data<T>(),
                                         pool_geom<I>(s.shape()), out.data<T>()};
      dm_unpool_forward_plane_cpu(f, g.points);
    } else if (version == 2) {
      const DmUnpoolForwardCells<T, I> f{qc.data<T>(), swc.data<uint8_t>(), sc.data<T>(),
                                         pool_geom<I>(s.shape()), pool_cells<I>(g),
                                         out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_forward_cells, f, items);
    } else {
      const DmUnpoolForward<T, I> f{qc.data<T>(), swc.data<uint8_t>(), sc.data<T>(),
                                    pool_geom<I>(s.shape()), out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_forward, f, out.numel());
    }
  });
  const int64_t k = g.k;
  const SavedTensor sy(out, /*is_output=*/true);
  return trace.result(record(op, out, {q_half, s}, [qc, swc, sy, k](const Tensor& gr,
                                                                    const Node& n) {
    TensorList r(2);
    if (!GradMode::enabled()) {
      // No graph of the backward: both gradients in one pass (dm_unpool_grads).
      auto d = dm_unpool_grads(gr, qc, swc, sy.unpack(n), n.needs_grad(0), n.needs_grad(1));
      r[0] = std::move(d.q_half);
      r[1] = std::move(d.s);
      return r;
    }
    if (n.needs_grad(0)) r[0] = dm_unpool_backward(gr, qc, swc, k);
    // The skip path passes the gradient where Q_l is finite.
    if (n.needs_grad(1)) r[1] = dm_unpool_skip_backward(gr, sy.unpack(n));
    return r;
  }));
}

DmUnpoolGrads dm_unpool_grads(const Tensor& grad, const Tensor& q_half, const Tensor& switches,
                              const Tensor& q, bool want_q_half, bool want_s) {
  const char* op = "dm_unpool_grads";
  TraceOp trace(op, {grad, q_half, switches, q});
  check_scores(op, "grad", grad);
  check_scores(op, "q", q);
  CVG_CHECK(grad.shape() == q.shape(), op, ": grad and q must have one shape, got ", grad.shape(),
            " and ", q.shape());
  const auto g = check_unpool(op, q_half, switches, q.shape());
  check_same_dtype(op, "grad", grad, "q", q);
  check_same_dtype(op, "grad", grad, "q_half", q_half);
  CVG_CHECK(!(GradMode::enabled() && grad.requires_grad()), op,
            ": not differentiable (grad requires a gradient); compose dm_unpool_backward and "
            "dm_unpool_skip_backward to build a graph of dm_unpool's backward");
  const Device dev = common_device(op, {grad, q_half, switches, q});
  DmUnpoolGrads r;
  if (!want_q_half && !want_s) return r;
  // Default: one pass by cells on the GPU; on the CPU the two ops (by planes), faster there
  // (cpu/dm_unpool_grads 0.38 ms against 0.98 ms for the cells, _v2: 192 points, K = 33). A
  // DmLayerVersionGuard picks the cells (2 or 3) or the two ops' version 1 (1) on both devices.
  if (layer_version(2, dev.is_cuda() ? 2 : 0) != 2) {
    if (want_q_half) r.q_half = dm_unpool_backward(grad, q_half, switches, g.k);
    if (want_s) r.s = dm_unpool_skip_backward(grad, q);
    trace.result(want_s ? r.s : r.q_half);
    return r;
  }
  const Tensor gc = dense(grad), qc = dense(q), qhc = dense(q_half), swc = switches.contiguous();
  if (want_q_half) r.q_half = Tensor::empty(q_half.shape(), grad.options());
  if (want_s) r.s = Tensor::empty(grad.shape(), grad.options());
  const int64_t items = pool_cell_items(g);
  dispatch_dm(op, dev, grad.dtype(), {gc.numel(), qhc.numel(), items}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const DmUnpoolGradsCells<T, I> f{gc.data<T>(),
                                     qc.data<T>(),
                                     qhc.data<T>(),
                                     swc.data<uint8_t>(),
                                     pool_geom<I>(q.shape()),
                                     pool_cells<I>(g),
                                     want_s ? r.s.data<T>() : nullptr,
                                     want_q_half ? r.q_half.data<T>() : nullptr};
    CVG_DM_RUN(op, dev, unpool_grads_cells, f, items);
  });
  trace.result(want_s ? r.s : r.q_half);
  return r;
}

Tensor dm_unpool_skip_backward(const Tensor& grad, const Tensor& q) {
  const char* op = "dm_unpool_skip_backward";
  TraceOp trace(op, {grad, q});
  check_scores(op, "grad", grad);
  check_scores(op, "q", q);
  CVG_CHECK(grad.shape() == q.shape(), op, ": grad and q must have one shape, got ", grad.shape(),
            " and ", q.shape());
  check_same_dtype(op, "grad", grad, "q", q);
  const Device dev = common_device(op, {grad, q});
  const Tensor gc = dense(grad), qc = dense(q);
  Tensor out = Tensor::empty(grad.shape(), grad.options());
  const int64_t n = gc.numel(), quarter = n / kDmSkipSpan + (n % kDmSkipSpan != 0);
  // Items form indices up to kDmSkipSpan quarter - 1 < n + kDmSkipSpan.
  dispatch_dm(op, dev, grad.dtype(), {n, n + kDmSkipSpan}, [&](auto tag, auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const DmSkipBackward<T, I> f{gc.data<T>(), qc.data<T>(), out.data<T>(), static_cast<I>(n),
                                 static_cast<I>(quarter)};
    CVG_DM_RUN(op, dev, skip_backward, f, quarter);
  });
  // Linear in grad with a mask q decides: its own adjoint, and q gets no gradient.
  return trace.result(record(op, out, {grad}, [qc](const Tensor& g, const Node&) {
    return TensorList{dm_unpool_skip_backward(g, qc)};
  }));
}

namespace {

Tensor unpool_route(const char* op, const Tensor& x, const Tensor& q_half,
                    const Tensor& switches, int64_t fine_k, bool backward) {
  TraceOp trace(op, {x, q_half, switches});
  check_scores(op, backward ? "grad" : "input", x);
  CVG_CHECK(fine_k >= 1 && fine_k % 2 == 1, op, ": fine_k must be odd and positive, got ",
            fine_k);
  const Shape fine = with_k(q_half.defined() && q_half.dim() == 5 ? q_half.shape() : x.shape(),
                            fine_k);
  check_unpool(op, q_half, switches, fine);
  check_same_dtype(op, backward ? "grad" : "input", x, "q_half", q_half);
  const Shape want = backward ? fine : q_half.shape();
  CVG_CHECK(x.shape() == want, op, ": ", backward ? "grad" : "input", " must have shape ", want,
            ", got ", x.shape());
  const Device dev = common_device(op, {x, q_half, switches});
  const Tensor xc = dense(x), qc = dense(q_half), swc = switches.contiguous();
  Tensor out = Tensor::empty(backward ? q_half.shape() : fine, x.options());
  const auto g = pool_geom(fine);
  const int64_t items = pool_cell_items(g);
  // Defaults: as dm_unpool, whole planes on the CPU (0); one element per item on the GPU, where
  // the backward's cells (about one coarse output each) measured no faster (H100, 1024 points,
  // K = 161: 94 against 92 us, 2026-11-23); the adjoint's cells have no benchmark row yet.
  const int version = layer_version(2, dev.is_cuda() ? 1 : 0);
  dispatch_dm(op, dev, x.dtype(), {xc.numel(), qc.numel(), out.numel(), items}, [&](auto tag,
                                                                                  auto itag) {
    using T = decltype(tag);
    using I = decltype(itag);
    const auto gi = pool_geom<I>(fine);
    if (version == 0 && backward) {
      const DmUnpoolBackwardPlane<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                          out.data<T>()};
      dm_unpool_backward_plane_cpu(f, g.points);
    } else if (version == 0) {
      const DmUnpoolAdjointPlane<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                         out.data<T>()};
      dm_unpool_adjoint_plane_cpu(f, g.points);
    } else if (version == 2 && backward) {
      const DmUnpoolBackwardCells<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                          pool_cells<I>(g), out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_backward_cells, f, items);
    } else if (version == 2) {
      const DmUnpoolAdjointCells<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                         pool_cells<I>(g), out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_adjoint_cells, f, items);
    } else if (backward) {
      const DmUnpoolBackward<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                     out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_backward, f, out.numel());
    } else {
      const DmUnpoolAdjoint<T, I> f{xc.data<T>(), qc.data<T>(), swc.data<uint8_t>(), gi,
                                    out.data<T>()};
      CVG_DM_RUN(op, dev, unpool_adjoint, f, out.numel());
    }
  });
  return trace.result(
      record(op, out, {x}, [qc, swc, fine_k, backward](const Tensor& u, const Node&) {
        return TensorList{backward ? dm_unpool_adjoint(u, qc, swc, fine_k)
                                   : dm_unpool_backward(u, qc, swc, fine_k)};
      }));
}

}  // namespace

Tensor dm_unpool_backward(const Tensor& grad, const Tensor& q_half, const Tensor& switches,
                          int64_t fine_k) {
  return unpool_route("dm_unpool_backward", grad, q_half, switches, fine_k, true);
}

Tensor dm_unpool_adjoint(const Tensor& x, const Tensor& q_half, const Tensor& switches,
                         int64_t fine_k) {
  return unpool_route("dm_unpool_adjoint", x, q_half, switches, fine_k, false);
}

// ---- structured hinge loss -----------------------------------------------------------------

Tensor dm_hinge_loss(const Tensor& q, const Tensor& gt, double sigma) {
  const char* op = "dm_hinge_loss";
  TraceOp trace(op, {q, gt});
  check_scores(op, "input", q);
  CVG_CHECK(gt.defined(), op, ": undefined gt");
  CVG_CHECK(gt.dtype() == DType::int32 || gt.dtype() == DType::int64, op,
            ": gt must be int32 or int64, got ", dtype_name(gt.dtype()));
  const Shape& s = q.shape();
  const Shape want{s[0], s[1], s[2], 2};
  CVG_CHECK(gt.shape() == want, op, ": gt must be N x H x W x 2 = ", want, " for input ", s,
            ", got ", gt.shape());
  CVG_CHECK(sigma > 0 && std::isfinite(sigma), op, ": sigma must be positive, got ", sigma);
  const Device dev = common_device(op, {q, gt});
  const Tensor qc = dense(q), gtc = gt.to(DType::int32).contiguous();
  const auto g = hinge_geom<int64_t>(s, sigma);
  const double inv_terms = q.numel() > 0 ? 1.0 / static_cast<double>(q.numel()) : 0.0;
  const Shape points{s[0], s[1], s[2]};
  const Tensor point_sum = Tensor::empty(points, q.options());
  const Tensor active_count = Tensor::empty(points, q.options());
  // 0 when there are no points (no block runs)
  Tensor loss = g.points > 0 ? Tensor::empty({}, q.options()) : zeros({}, q.options());
  dispatch_dm(op, dev, q.dtype(), {qc.numel(), gtc.numel(), g.points * g.slices},
              [&](auto tag, auto itag) {
                using T = decltype(tag);
                using I = decltype(itag);
                const DmGridSum<T, I> mean{point_sum.data<T>(), loss.data<T>(),
                                           static_cast<I>(g.points), inv_terms};
                const DmHingeLoss<T, I> f{qc.data<T>(), gtc.data<int32_t>(),
                                          hinge_geom<I>(s, sigma), mean, active_count.data<T>()};
                CVG_DM_RUN(op, dev, hinge_loss, f, g.points);
              });
  // d loss / d Q is a constant (+1 per active term, -count at the ground truth, over the
  // number of terms) almost everywhere times the incoming gradient: differentiable in that
  // gradient, with zero second derivative in Q.
  // Saved, not captured as tensors: qc is q's storage and gtc may be the caller's gt, and the
  // backward reads both; an in-place change before backward is then an error, not a silently
  // different gradient.
  const SavedTensor saved_q(qc), saved_gt(gtc);
  loss = record(op, loss, {q}, [saved_q, saved_gt, active_count, sigma, inv_terms, dev](const Tensor& gr,
                                                                                       const Node& n) {
    const char* bop = "dm_hinge_loss_backward";
    const Tensor qc = saved_q.unpack(n), gtc = saved_gt.unpack(n);
    // Without create_graph one pass writes coefficient x gradient / terms; with it the
    // coefficients, multiplied by gradient x (1 / terms) in differentiable ops (the same bits).
    const bool fused = !GradMode::enabled();
    const Tensor grc = fused ? dense(gr) : Tensor();
    Tensor out = Tensor::empty(qc.shape(), qc.options());
    const auto g = hinge_geom<int64_t>(qc.shape(), sigma);
    const int64_t items = g.points * g.spans;
    dispatch_dm(bop, dev, qc.dtype(), {qc.numel(), gtc.numel(), items}, [&](auto tag, auto itag) {
      using T = decltype(tag);
      using I = decltype(itag);
      const DmHingeGrad<T, I> f{qc.data<T>(),
                                gtc.data<int32_t>(),
                                active_count.data<T>(),
                                fused ? grc.data<T>() : nullptr,
                                inv_terms,
                                hinge_geom<I>(qc.shape(), sigma),
                                out.data<T>()};
      CVG_DM_RUN(bop, dev, hinge_grad, f, items);
    });
    if (fused) return TensorList{out};
    return TensorList{mul(out, mul(gr, inv_terms))};
  });
  return trace.result(loss);
}

// ---- the U-network -------------------------------------------------------------------------

Tensor deep_matching(const Tensor& s0, const TensorList& nus) {
  const char* op = "deep_matching";
  TraceOp trace(op, {s0});
  check_scores(op, "s0", s0);
  std::vector<Tensor> s{s0}, sw;
  for (size_t l = 0; l < nus.size(); ++l) {
    DmPooled p = dm_max_pool(s.back());
    sw.push_back(p.switches);
    s.push_back(dm_power(dm_aggregate(p.values, static_cast<int64_t>(l)), nus[l]));
  }
  Tensor q = s.back();
  for (size_t l = nus.size(); l-- > 0;) {
    const DmDisaggregated d = dm_disaggregate(q, static_cast<int64_t>(l));
    q = dm_unpool(d.values, sw[l], s[l]);
  }
  return trace.result(q);
}

}  // namespace cvg
