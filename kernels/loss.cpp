// Loss functions: argument checks, reductions, and the compositions of differentiable ops that
// define them (see kernels/loss.h for the semantics).
#include "kernels/loss.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "kernels/unary.h"
#include "kernels/view.h"

namespace cvg {

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::none: return "none";
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
    case Reduction::batchmean: return "batchmean";
  }
  return "?";
}

namespace {

// mean is written as sum / count so that an empty input gives 0 / 0 = NaN (PyTorch's answer)
// instead of an error.
Tensor reduce_loss(const Tensor& l, Reduction r, const char* op) {
  switch (r) {
    case Reduction::none: return l;
    case Reduction::sum: return sum(l);
    case Reduction::mean: return sum(l) / static_cast<double>(l.numel());
    case Reduction::batchmean: break;
  }
  fail(op, ": reduction batchmean is only defined for kl_div (use mean, sum or none)");
}

// input and target of a pointwise loss: same device, floating, same shape.
void check_pair(const Tensor& input, const Tensor& target, const char* op) {
  CVG_CHECK(input.defined() && target.defined(), op, ": undefined input or target");
  common_device(op, {input, target});
  CVG_CHECK(is_floating(input.dtype()) && is_floating(target.dtype()), op,
            ": input and target must be floating-point, got ", dtype_name(input.dtype()), " and ",
            dtype_name(target.dtype()));
  CVG_CHECK(input.shape() == target.shape(), op, ": input ", input.shape(), " and target ",
            target.shape(), " must have the same shape (losses do not broadcast)");
}

// An optional per-element factor (weight, pos_weight) must broadcast to `shape` without
// growing it.
void check_factor(const Tensor& f, const Shape& shape, const char* op, const char* arg) {
  if (!f.defined()) return;
  CVG_CHECK(is_floating(f.dtype()), op, ": ", arg, " must be floating-point, got ",
            dtype_name(f.dtype()));
  bool fits = f.dim() <= static_cast<int64_t>(shape.size());
  for (int64_t i = 1; fits && i <= f.dim(); ++i) {
    const int64_t fs = f.shape()[f.dim() - i], s = shape[shape.size() - i];
    fits = fs == 1 || fs == s;
  }
  CVG_CHECK(fits, op, ": ", arg, " ", f.shape(), " does not broadcast to the input's shape ", shape);
}

// Checks shared by nll_loss and cross_entropy with class-index targets.
void check_class_args(const Tensor& input, const Tensor& target, const Tensor& weight,
                      Reduction reduction, const char* op) {
  CVG_CHECK(input.defined() && target.defined(), op, ": undefined input or target");
  common_device(op, {input, target, weight});
  CVG_CHECK(is_floating(input.dtype()), op, ": input must be floating-point, got ",
            dtype_name(input.dtype()));
  CVG_CHECK(target.dtype() == DType::int64 || target.dtype() == DType::int32, op,
            ": target must hold class indices (int64 or int32), got ", dtype_name(target.dtype()));
  CVG_CHECK(reduction != Reduction::batchmean, op,
            ": reduction batchmean is only defined for kl_div (use mean, sum or none)");
}

// input [N, C, d1, ...] against target [N, d1, ...] and weight [C].
void check_class_shapes(const Tensor& input, const Tensor& target, const Tensor& weight,
                        const char* op) {
  CVG_CHECK(input.dim() >= 2, op, ": input must be [N, C] or [N, C, d1, ...], got ", input.shape());
  const int64_t C = input.shape()[1];
  Shape expected = input.shape();
  expected.erase(expected.begin() + 1);
  CVG_CHECK(target.shape() == expected, op, ": target ", target.shape(), " does not match input ",
            input.shape(), " (expected target ", expected, ")");
  if (weight.defined()) {
    CVG_CHECK(weight.dim() == 1 && weight.shape()[0] == C, op, ": weight must be [", C,
              "] (one value per class of input ", input.shape(), "), got ", weight.shape());
    CVG_CHECK(weight.dtype() == input.dtype(), op, ": weight must have the input's dtype ",
              dtype_name(input.dtype()), ", got ", dtype_name(weight.dtype()));
    CVG_CHECK(!(weight.requires_grad() && GradMode::enabled()), op,
              ": gradients with respect to weight are not supported; pass weight.detach()");
  }
}

// The weighted mean of nll_loss and cross_entropy: loss_sum / total, total the (constant) sum
// of the class weights of the targets that count. When total is 0 (every target ignored, or
// their weights are 0) the value stays loss_sum / 0, NaN (or +-inf), as in PyTorch, but the
// gradient is 0 instead of g / 0 = NaN: the loss is then a constant of the inputs, so one batch
// without a valid target leaves an optimizer step a no-op rather than turning every parameter
// into NaN. The differentiable branch divides by 1 there, so that where's zero gradient is not
// turned into 0 / 0 on the way back. Elsewhere the value is exactly loss_sum / total.
Tensor weighted_mean(const Tensor& loss_sum, const Tensor& total) {
  Tensor no_weight, safe_total, value_if_none;
  {
    NoGradGuard no_grad;
    no_weight = eq(total, zeros_like(total));
    safe_total = where(no_weight, ones_like(total), total);
    value_if_none = loss_sum.detach() / total;
  }
  return where(no_weight, value_if_none, loss_sum / safe_total);
}

void check_target_value(int64_t bad, int64_t C, int64_t ignore_index, const char* op) {
  CVG_CHECK(bad == ignore_index, op, ": target ", bad, " is out of range for ", C,
            " classes (expected 0 <= target < ", C, ", or ignore_index = ", ignore_index, ")");
}

Tensor nll_impl(const Tensor& input, const Tensor& target, const Tensor& weight,
                int64_t ignore_index, Reduction reduction, const char* op) {
  check_class_args(input, target, weight, reduction, op);
  if (input.dim() == 1) {
    // Unbatched: input [C] with a 0-d target is a batch of one.
    CVG_CHECK(target.dim() == 0, op, ": an unbatched input ", input.shape(),
              " needs a 0-d target, got ", target.shape());
    Tensor l = nll_impl(unsqueeze(input, 0), reshape(target, {1}), weight, ignore_index,
                        reduction, op);
    return reduction == Reduction::none ? reshape(l, {}) : l;
  }
  check_class_shapes(input, target, weight, op);
  const int64_t N = input.shape()[0], C = input.shape()[1];
  int64_t inner = 1;  // product of the spatial dims d1, ...
  for (int64_t d = 2; d < input.dim(); ++d) inner *= input.shape()[d];
  Tensor W;
  {
    NoGradGuard no_grad;
    W = nll_class_weights(target.contiguous(), weight.defined() ? weight.contiguous() : weight, N,
                          C, inner, ignore_index, input.dtype(), op);
    W = reshape(W, input.shape());
  }
  // input * W keeps, per target, weight[t] * input[n, t]; the rest are zeros.
  const Tensor picked = input * W;
  switch (reduction) {
    case Reduction::none: return -sum(picked, {1});
    case Reduction::sum: return -sum(picked);
    default: {
      // Divide by the total weight of the targets that count (PyTorch's weighted mean).
      Tensor total;
      {
        NoGradGuard no_grad;
        total = sum(W);
      }
      return -weighted_mean(sum(picked), total);
    }
  }
}


// cross_entropy for [N, C] logits and class indices in one fused kernel (kernels/loss_math.h):
// the forward pass also writes dlogits = w[t] (softmax - onehot), so the backward pass is one
// multiply. With create_graph the backward is instead written with differentiable ops of the
// logits, which gives the same values and second derivatives.
Tensor cross_entropy_fused(const Tensor& logits, const Tensor& target, const Tensor& weight,
                           int64_t ignore_index, Reduction reduction) {
  const char* op = "cross_entropy";
  check_class_args(logits, target, weight, reduction, op);
  check_class_shapes(logits, target, weight, op);
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  Tensor x, t, w;
  {
    NoGradGuard no_grad;
    x = logits.contiguous();
    t = target.contiguous();
    if (weight.defined()) w = weight.contiguous();
  }
  const TensorOptions o = logits.options();
  Tensor losses = Tensor::empty({N}, o), row_weight = Tensor::empty({N}, o);
  const Tensor dlogits = Tensor::empty({N, C}, o);
  int64_t bad = ignore_index;
  if (logits.device().is_cpu()) {
    bad = cross_entropy_fused_cpu(x, t, w, ignore_index, losses, row_weight, dlogits);
  } else {
#ifdef CVG_WITH_CUDA
    const Tensor flag =
        from_vector<int64_t>({ignore_index}, {1}, TensorOptions{}.with_dtype(DType::int64))
            .to(logits.device());
    cross_entropy_fused_cuda(x, t, w, ignore_index, losses, row_weight, dlogits, flag);
    bad = flag.to(kCPU).item<int64_t>();
#else
    fail(op, ": no kernel for device ", logits.device().str());
#endif
  }
  check_target_value(bad, C, ignore_index, op);
  if (any_requires_grad({logits})) {
    // The class weight is saved too (it may be the caller's tensor): changed in place before a
    // create_graph backward, it is an error, as for the other saved tensors.
    SavedTensor sx(logits), st(t), sw(w);
    const DType dt = logits.dtype();
    losses = record("cross_entropy", losses, {logits},
        [sx, st, sw, dlogits, ignore_index, N, C, dt](const Tensor& g, const Node& n) {
          const Tensor gcol = unsqueeze(g, 1);
          if (!GradMode::enabled()) return TensorList{dlogits * gcol};
          // w[t] (softmax(x) - onehot(t)) = softmax(x) * w[t] - W, W the nll weight map.
          Tensor W, rw;
          {
            NoGradGuard no_grad;
            W = reshape(nll_class_weights(st.unpack(n), sw.unpack(n), N, C, 1, ignore_index, dt, "cross_entropy"),
                        {N, C});
            rw = sum(W, {1}, /*keepdim=*/true);
          }
          return TensorList{(softmax(sx.unpack(n), 1) * rw - W) * gcol};
        });
  }
  switch (reduction) {
    case Reduction::none: return losses;
    case Reduction::sum: return sum(losses);
    default: {
      Tensor total;
      {
        NoGradGuard no_grad;
        total = sum(row_weight);
      }
      return weighted_mean(sum(losses), total);
    }
  }
}
}  // namespace

