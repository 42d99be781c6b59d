// Convolutions: argument checks, output sizes, device dispatch and autograd (conventions in
// kernels/conv.h). The public functions check their arguments and build a ConvGeometry (the
// geometry of the forward convolution, whatever the pass); the three *_impl functions run the
// kernels and record the graph. The backward of each impl is made of the three impls again,
// because each pass is linear in each of its operands and the passes are each other's adjoints:
//   <gout, conv(x, w)> = <backward_input(gout, w), x> = <backward_weight(gout, x), w>.
#include "kernels/conv.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg {

namespace {

Shape as_shape(ConvSize2 p) { return {p[0], p[1]}; }

struct ConvArgs {
  ConvSize2 stride, padding, dilation;
  int64_t groups;
};

std::string describe_args(const ConvArgs& a) {
  return str_cat("stride ", as_shape(a.stride), ", padding ", as_shape(a.padding),
                 ", dilation ", as_shape(a.dilation), ", groups ", a.groups);
}

void check_args(const char* op, const ConvArgs& a) {
  CVG_CHECK(a.stride[0] >= 1 && a.stride[1] >= 1, op, ": stride must be positive, got ",
            as_shape(a.stride));
  CVG_CHECK(a.dilation[0] >= 1 && a.dilation[1] >= 1, op, ": dilation must be positive, got ",
            as_shape(a.dilation));
  CVG_CHECK(a.padding[0] >= 0 && a.padding[1] >= 0, op, ": padding must be non-negative, got ",
            as_shape(a.padding));
  CVG_CHECK(a.groups >= 1, op, ": groups must be positive, got ", a.groups);
}

// A defined floating tensor with one of the allowed ranks.
void check_tensor(const char* op, const char* name, const Tensor& t, int64_t rank,
                  bool allow_unbatched, const char* layout) {
  CVG_CHECK(t.defined(), op, ": undefined ", name);
  CVG_CHECK(t.dim() == rank || (allow_unbatched && t.dim() == rank - 1), op, ": ", name,
            " must be ", layout, ", got shape ", t.shape());
  CVG_CHECK(is_floating(t.dtype()), op, ": ", name, " must be float32 or float64, got ",
            dtype_name(t.dtype()));
}

void check_same_dtype(const char* op, const char* name, const Tensor& t, const char* ref_name,
                      const Tensor& ref) {
  CVG_CHECK(t.dtype() == ref.dtype(), op, ": ", name, " is ", dtype_name(t.dtype()), " but ",
            ref_name, " is ", dtype_name(ref.dtype()), "; they must have the same dtype");
}

void check_shape_arg(const char* op, const char* name, const Shape& s) {
  CVG_CHECK(s.size() == 4, op, ": ", name, " must have 4 sizes, got ", s);
  for (int64_t v : s) CVG_CHECK(v >= 0, op, ": ", name, " must be non-negative, got ", s);
}

// The forward geometry of a convolution of an `in` = [N, Cin, H, W] input with a weight of
// shape `ws` = [Cout, Cin / groups, kH, kW], with the checks every op shares.
ConvGeometry make_geometry(const char* op, const Shape& in, const char* in_name, const Shape& ws,
                           const char* w_name, const ConvArgs& a) {
  check_args(op, a);
  CVG_CHECK(ws[2] >= 1 && ws[3] >= 1, op, ": ", w_name, " ", ws,
            " has an empty kernel; kernel sizes must be positive");
  CVG_CHECK(ws[1] * a.groups == in[1], op, ": ", in_name, " ", in, " has ", in[1],
            " channels but ", w_name, " ", ws, " with groups ", a.groups, " expects ",
            ws[1] * a.groups, " (", w_name, ".size(1) * groups)");
  CVG_CHECK(ws[0] % a.groups == 0, op, ": groups ", a.groups, " does not divide the ", ws[0],
            " output channels of ", w_name, " ", ws);
  ConvGeometry g;
  g.n = in[0];
  g.cin = in[1];
  g.h = in[2];
  g.w = in[3];
  g.cout = ws[0];
  g.kh = ws[2];
  g.kw = ws[3];
  g.sh = a.stride[0];
  g.sw = a.stride[1];
  g.ph = a.padding[0];
  g.pw = a.padding[1];
  g.dh = a.dilation[0];
  g.dw = a.dilation[1];
  g.groups = a.groups;
  g.ho = conv_out_size(g.h, g.kh, g.sh, g.ph, g.dh);
  g.wo = conv_out_size(g.w, g.kw, g.sw, g.pw, g.dw);
  CVG_CHECK(g.ho >= 1 && g.wo >= 1, op, ": input of ", g.h, " x ", g.w, " with kernel ", g.kh,
            " x ", g.kw, ", ", describe_args(a),
            " gives an output size of less than 1 x 1 (the dilated kernel spans ",
            g.dh * (g.kh - 1) + 1, " x ", g.dw * (g.kw - 1) + 1, ", the padded input ",
            g.h + 2 * g.ph, " x ", g.w + 2 * g.pw, ")");
  return g;
}

Shape input_shape_of(const ConvGeometry& g) { return {g.n, g.cin, g.h, g.w}; }
Shape output_shape_of(const ConvGeometry& g) { return {g.n, g.cout, g.ho, g.wo}; }
Shape weight_shape_of(const ConvGeometry& g) { return {g.cout, g.cin_g(), g.kh, g.kw}; }

// Runs one pass on contiguous copies of its operands (see conv.h for the operand order).
Tensor run_pass(const char* op, ConvPass pass, const Tensor& a, const Tensor& b,
                const Tensor& bias, const ConvGeometry& g, const Shape& out_shape) {
  const Device dev = common_device(op, {a, b, bias});
  const Tensor ac = a.detach().contiguous();
  const Tensor bc = b.detach().contiguous();
  const Tensor biasc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape, a.options());
  if (out.numel() > 0)
    on_device(op, dev, [&] { conv2d_cpu(pass, ac, bc, biasc, g, out); },
              [&] {
#ifdef CVG_WITH_CUDA
                conv2d_cuda(conv_cuda_version(), pass, ac, bc, biasc, g, out);
#endif
              });
  return out;
}

