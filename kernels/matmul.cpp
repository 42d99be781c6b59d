// Matrix products: shape rules, batching, device dispatch and autograd (see kernels/matmul.h).
//
// Every product funnels into matmul_nd (both operands at least 2-D). It broadcasts the batch
// dims, views each operand as [B, rows, cols] without copying where the strides allow it, runs
// one batched kernel, and records a single node whose backward is again matmul_nd:
//     dA = sum_to(dC B^T, shape of A),   dB = sum_to(A^T dC, shape of B),
// which covers broadcast batch dims (sum_to adds up the copies) and gives second derivatives.
// The 1-D cases of torch.matmul are handled around it with unsqueeze/squeeze views.
#include "kernels/matmul.h"

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/view.h"

namespace cvg {

namespace {

Tensor mT(const Tensor& t) { return transpose(t, -2, -1); }

// Dims [0, nd) of t as a single dim, when its strides allow a view: every dim's stride must be
// the next (inner) dim's stride times that dim's size. Size-1 dims never move the pointer, so
// they are skipped. Expanded dims (stride 0 throughout) collapse too. Returns false otherwise.
bool collapse_leading(const Tensor& t, int nd, int64_t& stride) {
  stride = 0;
  int64_t expected = -1;  // stride the next outer non-trivial dim must have; -1: none seen
  for (int d = nd - 1; d >= 0; --d) {
    const int64_t size = t.shape()[d], st = t.strides()[d];
    if (size == 1) continue;
    if (expected < 0) {
      stride = st;
    } else if (st != expected) {
      return false;
    }
    expected = st * size;
  }
  return true;
}

// t (last two dims [R, C]) read as [B, R, C] where the batch dims broadcast to `batch`.
// A view when possible, a contiguous copy of the broadcast operand otherwise.
Tensor as_batched(const Tensor& t, const Shape& batch) {
  const int64_t R = t.shape()[t.dim() - 2], C = t.shape()[t.dim() - 1];
  Shape full = batch;
  full.push_back(R);
  full.push_back(C);
  const Shape st = broadcast_strides(t, full, "matmul");
  Tensor e = make_view(t, full, st, t.offset());
  const int nb = static_cast<int>(batch.size());
  int64_t bstride = 0;
  if (!collapse_leading(e, nb, bstride)) {
    NoGradGuard no_grad;
    e = e.contiguous();
    bstride = R * C;
  }
  const int64_t B = numel_of(batch);
  return make_view(e, {B, R, C}, {bstride, e.strides()[nb], e.strides()[nb + 1]}, e.offset());
}

void check_operands(const Tensor& a, const Tensor& b, const char* name) {
  CVG_CHECK(a.defined() && b.defined(), name, ": undefined input");
  common_device(name, {a, b});
  CVG_CHECK(is_floating(a.dtype()) && is_floating(b.dtype()), name,
            ": expected float32 or float64 operands, got ", dtype_name(a.dtype()), " and ",
            dtype_name(b.dtype()), " (integer matmul is not supported; convert with to())");
  CVG_CHECK(a.dtype() == b.dtype(), name, ": operands must have the same dtype, got ",
            dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
}

// C = A B for a [..., M, K], b [..., K, N] (both at least 2-D) without autograd.
Tensor matmul_forward(const Tensor& a, const Tensor& b, const char* name) {
  check_operands(a, b, name);
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1];
  const int64_t K2 = b.shape()[b.dim() - 2], N = b.shape()[b.dim() - 1];
  CVG_CHECK(K == K2, name, ": cannot multiply a ", a.shape(), " by b ", b.shape(), ": a has ", K,
            " columns but b has ", K2, " rows");
  const Shape abatch(a.shape().begin(), a.shape().end() - 2);
  const Shape bbatch(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(abatch, bbatch, name);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  check_shape(out_shape, name);
  Tensor out = Tensor::empty(out_shape, a.options());
  if (out.numel() == 0) return out;

  const int64_t B = numel_of(batch);
  Tensor a3, b3, out3;
  int64_t row_stride = 0;
  if (b.dim() == 2 && a.dim() > 2 && collapse_leading(a, a.dim() - 1, row_stride)) {
    // [..., M, K] x [K, N]: fold the batch into the rows, one GEMM of B*M rows (what a linear
    // layer on a batch of sequences does), instead of B small ones against the same b.
    a3 = make_view(a, {1, B * M, K}, {0, row_stride, a.strides()[a.dim() - 1]}, a.offset());
    b3 = make_view(b, {1, K, N}, {0, b.strides()[0], b.strides()[1]}, b.offset());
    out3 = make_view(out, {1, B * M, N}, {0, N, 1}, out.offset());
  } else {
    a3 = as_batched(a, batch);
    b3 = as_batched(b, batch);
    out3 = make_view(out, {B, M, N}, {M * N, N, 1}, out.offset());
  }
  if (a.device().is_cpu()) {
    bmm_cpu(a3, b3, out3);
  } else {
#ifdef CVG_WITH_CUDA
    NoGradGuard no_grad;
    bmm_cuda(a3.contiguous(), b3.contiguous(), out3);
#else
    fail(name, ": no kernel for device ", a.device().str());
#endif
  }
  return out;
}

// Forward plus the autograd node (both operands at least 2-D).
Tensor matmul_nd(const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = matmul_forward(a, b, name);
  if (!any_requires_grad({a, b})) return out;
  // Each gradient needs only the other operand.
  SavedTensor sa(b.requires_grad() ? a : Tensor()), sb(a.requires_grad() ? b : Tensor());
  const Shape shape_a = a.shape(), shape_b = b.shape();
  return record(name, out, {a, b}, [sa, sb, shape_a, shape_b](const Tensor& g, const Node& n) {
    Tensor ga, gb;
    if (n.needs_grad(0)) ga = sum_to(matmul_nd(g, mT(sb.unpack(n)), "matmul"), shape_a);
    if (n.needs_grad(1)) gb = sum_to(matmul_nd(mT(sa.unpack(n)), g, "matmul"), shape_b);
    return TensorList{ga, gb};
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  TraceOp trace("matmul", {a, b});
  CVG_CHECK(a.defined() && b.defined(), "matmul: undefined input");
  CVG_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments must be at least 1-D, got a ",
            a.shape(), " and b ", b.shape());
  if (a.dim() == 1 && b.dim() == 1) {
    CVG_CHECK(a.shape()[0] == b.shape()[0], "matmul: dot product of vectors of different sizes: a ",
              a.shape(), ", b ", b.shape());
    return trace.result(reshape(matmul_nd(unsqueeze(a, 0), unsqueeze(b, 1), "matmul"), {}));
  }
  // A vector is a [1, K] row on the left or a [K, 1] column on the right; that dim is removed.
  if (a.dim() == 1) return trace.result(squeeze(matmul_nd(unsqueeze(a, 0), b, "matmul"), -2));
  if (b.dim() == 1) return trace.result(squeeze(matmul_nd(a, unsqueeze(b, 1), "matmul"), -1));
  return trace.result(matmul_nd(a, b, "matmul"));
}

Tensor mm(const Tensor& a, const Tensor& b) {
  TraceOp trace("mm", {a, b});
  CVG_CHECK(a.defined() && b.defined(), "mm: undefined input");
  CVG_CHECK(a.dim() == 2 && b.dim() == 2, "mm: expected 2-D matrices, got a ", a.shape(),
            " and b ", b.shape());
  return trace.result(matmul_nd(a, b, "mm"));
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  TraceOp trace("bmm", {a, b});
  CVG_CHECK(a.defined() && b.defined(), "bmm: undefined input");
  CVG_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected 3-D batches [B, M, K] and [B, K, N], got a ",
            a.shape(), " and b ", b.shape());
  CVG_CHECK(a.shape()[0] == b.shape()[0], "bmm: batch sizes differ: a ", a.shape(), ", b ",
            b.shape(), " (bmm does not broadcast; use matmul)");
  return trace.result(matmul_nd(a, b, "bmm"));
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  TraceOp trace("linear", {x, weight, bias});
  CVG_CHECK(x.defined() && weight.defined(), "linear: undefined input or weight");
  CVG_CHECK(x.dim() >= 1, "linear: x must be at least 1-D, got a 0-d tensor");
  CVG_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out_features, in_features], got ",
            weight.shape());
  CVG_CHECK(x.shape().back() == weight.shape()[1], "linear: x ", x.shape(), " has ",
            x.shape().back(), " features but weight ", weight.shape(), " expects ",
            weight.shape()[1]);
  // x W^T: the transpose is a view, which BLAS reads with a transpose flag (no copy).
  Tensor y = matmul(x, transpose(weight, 0, 1));
  if (bias.defined()) {
    CVG_CHECK(bias.dim() == 1 && bias.shape()[0] == weight.shape()[0], "linear: bias must be [",
              weight.shape()[0], "] to match weight ", weight.shape(), ", got ", bias.shape());
    y = y + bias;
  }
  return trace.result(y);
}

}  // namespace cvg
