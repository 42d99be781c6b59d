// grid_sample and the ops built on it: argument checks, device dispatch and autograd
// (conventions in kernels/sample.h).
//
// Everything runs on three internal ops, each parameterised by derivative orders o = (ox, oy)
// in {0, 1}^2 (kernels/sample_math.h):
//   sample_op(x, grid, o)             S_o(x, grid): the sample with the tap weights of x
//                                     differentiated ox times, those of y oy times (o = 0:
//                                     grid_sample itself). Linear in x.
//   adjoint_op(go, grid, o)           S_o^T go, the input gradient of <go, S_o(x, grid)>.
//   grid_grad_op(go, x, grid, o)      the grid gradient of <go, S_o(x, grid)>: per output pixel
//                                     sum_c go * (S_{o+ex}(x), S_{o+ey}(x)).
// Their gradients are the same three ops again (ex = (1, 0), ey = (0, 1)):
//   S_o:        d x = adjoint_op(g, grid, o)        d grid = grid_grad_op(g, x, grid, o)
//   adjoint:    d go = S_o(gg, grid)                d grid = grid_grad_op(go, gg, grid, o)
//                 (because <gg, S_o^T go> = <go, S_o gg>)
//   grid_grad:  with hx = go * gg[..., 0] and hy = go * gg[..., 1] (broadcast over c),
//               <gg, grid_grad> = <hx, S_{o+ex}(x)> + <hy, S_{o+ey}(x)>, so
//               d go   = S_{o+ex}(x) * gg[..., 0] + S_{o+ey}(x) * gg[..., 1]
//               d x    = adjoint_op(hx, o+ex) + adjoint_op(hy, o+ey)
//               d grid = grid_grad_op(hx, x, o+ex) + grid_grad_op(hy, x, o+ey)
// A term whose order vanishes (2 along an axis for bilinear, any for nearest) is zero and is
// skipped, so the recursion ends and every derivative of every order is exact.
#include "kernels/sample.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/determinism.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/view.h"