Tensor backward_input_impl(const char* name, const Tensor& grad_out, const Tensor& weight,
                           const ConvGeometry& g);
Tensor backward_weight_impl(const Tensor& grad_out, const Tensor& x, const ConvGeometry& g);

// The three passes as traced ops, for the backward functions below.
Tensor forward_op(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const ConvGeometry& g);
Tensor backward_input_op(const Tensor& grad_out, const Tensor& weight, const ConvGeometry& g) {
  TraceOp trace("conv2d_backward_input", {grad_out, weight});
  return trace.result(backward_input_impl("conv2d_backward_input", grad_out, weight, g));
}
Tensor backward_weight_op(const Tensor& grad_out, const Tensor& x, const ConvGeometry& g) {
  TraceOp trace("conv2d_backward_weight", {grad_out, x});
  return trace.result(backward_weight_impl(grad_out, x, g));
}

// x [N, Cin, H, W] (*) weight + bias -> [N, Cout, Ho, Wo].
Tensor forward_impl(const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const ConvGeometry& g) {
  Tensor out = run_pass("conv2d", ConvPass::forward, x, weight, bias, g, output_shape_of(g));
  if (!any_requires_grad({x, weight, bias})) return out;
  // d x needs only the weight and d weight only x: keep what a needed gradient uses.
  const SavedTensor saved_x(weight.requires_grad() ? x : Tensor());
  const SavedTensor saved_w(x.requires_grad() ? weight : Tensor());
  return record("conv2d", out, {x, weight, bias},
                [saved_x, saved_w, g](const Tensor& gout, const Node& n) {
                  TensorList grads(3);
                  if (n.needs_grad(0)) grads[0] = backward_input_op(gout, saved_w.unpack(n), g);
                  if (n.needs_grad(1)) grads[1] = backward_weight_op(gout, saved_x.unpack(n), g);
                  // Planes first: a sum over the contiguous H, W then over N is several times
                  // faster than the reduction over {0, 2, 3} in one go.
                  if (n.needs_grad(2)) grads[2] = sum(sum(gout, {2, 3}), {0});
                  return grads;
                });
}

Tensor forward_op(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const ConvGeometry& g) {
  TraceOp trace("conv2d", {x, weight, bias});
  return trace.result(forward_impl(x, weight, bias, g));
}