Tensor nll_class_weights(const Tensor& target, const Tensor& weight, int64_t N, int64_t C,
                         int64_t inner, int64_t ignore_index, DType dtype, const char* op) {
  Tensor W = zeros({N, C, inner}, TensorOptions{}.with_dtype(dtype).with_device(target.device()));
  int64_t bad = ignore_index;
  if (target.device().is_cpu()) {
    bad = nll_class_weights_cpu(target, weight, W, C, inner, ignore_index);
  } else {
#ifdef CVG_WITH_CUDA
    const Tensor flag =
        from_vector<int64_t>({ignore_index}, {1}, TensorOptions{}.with_dtype(DType::int64))
            .to(target.device());
    nll_class_weights_cuda(target, weight, W, C, inner, ignore_index, flag);
    bad = flag.to(kCPU).item<int64_t>();
#else
    fail(op, ": no kernel for device ", target.device().str());
#endif
  }
  check_target_value(bad, C, ignore_index, op);
  return W;
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight,
                int64_t ignore_index, Reduction reduction) {
  TraceOp trace("nll_loss", {input, target, weight});
  return trace.result(nll_impl(input, target, weight, ignore_index, reduction, "nll_loss"));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                     int64_t ignore_index, Reduction reduction) {
  TraceOp trace("cross_entropy", {logits, target, weight});
  const char* op = "cross_entropy";
  CVG_CHECK(logits.defined() && target.defined(), op, ": undefined logits or target");
  CVG_CHECK(logits.dim() >= 1, op, ": logits must be [C], [N, C] or [N, C, d1, ...], got a 0-d tensor");
  const int64_t cdim = logits.dim() == 1 ? 0 : 1;
  if (!is_floating(target.dtype())) {
    if (logits.dim() == 2)
      return trace.result(cross_entropy_fused(logits, target, weight, ignore_index, reduction));
    // Unbatched and spatial inputs use the composition (the reference for the fused kernel).
    return trace.result(nll_impl(log_softmax(logits, cdim), target, weight, ignore_index,
                                 reduction, op));
  }

  // Class probabilities.
  check_pair(logits, target, op);
  CVG_CHECK(reduction != Reduction::batchmean, op,
            ": reduction batchmean is only defined for kl_div (use mean, sum or none)");
  const int64_t C = logits.shape()[cdim];
  Tensor l = log_softmax(logits, cdim) * target;
  if (weight.defined()) {
    CVG_CHECK(weight.dim() == 1 && weight.shape()[0] == C, op, ": weight must be [", C,
              "] (one value per class of logits ", logits.shape(), "), got ", weight.shape());
    common_device(op, {logits, weight});
    Shape wshape(logits.dim() - cdim, 1);  // [C, 1, ..., 1]: broadcasts along the class dim
    wshape[0] = C;
    l = l * reshape(weight, wshape);
  }
  const Tensor per_sample = -sum(l, {cdim});
  if (reduction == Reduction::none) return trace.result(per_sample);
  return trace.result(reduce_loss(per_sample, reduction, op));
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  TraceOp trace("mse_loss", {input, target});
  check_pair(input, target, "mse_loss");
  const Tensor d = input - target;
  return trace.result(reduce_loss(d * d, reduction, "mse_loss"));
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  TraceOp trace("l1_loss", {input, target});
  check_pair(input, target, "l1_loss");
  return trace.result(reduce_loss(abs(input - target), reduction, "l1_loss"));
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  TraceOp trace("smooth_l1_loss", {input, target});
  const char* op = "smooth_l1_loss";
  check_pair(input, target, op);
  CVG_CHECK(beta >= 0, op, ": beta must be >= 0, got ", beta);
  const Tensor d = input - target;
  const Tensor ad = abs(d);
  if (beta == 0) return trace.result(reduce_loss(ad, reduction, op));
  // Both branches are finite everywhere, so the branch where() discards passes a zero gradient
  // (no 0 * inf); the two pieces meet with equal value and slope at |d| = beta.
  const Tensor quadratic = d * d * (0.5 / beta);
  const Tensor linear_part = ad - 0.5 * beta;
  const Tensor l = where(lt(ad, scalar_tensor(beta, ad.options())), quadratic, linear_part);
  return trace.result(reduce_loss(l, reduction, op));
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight, Reduction reduction,
                                        const Tensor& pos_weight) {
  TraceOp trace("binary_cross_entropy_with_logits", {input, target, weight, pos_weight});
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(input, target, op);
  common_device(op, {input, weight, pos_weight});
  check_factor(weight, input.shape(), op, "weight");
  check_factor(pos_weight, input.shape(), op, "pos_weight");
  // -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] with -log sigmoid(x) = softplus(-x) and
  // -log(1 - sigmoid(x)) = softplus(x); both terms are >= 0, so nothing cancels.
  Tensor positive = target * softplus(-input);
  if (pos_weight.defined()) positive = positive * pos_weight;
  Tensor l = (1.0 - target) * softplus(input) + positive;
  if (weight.defined()) l = l * weight;
  return trace.result(reduce_loss(l, reduction, op));
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  TraceOp trace("kl_div", {input, target});
  const char* op = "kl_div";
  check_pair(input, target, op);
  Tensor l;
  if (log_target) {
    l = exp(target) * (target - input);
  } else {
    // xlogy: target * log(target) is 0 at target == 0. Taking log of 1 there (instead of
    // masking log(0) afterwards) keeps -inf, and a 0 * inf = NaN gradient, out of the graph.
    const Tensor zero = scalar_tensor(0.0, target.options());
    const Tensor safe = where(eq(target, zero), scalar_tensor(1.0, target.options()), target);
    l = target * (log(safe) - input);
  }
  if (reduction == Reduction::batchmean) {
    const double batch = input.dim() == 0 ? 1.0 : static_cast<double>(input.shape()[0]);
    return trace.result(sum(l) / batch);
  }
  return trace.result(reduce_loss(l, reduction, op));
}

}  // namespace cvg
