// Pooling ops: argument checks, output sizes, device dispatch and autograd (conventions in
// kernels/pool.h). The public functions check their arguments and build a PoolGeometry; the
// *_impl functions below run the kernels and record the graph. Every backward is one of the
// ops of this file (or cvg::gather), so gradients can be differentiated again.
#include "kernels/pool.h"

#include <cstdint>
#include <limits>

#include "core/autograd.h"
#include "kernels/dispatch.h"
#include "core/trace.h"
#include "kernels/index.h"
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg {

namespace {

Shape as_shape(PoolSize2 p) { return {p[0], p[1]}; }

TensorOptions int32_on(Device dev) {
  return TensorOptions{}.with_dtype(DType::int32).with_device(dev);
}

// x must be N x C x H x W, or C x H x W when the op accepts unbatched input.
void check_input(const char* op, const char* name, const Tensor& x, bool allow_unbatched) {
  CVG_CHECK(x.defined(), op, ": undefined ", name);
  CVG_CHECK(x.dim() == 4 || (allow_unbatched && x.dim() == 3), op, ": ", name, " must be ",
            allow_unbatched ? "N x C x H x W or C x H x W" : "N x C x H x W", ", got shape ",
            x.shape());
  CVG_CHECK(is_floating(x.dtype()), op, ": ", name, " must be float32 or float64, got ",
            dtype_name(x.dtype()));
}

void check_switches(const char* op, const Tensor& switches, const char* like_name,
                    const Tensor& like) {
  CVG_CHECK(switches.defined(), op, ": undefined switches");
  CVG_CHECK(switches.dtype() == DType::int32, op, ": switches must be int32, got ",
            dtype_name(switches.dtype()));
  CVG_CHECK(switches.shape() == like.shape(), op, ": switches have shape ", switches.shape(),
            " but ", like_name, " has shape ", like.shape(), "; they must match");
}

// Switches are int32 plane-local indices, so a plane must have at most 2^31 - 1 elements.
void check_plane_fits_int32(const char* op, int64_t h, int64_t w) {
  CVG_CHECK(h * w <= std::numeric_limits<int32_t>::max(), op, ": a plane of ", h, " x ", w,
            " = ", h * w, " elements is too large for int32 switches (at most 2^31 - 1)");
}

struct PoolArgs {
  PoolSize2 kernel, stride, padding, dilation;
  bool ceil_mode = false;
};

std::string describe_args(const PoolArgs& a) {
  return str_cat("kernel ", as_shape(a.kernel), ", stride ", as_shape(a.stride), ", padding ",
                 as_shape(a.padding), ", dilation ", as_shape(a.dilation),
                 a.ceil_mode ? ", ceil_mode" : "");
}

void check_args(const char* op, const PoolArgs& a) {
  CVG_CHECK(a.kernel[0] >= 1 && a.kernel[1] >= 1, op, ": kernel size must be positive, got ",
            as_shape(a.kernel));
  CVG_CHECK(a.stride[0] >= 1 && a.stride[1] >= 1, op, ": stride must be positive, got ",
            as_shape(a.stride));
  CVG_CHECK(a.dilation[0] >= 1 && a.dilation[1] >= 1, op, ": dilation must be positive, got ",
            as_shape(a.dilation));
  for (int i = 0; i < 2; ++i)
    CVG_CHECK(a.padding[i] >= 0 && 2 * a.padding[i] <= a.kernel[i], op, ": padding ",
              as_shape(a.padding), " must be non-negative and at most half the kernel size ",
              as_shape(a.kernel));
}

// PyTorch's pooled size along one axis (pooling_output_shape in ATen's Pool.h); below 1 when no
// window fits, which regular_geometry refuses. The division rounds toward -inf, as ATen's
// div_rtn: span is negative when the (dilated) kernel is longer than the padded input, and
// ceil_mode then still gives one window that hangs past the input where span + s - 1 >= 0 (a
// 2 x 2 input, kernel 3, stride 2: one output; C++'s / truncates toward 0, and returning -1
// for any negative span refused that case).
int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  const int64_t num = ceil_mode ? span + s - 1 : span;
  const int64_t floor_div = num >= 0 ? num / s : -((-num + s - 1) / s);
  int64_t out = floor_div + 1;
  // ceil_mode may not start a window in the right padding: it must start inside the input
  // or the left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// Geometry of a regular pool of an N x C x H x W input, with all its checks.
PoolGeometry regular_geometry(const char* op, const Shape& in, const PoolArgs& a,
                              bool count_include_pad) {
  check_args(op, a);
  PoolGeometry g;
  g.planes = in[0] * in[1];
  g.count_include_pad = count_include_pad;
  PoolAxis* axes[2] = {&g.h, &g.w};
  int64_t out[2];
  for (int i = 0; i < 2; ++i) {
    out[i] = pooled_size(in[2 + i], a.kernel[i], a.stride[i], a.padding[i], a.dilation[i],
                         a.ceil_mode);
    *axes[i] = PoolAxis{in[2 + i], out[i], a.kernel[i], a.stride[i], a.padding[i],
                        a.dilation[i]};
  }
  CVG_CHECK(out[0] >= 1 && out[1] >= 1, op, ": input of ", in[2], " x ", in[3], " with ",
            describe_args(a), " gives an output size of less than 1 x 1");
  // A dilated kernel can step over a small input from the padding on one side to the padding
  // on the other; such a window has nothing to pool.
  for (int i = 0; i < 2; ++i)
    for (int64_t o = 0; o < out[i]; ++o) {
      const PoolTaps t = pool_taps(*axes[i], o, false);
      CVG_CHECK(t.begin < t.end, op, ": the window of output ", i == 0 ? "row " : "column ", o,
                " sees only padding (input ", in[2], " x ", in[3], ", ", describe_args(a), ")");
    }
  return g;
}

PoolGeometry adaptive_geometry(const char* op, const Shape& in, PoolSize2 out) {
  CVG_CHECK(out[0] >= 1 && out[1] >= 1, op, ": output_size must be positive, got ",
            as_shape(out));
  CVG_CHECK(in[2] >= 1 && in[3] >= 1, op, ": input plane must be non-empty, got shape ", in);
  PoolGeometry g;
  g.planes = in[0] * in[1];
  g.adaptive = true;
  g.h = PoolAxis{in[2], out[0]};
  g.w = PoolAxis{in[3], out[1]};
  return g;
}

Shape pooled_shape(const Shape& in, const PoolGeometry& g) {
  return {in[0], in[1], g.h.out, g.w.out};
}

// Backward ops get the pooled tensor and the input shape: both must agree with the geometry.
void check_backward_shapes(const char* op, const Tensor& grad_out, const Shape& input_shape,
                           const PoolGeometry& g) {
  const Shape expect = pooled_shape(input_shape, g);
  CVG_CHECK(grad_out.shape() == expect, op, ": grad_out has shape ", grad_out.shape(),
            " but input_shape ", input_shape, " pools to ", expect);
}

Shape checked_input_shape(const char* op, const Shape& input_shape) {
  CVG_CHECK(input_shape.size() == 4, op, ": input_shape must be N x C x H x W, got ",
            input_shape);
  for (int64_t s : input_shape)
    CVG_CHECK(s >= 0, op, ": input_shape must be non-negative, got ", input_shape);
  return input_shape;
}

// Runs an op written for 4-D tensors on a 3-D (unbatched) input by adding and removing a
// batch dim of 1; views, so gradients flow through unchanged.
Tensor batched(const Tensor& x) { return x.dim() == 3 ? unsqueeze(x, 0) : x; }
Tensor unbatched_like(const Tensor& y, const Tensor& x) {
  return x.dim() == 3 ? squeeze(y, 0) : y;
}

struct PoolNames {
  const char* fwd;
  const char* bwd;
};

// ---- max pooling ---------------------------------------------------------------------------

Tensor max_pool_backward_impl(PoolNames names, const Tensor& grad_out, const Tensor& switches,
                              const Shape& input_shape, const PoolGeometry& g);

// out[n, c, o] = src[n, c, switches[n, c, o]]: the values at the switches. This is the gradient
// of max_pool2d_backward with respect to its grad_out; gather's own gradient (scatter_add)
// carries higher derivatives.
Tensor gather_at_switches(const Tensor& src, const Tensor& switches) {
  const Shape& s = src.shape();
  const Shape& o = switches.shape();
  const Tensor flat = reshape(src, {s[0], s[1], s[2] * s[3]});
  const Tensor idx = reshape(switches, {o[0], o[1], o[2] * o[3]});
  return reshape(gather(flat, 2, idx), o);
}

PooledWithSwitches max_pool_impl(PoolNames names, const Tensor& x, const PoolGeometry& g) {
  TraceOp trace(names.fwd, {x});
  const Device dev = x.device();
  const Tensor xc = x.detach().contiguous();
  const Shape out_shape = pooled_shape(x.shape(), g);
  Tensor values = Tensor::empty(out_shape, x.options());
  Tensor switches = Tensor::empty(out_shape, int32_on(dev));
  if (values.numel() > 0)
    on_device(names.fwd, dev, [&] { max_pool2d_cpu(xc, g, values, switches); },
              [&] {
#ifdef CVG_WITH_CUDA
                max_pool2d_cuda(xc, g, values, switches);
#endif
              });
  const Shape in_shape = x.shape();
  const SavedTensor saved_sw(switches);
  values = record(names.fwd, values, {x},
                  [names, in_shape, g, saved_sw](const Tensor& grad, const Node& n) {
                    return TensorList{
                        max_pool_backward_impl(names, grad, saved_sw.unpack(n), in_shape, g)};
                  });
  return {trace.result(values), switches};
}

Tensor max_pool_backward_impl(PoolNames names, const Tensor& grad_out, const Tensor& switches,
                              const Shape& input_shape, const PoolGeometry& g) {
  TraceOp trace(names.bwd, {grad_out, switches});
  const Device dev = common_device(names.bwd, {grad_out, switches});
  const Tensor gc = grad_out.detach().contiguous();
  const Tensor sc = switches.contiguous();
  Tensor grad_in = Tensor::empty(input_shape, grad_out.options());
  if (grad_in.numel() > 0)
    on_device(names.bwd, dev, [&] { max_pool2d_backward_cpu(gc, sc, g, grad_in); },
              [&] {
#ifdef CVG_WITH_CUDA
                max_pool2d_backward_cuda(gc, sc, g, grad_in);
#endif
              });
  const SavedTensor saved_sw(switches);
  return trace.result(record(names.bwd, grad_in, {grad_out},
                             [saved_sw](const Tensor& gg, const Node& n) {
                               return TensorList{gather_at_switches(gg, saved_sw.unpack(n))};
                             }));
}

// ---- average pooling -----------------------------------------------------------------------

Tensor avg_pool_backward_impl(PoolNames names, const Tensor& grad_out, const Shape& input_shape,
                              const PoolGeometry& g);

Tensor avg_pool_impl(PoolNames names, const Tensor& x, const PoolGeometry& g) {
  TraceOp trace(names.fwd, {x});
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(pooled_shape(x.shape(), g), x.options());
  if (out.numel() > 0)
    on_device(names.fwd, x.device(), [&] { avg_pool2d_cpu(xc, g, out); },
              [&] {
#ifdef CVG_WITH_CUDA
                avg_pool2d_cuda(xc, g, out);
#endif
              });
  const Shape in_shape = x.shape();
  return trace.result(record(names.fwd, out, {x},
                             [names, in_shape, g](const Tensor& grad, const Node&) {
                               return TensorList{
                                   avg_pool_backward_impl(names, grad, in_shape, g)};
                             }));
}

Tensor avg_pool_backward_impl(PoolNames names, const Tensor& grad_out, const Shape& input_shape,
                              const PoolGeometry& g) {
  TraceOp trace(names.bwd, {grad_out});
  const Tensor gc = grad_out.detach().contiguous();
  Tensor grad_in = Tensor::empty(input_shape, grad_out.options());
  if (grad_in.numel() > 0)
    on_device(names.bwd, grad_out.device(), [&] { avg_pool2d_backward_cpu(gc, g, grad_in); },
              [&] {
#ifdef CVG_WITH_CUDA
                avg_pool2d_backward_cuda(gc, g, grad_in);
#endif
              });
  // The backward is the adjoint of a linear map; its adjoint is the forward pool again.
  return trace.result(record(names.bwd, grad_in, {grad_out},
                             [names, g](const Tensor& gg, const Node&) {
                               return TensorList{avg_pool_impl(names, gg, g)};
                             }));
}

// ---- max unpooling -------------------------------------------------------------------------

// Reports the switch at flat position `bad` as outside the output plane.
[[noreturn]] void fail_bad_switch(const char* op, const Tensor& switches, const UnpoolGeometry& g,
                                  PoolSize2 output_size, int64_t bad) {
  const int32_t value = reshape(switches, {-1}).to(kCPU).data<int32_t>()[bad];
  const Shape& s = switches.shape();
  const Shape pos = {bad / (s[1] * s[2] * s[3]), bad / (s[2] * s[3]) % s[1], bad / s[3] % s[2],
                     bad % s[3]};
  fail(op, ": switch ", value, " at position ", pos, " is outside the output plane of ",
       as_shape(output_size), " (switches must lie in [0, ", g.out_plane,
       "); was output_size the input size of the max_pool2d that made them?)");
}

#ifdef CVG_WITH_CUDA
// Which input writes each output position (see pool_math.h); checks every switch is in range.
// Only the CUDA kernels use winners: the CPU scatters in input order (max_unpool2d_scatter_cpu).
Tensor unpool_winners(const char* op, const Tensor& switches, const UnpoolGeometry& g,
                      PoolSize2 output_size) {
  Tensor winners = Tensor::empty({g.planes * g.out_plane}, int32_on(switches.device()));
  int64_t bad = -1;
  // Runs even without inputs (h or w = 0): every output position must still be marked empty.
  if (winners.numel() > 0) bad = max_unpool2d_winners_cuda(switches, g, winners);
  if (bad >= 0) fail_bad_switch(op, switches, g, output_size, bad);
  return winners;
}
#endif

Tensor max_unpool_backward_impl(const Tensor& grad_out, const Tensor& switches,
                                const Tensor& winners);

// x and switches are N x C x h x w (switches contiguous); winners may be undefined.
Tensor max_unpool_impl(const Tensor& x, const Tensor& switches, PoolSize2 output_size,
                       Tensor winners) {
  TraceOp trace("max_unpool2d", {x, switches});
  const Device dev = common_device("max_unpool2d", {x, switches});
  const Shape& s = x.shape();
  const UnpoolGeometry g{s[0] * s[1], s[2] * s[3], output_size[0] * output_size[1]};
  const Tensor sc = switches.contiguous();
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({s[0], s[1], output_size[0], output_size[1]}, x.options());
  on_device("max_unpool2d", dev,
            [&] {
              const int64_t bad = out.numel() > 0 ? max_unpool2d_scatter_cpu(xc, sc, g, out) : -1;
              if (bad >= 0) fail_bad_switch("max_unpool2d", sc, g, output_size, bad);
            },
            [&] {
#ifdef CVG_WITH_CUDA
              if (!winners.defined()) winners = unpool_winners("max_unpool2d", sc, g, output_size);
              if (out.numel() > 0) max_unpool2d_cuda(xc, winners, g, out);
#endif
            });
  const SavedTensor saved_sw(switches);
  return trace.result(record("max_unpool2d", out, {x},
                             [saved_sw, winners](const Tensor& grad, const Node& n) {
                               return TensorList{
                                   max_unpool_backward_impl(grad, saved_sw.unpack(n), winners)};
                             }));
}

// grad_out is N x C x H x W, switches N x C x h x w; winners may be undefined.
Tensor max_unpool_backward_impl(const Tensor& grad_out, const Tensor& switches,
                                const Tensor& given_winners) {
  TraceOp trace("max_unpool2d_backward", {grad_out, switches});
  const Device dev = common_device("max_unpool2d_backward", {grad_out, switches});
  const Shape& s = switches.shape();
  const PoolSize2 output_size = {grad_out.shape()[2], grad_out.shape()[3]};
  const UnpoolGeometry g{s[0] * s[1], s[2] * s[3], output_size[0] * output_size[1]};
  const Tensor sc = switches.contiguous();
  Tensor winners = given_winners;
  const Tensor gc = grad_out.detach().contiguous();
  Tensor grad_in = Tensor::empty(s, grad_out.options());
  on_device("max_unpool2d_backward", dev,
            [&] {
              const int64_t bad =
                  grad_in.numel() > 0 ? max_unpool2d_backward_scatter_cpu(gc, sc, g, grad_in) : -1;
              if (bad >= 0) fail_bad_switch("max_unpool2d_backward", sc, g, output_size, bad);
            },
            [&] {
#ifdef CVG_WITH_CUDA
              if (!winners.defined())
                winners = unpool_winners("max_unpool2d_backward", sc, g, output_size);
              if (grad_in.numel() > 0) max_unpool2d_backward_cuda(gc, sc, winners, g, grad_in);
#endif
            });
  // Linear in grad_out; its adjoint is the unpooling itself (each output position takes the
  // gradient of its winner, the same rule as the forward scatter).
  const SavedTensor saved_sw(switches);
  return trace.result(record("max_unpool2d_backward", grad_in, {grad_out},
                             [saved_sw, output_size, winners](const Tensor& gg, const Node& n) {
                               return TensorList{max_unpool_impl(gg, saved_sw.unpack(n),
                                                                 output_size, winners)};
                             }));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public ops

PooledWithSwitches max_pool2d_with_indices(const Tensor& x, PoolSize2 kernel,
                                           std::optional<PoolSize2> stride, PoolSize2 padding,
                                           PoolSize2 dilation, bool ceil_mode) {
  const char* op = "max_pool2d";
  check_input(op, "input", x, /*allow_unbatched=*/true);
  const Tensor x4 = batched(x);
  check_plane_fits_int32(op, x4.shape()[2], x4.shape()[3]);
  const PoolArgs a{kernel, stride.value_or(kernel), padding, dilation, ceil_mode};
  const PoolGeometry g = regular_geometry(op, x4.shape(), a, true);
  PooledWithSwitches r = max_pool_impl({"max_pool2d", "max_pool2d_backward"}, x4, g);
  return {unbatched_like(r.values, x), unbatched_like(r.switches, x)};
}

Tensor max_pool2d(const Tensor& x, PoolSize2 kernel, std::optional<PoolSize2> stride,
                  PoolSize2 padding, PoolSize2 dilation, bool ceil_mode) {
  return max_pool2d_with_indices(x, kernel, stride, padding, dilation, ceil_mode).values;
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& switches,
                           const Shape& input_shape, PoolSize2 kernel, PoolSize2 stride,
                           PoolSize2 padding, PoolSize2 dilation, bool ceil_mode) {
  const char* op = "max_pool2d_backward";
  check_input(op, "grad_out", grad_out, false);
  check_switches(op, switches, "grad_out", grad_out);
  const Shape in = checked_input_shape(op, input_shape);
  check_plane_fits_int32(op, in[2], in[3]);
  const PoolGeometry g =
      regular_geometry(op, in, PoolArgs{kernel, stride, padding, dilation, ceil_mode}, true);
  check_backward_shapes(op, grad_out, in, g);
  return max_pool_backward_impl({"max_pool2d", op}, grad_out, switches, in, g);
}

PooledWithSwitches adaptive_max_pool2d_with_indices(const Tensor& x, PoolSize2 output_size) {
  const char* op = "adaptive_max_pool2d";
  check_input(op, "input", x, true);
  const Tensor x4 = batched(x);
  check_plane_fits_int32(op, x4.shape()[2], x4.shape()[3]);
  const PoolGeometry g = adaptive_geometry(op, x4.shape(), output_size);
  PooledWithSwitches r = max_pool_impl({op, "adaptive_max_pool2d_backward"}, x4, g);
  return {unbatched_like(r.values, x), unbatched_like(r.switches, x)};
}

Tensor adaptive_max_pool2d(const Tensor& x, PoolSize2 output_size) {
  return adaptive_max_pool2d_with_indices(x, output_size).values;
}

Tensor adaptive_max_pool2d_backward(const Tensor& grad_out, const Tensor& switches,
                                    const Shape& input_shape) {
  const char* op = "adaptive_max_pool2d_backward";
  check_input(op, "grad_out", grad_out, false);
  check_switches(op, switches, "grad_out", grad_out);
  const Shape in = checked_input_shape(op, input_shape);
  check_plane_fits_int32(op, in[2], in[3]);
  const PoolGeometry g =
      adaptive_geometry(op, in, {grad_out.shape()[2], grad_out.shape()[3]});
  check_backward_shapes(op, grad_out, in, g);
  return max_pool_backward_impl({"adaptive_max_pool2d", op}, grad_out, switches, in, g);
}

Tensor max_unpool2d(const Tensor& x, const Tensor& switches, PoolSize2 output_size) {
  const char* op = "max_unpool2d";
  check_input(op, "input", x, true);
  check_switches(op, switches, "input", x);
  CVG_CHECK(output_size[0] >= 1 && output_size[1] >= 1, op,
            ": output_size must be positive, got ", as_shape(output_size));
  check_plane_fits_int32(op, output_size[0], output_size[1]);
  const Tensor out = max_unpool_impl(batched(x), batched(switches), output_size, Tensor());
  return unbatched_like(out, x);
}

Tensor max_unpool2d_backward(const Tensor& grad_out, const Tensor& switches) {
  const char* op = "max_unpool2d_backward";
  check_input(op, "grad_out", grad_out, false);
  CVG_CHECK(switches.defined(), op, ": undefined switches");
  CVG_CHECK(switches.dtype() == DType::int32, op, ": switches must be int32, got ",
            dtype_name(switches.dtype()));
  CVG_CHECK(switches.dim() == 4 && switches.shape()[0] == grad_out.shape()[0] &&
                switches.shape()[1] == grad_out.shape()[1],
            op, ": switches must be N x C x h x w with grad_out's N and C, got switches ",
            switches.shape(), " and grad_out ", grad_out.shape());
  check_plane_fits_int32(op, grad_out.shape()[2], grad_out.shape()[3]);
  return max_unpool_backward_impl(grad_out, switches, Tensor());
}

Tensor avg_pool2d(const Tensor& x, PoolSize2 kernel, std::optional<PoolSize2> stride,
                  PoolSize2 padding, bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d";
  check_input(op, "input", x, true);
  const Tensor x4 = batched(x);
  const PoolArgs a{kernel, stride.value_or(kernel), padding, {1, 1}, ceil_mode};
  const PoolGeometry g = regular_geometry(op, x4.shape(), a, count_include_pad);
  return unbatched_like(avg_pool_impl({op, "avg_pool2d_backward"}, x4, g), x);
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, PoolSize2 kernel,
                           PoolSize2 stride, PoolSize2 padding, bool ceil_mode,
                           bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  check_input(op, "grad_out", grad_out, false);
  const Shape in = checked_input_shape(op, input_shape);
  const PoolGeometry g = regular_geometry(
      op, in, PoolArgs{kernel, stride, padding, {1, 1}, ceil_mode}, count_include_pad);
  check_backward_shapes(op, grad_out, in, g);
  return avg_pool_backward_impl({"avg_pool2d", op}, grad_out, in, g);
}

Tensor adaptive_avg_pool2d(const Tensor& x, PoolSize2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_input(op, "input", x, true);
  const Tensor x4 = batched(x);
  const PoolGeometry g = adaptive_geometry(op, x4.shape(), output_size);
  return unbatched_like(avg_pool_impl({op, "adaptive_avg_pool2d_backward"}, x4, g), x);
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  check_input(op, "grad_out", grad_out, false);
  const Shape in = checked_input_shape(op, input_shape);
  const PoolGeometry g = adaptive_geometry(op, in, {grad_out.shape()[2], grad_out.shape()[3]});
  check_backward_shapes(op, grad_out, in, g);
  return avg_pool_backward_impl({"adaptive_avg_pool2d", op}, grad_out, in, g);
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_input("global_avg_pool2d", "input", x, true);
  TraceOp trace("global_avg_pool2d", {x});
  return trace.result(mean(x, {x.dim() - 2, x.dim() - 1}, /*keepdim=*/true));
}

}  // namespace cvg