// grad_out [N, Cout, Ho, Wo], weight -> [N, Cin, H, W]. Its adjoint in grad_out is the forward
// convolution, in weight the weight gradient:  <gg, bi(gout, w)> = <gout, conv(gg, w)>.
Tensor backward_input_impl(const char* name, const Tensor& grad_out, const Tensor& weight,
                           const ConvGeometry& g) {
  Tensor out = run_pass(name, ConvPass::backward_input, grad_out, weight, Tensor(), g,
                        input_shape_of(g));
  if (!any_requires_grad({grad_out, weight})) return out;
  const SavedTensor saved_gout(weight.requires_grad() ? grad_out : Tensor());
  const SavedTensor saved_w(grad_out.requires_grad() ? weight : Tensor());
  return record(name, out, {grad_out, weight},
                [saved_gout, saved_w, g](const Tensor& gg, const Node& n) {
                  TensorList grads(2);
                  if (n.needs_grad(0)) grads[0] = forward_op(gg, saved_w.unpack(n), Tensor(), g);
                  if (n.needs_grad(1))
                    grads[1] = backward_weight_op(saved_gout.unpack(n), gg, g);
                  return grads;
                });
}

// grad_out [N, Cout, Ho, Wo], x [N, Cin, H, W] -> weight shape. Adjoints:
// <gg, bw(gout, x)> = <gout, conv(x, gg)> = <bi(gout, gg), x>.
Tensor backward_weight_impl(const Tensor& grad_out, const Tensor& x, const ConvGeometry& g) {
  Tensor out = run_pass("conv2d_backward_weight", ConvPass::backward_weight, grad_out, x,
                        Tensor(), g, weight_shape_of(g));
  if (!any_requires_grad({grad_out, x})) return out;
  const SavedTensor saved_gout(x.requires_grad() ? grad_out : Tensor());
  const SavedTensor saved_x(grad_out.requires_grad() ? x : Tensor());
  return record("conv2d_backward_weight", out, {grad_out, x},
                [saved_gout, saved_x, g](const Tensor& gg, const Node& n) {
                  TensorList grads(2);
                  if (n.needs_grad(0)) grads[0] = forward_op(saved_x.unpack(n), gg, Tensor(), g);
                  if (n.needs_grad(1)) grads[1] = backward_input_op(saved_gout.unpack(n), gg, g);
                  return grads;
                });
}

// grad_out of a backward op must be the output of the geometry's forward convolution.
void check_grad_out(const char* op, const Tensor& grad_out, const ConvGeometry& g,
                    const char* shape_name, const Shape& shape) {
  CVG_CHECK(grad_out.shape() == output_shape_of(g), op, ": grad_out has shape ",
            grad_out.shape(), " but ", shape_name, " ", shape, " convolves to ",
            output_shape_of(g));
}

void check_bias(const char* op, const Tensor& bias, int64_t channels, const Tensor& ref) {
  if (!bias.defined()) return;
  CVG_CHECK(bias.dim() == 1 && bias.shape()[0] == channels, op, ": bias must be [", channels,
            "] (one value per output channel), got shape ", bias.shape());
  check_same_dtype(op, "bias", bias, "x", ref);
}