namespace cvg {

namespace {

struct SampleCfg {
  GridSampleMode mode = GridSampleMode::Bilinear;
  GridPadding padding = GridPadding::Zeros;
  bool align_corners = false;
  bool pixels = false;  // grid in pixel coordinates (flow_warp, interpolate)
};

struct Order {
  int x = 0, y = 0;
  Order plus_x() const { return {x + 1, y}; }
  Order plus_y() const { return {x, y + 1}; }
};

// S_o is identically zero (wherever it is defined).
bool vanishes(const SampleCfg& cfg, Order o) {
  return cfg.mode == GridSampleMode::Nearest ? o.x + o.y > 0 : o.x > 1 || o.y > 1;
}

enum class Kind { sample, adjoint, grid_grad };

// Names for traces and graph nodes; orders are in {0, 1} whenever a kernel runs.
const char* op_name(Kind k, Order o) {
  static const char* const names[3][4] = {
      {"grid_sample", "grid_sample_dx", "grid_sample_dy", "grid_sample_dxdy"},
      {"grid_sample_backward_input", "grid_sample_dx_backward_input",
       "grid_sample_dy_backward_input", "grid_sample_dxdy_backward_input"},
      {"grid_sample_backward_grid", "grid_sample_dx_backward_grid",
       "grid_sample_dy_backward_grid", "grid_sample_dxdy_backward_grid"}};
  return names[static_cast<int>(k)][(o.x > 0 ? 1 : 0) + (o.y > 0 ? 2 : 0)];
}

SampleGeometry make_geometry(const Shape& in, const Tensor& grid, const SampleCfg& cfg, Order o) {
  SampleGeometry g;
  g.n = in[0];
  g.c = in[1];
  g.h = in[2];
  g.w = in[3];
  g.ho = grid.shape()[1];
  g.wo = grid.shape()[2];
  for (int d = 0; d < 4; ++d) g.grid_stride[d] = grid.strides()[d];
  g.x = cfg.pixels ? pixel_axis(g.w) : normalized_axis(g.w, cfg.align_corners);
  g.y = cfg.pixels ? pixel_axis(g.h) : normalized_axis(g.h, cfg.align_corners);
  g.mode = cfg.mode;
  g.padding = cfg.padding;
  g.order_x = o.x;
  g.order_y = o.y;
  return g;
}

Tensor sample_op(const Tensor& x, const Tensor& grid, const SampleCfg& cfg, Order o);
Tensor adjoint_op(const Tensor& go, const Tensor& grid, const Shape& in_shape,
                  const SampleCfg& cfg, Order o);
Tensor grid_grad_op(const Tensor& go, const Tensor& x, const Tensor& grid, const SampleCfg& cfg,
                    Order o);

// a + b where an undefined term counts as zero (undefined when both are).
Tensor add_terms(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

Tensor sample_op(const Tensor& x, const Tensor& grid, const SampleCfg& cfg, Order o) {
  const Shape& s = x.shape();
  const Shape out_shape = {s[0], s[1], grid.shape()[1], grid.shape()[2]};
  if (vanishes(cfg, o)) return zeros(out_shape, x.options());
  const char* name = op_name(Kind::sample, o);
  TraceOp trace(name, {x, grid});
  const Tensor xc = x.detach().contiguous();
  const Tensor gd = grid.detach();
  const SampleGeometry g = make_geometry(s, gd, cfg, o);
  Tensor out = Tensor::empty(out_shape, x.options());
  if (out.numel() > 0)
    on_device(name, x.device(), [&] { sample_cpu(xc, gd, g, out); },
              [&] {
#ifdef CVG_WITH_CUDA
                sample_cuda(xc, gd, g, out);
#endif
              });
  const SavedTensor sx(x), sg(grid);
  return trace.result(record(name, out, {x, grid},
                             [sx, sg, cfg, o](const Tensor& gr, const Node& n) {
                               const Tensor xs = sx.unpack(n), gs = sg.unpack(n);
                               TensorList r(2);
                               if (n.needs_grad(0)) r[0] = adjoint_op(gr, gs, xs.shape(), cfg, o);
                               if (n.needs_grad(1)) r[1] = grid_grad_op(gr, xs, gs, cfg, o);
                               return r;
                             }));
}

Tensor adjoint_op(const Tensor& go, const Tensor& grid, const Shape& in_shape,
                  const SampleCfg& cfg, Order o) {
  if (vanishes(cfg, o)) return zeros(in_shape, go.options());
  const char* name = op_name(Kind::adjoint, o);
  TraceOp trace(name, {go, grid});
  const Tensor gc = go.detach().contiguous();
  const Tensor gd = grid.detach();
  const SampleGeometry g = make_geometry(in_shape, gd, cfg, o);
  Tensor gi = Tensor::empty(in_shape, go.options());
  if (gi.numel() > 0)
    on_device(name, go.device(), [&] { sample_adjoint_cpu(gc, gd, g, gi); },
              [&] {
#ifdef CVG_WITH_CUDA
                sample_adjoint_cuda(gc, gd, g, gi, deterministic_algorithms());
#endif
              });
  const SavedTensor sgo(go), sg(grid);
  return trace.result(record(name, gi, {go, grid},
                             [sgo, sg, cfg, o](const Tensor& gg, const Node& n) {
                               const Tensor gos = sgo.unpack(n), gs = sg.unpack(n);
                               TensorList r(2);
                               if (n.needs_grad(0)) r[0] = sample_op(gg, gs, cfg, o);
                               if (n.needs_grad(1)) r[1] = grid_grad_op(gos, gg, gs, cfg, o);
                               return r;
                             }));
}

Tensor grid_grad_op(const Tensor& go, const Tensor& x, const Tensor& grid, const SampleCfg& cfg,
                    Order o) {
  const Shape& gs = grid.shape();
  const Shape out_shape = {gs[0], gs[1], gs[2], 2};
  if (vanishes(cfg, o.plus_x()) && vanishes(cfg, o.plus_y()))
    return zeros(out_shape, grid.options());
  const char* name = op_name(Kind::grid_grad, o);
  TraceOp trace(name, {go, x, grid});
  const Tensor gc = go.detach().contiguous();
  const Tensor xc = x.detach().contiguous();
  const Tensor gd = grid.detach();
  const SampleGeometry g = make_geometry(x.shape(), gd, cfg, o);
  Tensor out = Tensor::empty(out_shape, grid.options());
  if (out.numel() > 0)
    on_device(name, grid.device(), [&] { sample_grid_grad_cpu(gc, xc, gd, g, out); },
              [&] {
#ifdef CVG_WITH_CUDA
                sample_grid_grad_cuda(gc, xc, gd, g, out);
#endif
              });
  const SavedTensor sgo(go), sx(x), sg(grid);
  return trace.result(record(
      name, out, {go, x, grid}, [sgo, sx, sg, cfg, o](const Tensor& gg, const Node& n) {
        const Tensor gos = sgo.unpack(n), xs = sx.unpack(n), grs = sg.unpack(n);
        const Order ox = o.plus_x(), oy = o.plus_y();
        const bool use_x = !vanishes(cfg, ox), use_y = !vanishes(cfg, oy);
        // gg[..., k] as N x 1 x Ho x Wo, to broadcast over the channels.
        const Tensor ggx = unsqueeze(select(gg, 3, 0), 1), ggy = unsqueeze(select(gg, 3, 1), 1);
        TensorList r(3);
        if (n.needs_grad(0))
          r[0] = add_terms(use_x ? mul(sample_op(xs, grs, cfg, ox), ggx) : Tensor(),
                           use_y ? mul(sample_op(xs, grs, cfg, oy), ggy) : Tensor());
        if (n.needs_grad(1) || n.needs_grad(2)) {
          const Tensor hx = use_x ? mul(gos, ggx) : Tensor();
          const Tensor hy = use_y ? mul(gos, ggy) : Tensor();
          if (n.needs_grad(1))
            r[1] = add_terms(use_x ? adjoint_op(hx, grs, xs.shape(), cfg, ox) : Tensor(),
                             use_y ? adjoint_op(hy, grs, xs.shape(), cfg, oy) : Tensor());
          if (n.needs_grad(2))
            r[2] = add_terms(use_x ? grid_grad_op(hx, xs, grs, cfg, ox) : Tensor(),
                             use_y ? grid_grad_op(hy, xs, grs, cfg, oy) : Tensor());
        }
        return r;
      }));
}

// ---- argument checks -------------------------------------------------------------------------

void check_float(const char* op, const char* name, const Tensor& t) {
  CVG_CHECK(t.defined(), op, ": undefined ", name);
  CVG_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
            dtype_name(t.dtype()));
}

void check_same_dtype(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b) {
  CVG_CHECK(a.dtype() == b.dtype(), op, ": ", a_name, " and ", b_name,
            " must have the same dtype, got ", dtype_name(a.dtype()), " and ",
            dtype_name(b.dtype()));
}

// input N x C x H x W with H, W >= 1.
void check_image(const char* op, const char* name, const Tensor& x) {
  check_float(op, name, x);
  CVG_CHECK(x.dim() == 4, op, ": ", name, " must be N x C x H x W, got shape ", x.shape());
  CVG_CHECK(x.shape()[2] >= 1 && x.shape()[3] >= 1, op, ": ", name,
            " must have a non-empty H x W plane, got shape ", x.shape());
}

// grid N x Ho x Wo x 2 matching input_shape's batch.
void check_grid(const char* op, const Tensor& grid, const Shape& input_shape) {
  check_float(op, "grid", grid);
  CVG_CHECK(grid.dim() == 4 && grid.shape()[3] == 2, op,
            ": grid must be N x Ho x Wo x 2, got shape ", grid.shape());
  CVG_CHECK(grid.shape()[0] == input_shape[0], op, ": grid has batch size ", grid.shape()[0],
            " (shape ", grid.shape(), ") but input has ", input_shape[0], " (shape ",
            input_shape, ")");
}

void check_grad_out(const char* op, const Tensor& grad_out, const Shape& input_shape,
                    const Tensor& grid) {
  check_float(op, "grad_out", grad_out);
  const Shape expect = {input_shape[0], input_shape[1], grid.shape()[1], grid.shape()[2]};
  CVG_CHECK(grad_out.shape() == expect, op, ": grad_out has shape ", grad_out.shape(),
            " but input ", input_shape, " sampled at grid ", grid.shape(), " gives ", expect);
}

SampleCfg normalized_cfg(GridSampleMode mode, GridPadding padding, bool align_corners) {
  return SampleCfg{mode, padding, align_corners, false};
}

// float64 host values as a tensor of t's dtype on t's device.
Tensor constant_like(const std::vector<double>& v, const Shape& shape, const Tensor& t) {
  return from_vector<double>(v, shape, TensorOptions{}.with_dtype(DType::float64))
      .to(t.dtype())
      .to(t.device());
}

// ---- interpolate -----------------------------------------------------------------------------

// PyTorch's legacy 'nearest' source index, in float32 arithmetic as PyTorch computes it.
int64_t nearest_source(int64_t o, int64_t in, int64_t out, double scale_factor) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  const float s = scale_factor > 0 ? static_cast<float>(1.0 / scale_factor)
                                   : static_cast<float>(in) / static_cast<float>(out);
  const float src = std::floor(static_cast<float>(o) * s);
  return std::min<int64_t>(static_cast<int64_t>(src), in - 1);
}

// PyTorch's bilinear source coordinate (area_pixel_compute_source_index, linear modes).
double linear_source(int64_t o, int64_t in, int64_t out, double scale_factor, bool align) {
  if (align) return out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0;
  const double s = scale_factor > 0 ? 1.0 / scale_factor : static_cast<double>(in) / out;
  const double src = s * (static_cast<double>(o) + 0.5) - 0.5;
  return src < 0 ? 0.0 : src;
}

Tensor interpolate_impl(const Tensor& x, int64_t oh, int64_t ow, double scale_factor,
                        InterpMode mode, bool align_corners) {
  const char* op = "interpolate";
  check_image(op, "input", x);
  TraceOp trace(op, {x});
  CVG_CHECK(oh >= 1 && ow >= 1, op, ": output size must be positive, got [", oh, ", ", ow,
            "] for input of shape ", x.shape());
  CVG_CHECK(mode == InterpMode::Bilinear || !align_corners, op,
            ": align_corners applies to bilinear mode only (PyTorch refuses it for nearest)");
  const int64_t h = x.shape()[2], w = x.shape()[3];
  auto source = [&](int64_t o, int64_t in, int64_t out) {
    return mode == InterpMode::Nearest
               ? static_cast<double>(nearest_source(o, in, out, scale_factor))
               : linear_source(o, in, out, scale_factor, align_corners);
  };
  std::vector<double> v(static_cast<size_t>(oh * ow * 2));
  for (int64_t i = 0; i < oh; ++i)
    for (int64_t j = 0; j < ow; ++j) {
      v[(i * ow + j) * 2] = source(j, w, ow);
      v[(i * ow + j) * 2 + 1] = source(i, h, oh);
    }
  // One grid for the whole batch: a stride-0 batch dim, which the kernels read as it is.
  const Tensor grid = expand(constant_like(v, {1, oh, ow, 2}, x), {x.shape()[0], oh, ow, 2});
  // The coordinates are exact integers for nearest and lie in [0, in - 1] up to the top edge
  // for bilinear, where Border's clamp is PyTorch's clamp of the upper tap.
  const SampleCfg cfg{mode == InterpMode::Nearest ? GridSampleMode::Nearest
                                                  : GridSampleMode::Bilinear,
                      GridPadding::Border, false, true};
  return trace.result(sample_op(x, grid, cfg, Order{}));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public ops

Tensor grid_sample(const Tensor& input, const Tensor& grid, GridSampleMode mode,
                   GridPadding padding, bool align_corners) {
  const char* op = "grid_sample";
  check_image(op, "input", input);
  check_grid(op, grid, input.shape());
  check_same_dtype(op, "input", input, "grid", grid);
  common_device(op, {input, grid});
  return sample_op(input, grid, normalized_cfg(mode, padding, align_corners), Order{});
}

Tensor grid_sample_backward_input(const Tensor& grad_out, const Tensor& grid,
                                  const Shape& input_shape, GridSampleMode mode,
                                  GridPadding padding, bool align_corners) {
  const char* op = "grid_sample_backward_input";
  CVG_CHECK(input_shape.size() == 4 && input_shape[2] >= 1 && input_shape[3] >= 1, op,
            ": input_shape must be N x C x H x W with a non-empty H x W plane, got ",
            input_shape);
  check_shape(input_shape, op);
  check_grid(op, grid, input_shape);
  check_grad_out(op, grad_out, input_shape, grid);
  check_same_dtype(op, "grad_out", grad_out, "grid", grid);
  common_device(op, {grad_out, grid});
  return adjoint_op(grad_out, grid, input_shape, normalized_cfg(mode, padding, align_corners),
                    Order{});
}

Tensor grid_sample_backward_grid(const Tensor& grad_out, const Tensor& input, const Tensor& grid,
                                 GridSampleMode mode, GridPadding padding, bool align_corners) {
  const char* op = "grid_sample_backward_grid";
  check_image(op, "input", input);
  check_grid(op, grid, input.shape());
  check_grad_out(op, grad_out, input.shape(), grid);
  check_same_dtype(op, "input", input, "grid", grid);
  check_same_dtype(op, "grad_out", grad_out, "grid", grid);
  common_device(op, {grad_out, input, grid});
  return grid_grad_op(grad_out, input, grid, normalized_cfg(mode, padding, align_corners),
                      Order{});
}

Tensor affine_grid(const Tensor& theta, const Shape& size, bool align_corners) {
  const char* op = "affine_grid";
  check_float(op, "theta", theta);
  TraceOp trace(op, {theta});
  CVG_CHECK(theta.dim() == 3 && theta.shape()[1] == 2 && theta.shape()[2] == 3, op,
            ": theta must be N x 2 x 3, got shape ", theta.shape());
  CVG_CHECK(size.size() == 4, op, ": size must be {N, C, H, W}, got ", size);
  CVG_CHECK(size[0] == theta.shape()[0], op, ": size ", size, " has batch size ", size[0],
            " but theta has ", theta.shape()[0]);
  CVG_CHECK(size[2] >= 1 && size[3] >= 1, op, ": size must have H, W >= 1, got ", size);
  const int64_t h = size[2], w = size[3];
  // Rows (x, y, 1) of the base grid, so that grid = base @ theta^T.
  std::vector<double> base(static_cast<size_t>(h * w * 3));
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      double* row = &base[static_cast<size_t>((i * w + j) * 3)];
      row[0] = base_grid_coordinate(j, w, align_corners);
      row[1] = base_grid_coordinate(i, h, align_corners);
      row[2] = 1.0;
    }
  const Tensor b = constant_like(base, {h * w, 3}, theta);
  const Tensor grid = matmul(b, transpose(theta, 1, 2));  // N x HW x 2
  return trace.result(reshape(grid, {size[0], h, w, 2}));
}

Tensor flow_warp(const Tensor& image, const Tensor& flow) {
  const char* op = "flow_warp";
  check_image(op, "image", image);
  check_float(op, "flow", flow);
  TraceOp trace(op, {image, flow});
  const Shape& s = image.shape();
  CVG_CHECK(flow.shape() == Shape({s[0], 2, s[2], s[3]}), op, ": flow must be N x 2 x H x W = ",
            Shape({s[0], 2, s[2], s[3]}), " for image of shape ", s, ", got ", flow.shape());
  check_same_dtype(op, "image", image, "flow", flow);
  common_device(op, {image, flow});
  const int64_t h = s[2], w = s[3];
  std::vector<double> base(static_cast<size_t>(h * w * 2));
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      base[static_cast<size_t>((i * w + j) * 2)] = static_cast<double>(j);
      base[static_cast<size_t>((i * w + j) * 2 + 1)] = static_cast<double>(i);
    }
  const Tensor grid = add(permute(flow, {0, 2, 3, 1}), constant_like(base, {1, h, w, 2}, flow));
  const SampleCfg cfg{GridSampleMode::Bilinear, GridPadding::Zeros, false, true};
  return trace.result(sample_op(image, grid, cfg, Order{}));
}

Tensor interpolate(const Tensor& x, std::array<int64_t, 2> size, InterpMode mode,
                   bool align_corners) {
  return interpolate_impl(x, size[0], size[1], 0.0, mode, align_corners);
}

Tensor interpolate(const Tensor& x, double scale_factor, InterpMode mode, bool align_corners) {
  CVG_CHECK(std::isfinite(scale_factor) && scale_factor > 0, "interpolate: scale_factor must be "
            "positive and finite, got ", scale_factor);
  check_image("interpolate", "input", x);
  const auto scaled = [&](int64_t in) {
    return static_cast<int64_t>(std::floor(static_cast<double>(in) * scale_factor));
  };
  return interpolate_impl(x, scaled(x.shape()[2]), scaled(x.shape()[3]), scale_factor, mode,
                          align_corners);
}

}  // namespace cvg