Tensor batched(const Tensor& x) { return x.dim() == 3 ? unsqueeze(x, 0) : x; }
Tensor unbatched_like(const Tensor& y, const Tensor& x) {
  return x.dim() == 3 ? squeeze(y, 0) : y;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, ConvSize2 stride,
              ConvSize2 padding, ConvSize2 dilation, int64_t groups) {
  TraceOp trace("conv2d", {x, weight, bias});
  const char* op = "conv2d";
  check_tensor(op, "x", x, 4, true, "N x Cin x H x W or Cin x H x W");
  check_tensor(op, "weight", weight, 4, false, "Cout x Cin/groups x kH x kW");
  check_same_dtype(op, "weight", weight, "x", x);
  check_bias(op, bias, weight.shape()[0], x);
  common_device(op, {x, weight, bias});
  const Tensor xb = batched(x);
  const ConvGeometry g =
      make_geometry(op, xb.shape(), "x", weight.shape(), "weight",
                    ConvArgs{stride, padding, dilation, groups});
  return trace.result(unbatched_like(forward_impl(xb, weight, bias, g), x));
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight,
                             const Shape& input_shape, ConvSize2 stride, ConvSize2 padding,
                             ConvSize2 dilation, int64_t groups) {
  TraceOp trace("conv2d_backward_input", {grad_out, weight});
  const char* op = "conv2d_backward_input";
  check_tensor(op, "grad_out", grad_out, 4, false, "N x Cout x Ho x Wo");
  check_tensor(op, "weight", weight, 4, false, "Cout x Cin/groups x kH x kW");
  check_same_dtype(op, "weight", weight, "grad_out", grad_out);
  common_device(op, {grad_out, weight});
  check_shape_arg(op, "input_shape", input_shape);
  const ConvGeometry g = make_geometry(op, input_shape, "input_shape", weight.shape(), "weight",
                                       ConvArgs{stride, padding, dilation, groups});
  check_grad_out(op, grad_out, g, "input_shape", input_shape);
  return trace.result(backward_input_impl(op, grad_out, weight, g));
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              ConvSize2 stride, ConvSize2 padding, ConvSize2 dilation,
                              int64_t groups) {
  TraceOp trace("conv2d_backward_weight", {grad_out, x});
  const char* op = "conv2d_backward_weight";
  check_tensor(op, "grad_out", grad_out, 4, false, "N x Cout x Ho x Wo");
  check_tensor(op, "x", x, 4, false, "N x Cin x H x W");
  check_same_dtype(op, "x", x, "grad_out", grad_out);
  common_device(op, {grad_out, x});
  check_shape_arg(op, "weight_shape", weight_shape);
  const ConvGeometry g = make_geometry(op, x.shape(), "x", weight_shape, "weight_shape",
                                       ConvArgs{stride, padding, dilation, groups});
  check_grad_out(op, grad_out, g, "x", x.shape());
  return trace.result(backward_weight_impl(grad_out, x, g));
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        ConvSize2 stride, ConvSize2 padding, ConvSize2 output_padding,
                        int64_t groups, ConvSize2 dilation) {
  TraceOp trace("conv_transpose2d", {x, weight, bias});
  const char* op = "conv_transpose2d";
  check_tensor(op, "x", x, 4, true, "N x Cin x H x W or Cin x H x W");
  check_tensor(op, "weight", weight, 4, false, "Cin x Cout/groups x kH x kW");
  check_same_dtype(op, "weight", weight, "x", x);
  const ConvArgs args{stride, padding, dilation, groups};
  check_args(op, args);
  const Tensor xb = batched(x);
  const Shape& in = xb.shape();
  const Shape& ws = weight.shape();
  CVG_CHECK(ws[0] == in[1], op, ": x ", in, " has ", in[1], " channels but weight ", ws,
            " expects ", ws[0], " (weight.size(0))");
  CVG_CHECK(ws[0] % groups == 0, op, ": groups ", groups, " does not divide the ", ws[0],
            " input channels of weight ", ws);
  check_bias(op, bias, ws[1] * groups, x);
  common_device(op, {x, weight, bias});
  // The output is the input of the conv2d whose input gradient this is.
  Shape out_shape = {in[0], ws[1] * groups, 0, 0};
  for (int i = 0; i < 2; ++i) {
    CVG_CHECK(output_padding[i] >= 0 &&
                  (output_padding[i] < stride[i] || output_padding[i] < dilation[i]),
              op, ": output_padding ", as_shape(output_padding),
              " must be non-negative and smaller than the stride ", as_shape(stride),
              " or the dilation ", as_shape(dilation));
    out_shape[2 + i] = (in[2 + i] - 1) * stride[i] - 2 * padding[i] +
                       dilation[i] * (ws[2 + i] - 1) + output_padding[i] + 1;
  }
  CVG_CHECK(out_shape[2] >= 1 && out_shape[3] >= 1, op, ": input of ", in[2], " x ", in[3],
            " with kernel ", ws[2], " x ", ws[3], ", ", describe_args(args),
            ", output_padding ", as_shape(output_padding), " gives an output size of ",
            out_shape[2], " x ", out_shape[3], "; it must be at least 1 x 1");
  ConvGeometry g = make_geometry(op, out_shape, "output", ws, "weight", args);
  // The conv2d of the output has at least in[2] x in[3] positions (more when output_padding
  // reaches a stride); the transposed convolution is the adjoint of its first in[2] x in[3].
  g.ho = in[2];
  g.wo = in[3];
  Tensor y = backward_input_impl(op, xb, weight, g);
  if (bias.defined()) y = y + reshape(bias, {1, out_shape[1], 1, 1});
  return trace.result(unbatched_like(y, x));
}

}  // namespace cvg
