// CUDA benchmarks of the normalisation family (kernels/norm.h, dropout.h, spatial.h), timed with
// CUDA events after an L2 flush (bench/gpu_timer.h). The same ops and shapes as cpu_norm.cpp,
// named "cuda/<op>/<dims>"; the PyTorch side is bench/torch_ops/norm.py. min_bytes counts
// float32 reads and writes of the activations only (the per-channel vectors are negligible):
// a forward reads x and writes y (8 B per element; batch_norm training reads x twice more for
// the two-pass statistics, which L2 may serve), a forward + backward adds reading x and dy and
// writing dx.
#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/dropout.h"
#include "kernels/norm.h"
#include "kernels/spatial.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;
using cvg::bench::randn_cuda;

// Builds the op to time from the dims; inputs are made once, outside the timed region.
using Maker = std::function<std::function<void()>(const Shape&)>;

Tensor leaf_cuda(const Shape& shape) {
  Tensor t = randn_cuda(shape);
  t.set_requires_grad(true);
  return t;
}

std::string label(const std::string& op, const Shape& dims) {
  std::string s = "cuda/" + op + "/";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

// bytes_per_elem: minimum float32 traffic per element of x (see the header comment).
void reg(const std::string& op, const Shape& dims, double bytes_per_elem, Maker make) {
  cvg::bench::reg_gpu(label(op, dims), [make, dims, bytes_per_elem](benchmark::State& st) {
    manual_seed(3);
    const std::function<void()> fn = make(dims);
    cvg::bench::time_gpu(st, fn, bytes_per_elem * static_cast<double>(numel_of(dims)), 0.0);
  });
}

const bool registered = [] {
  for (int64_t C : {20, 48, 64, 80, 256}) {
    const Shape dims{16, C, 35, 35};
    reg("batch_norm_train", dims, 8, [](const Shape& d) {
      const Tensor x = randn_cuda(d), w = randn_cuda({d[1]}), b = randn_cuda({d[1]});
      const Tensor rm = zeros({d[1]}).to(kCUDA), rv = ones({d[1]}).to(kCUDA);
      return [=] { batch_norm(x, w, b, rm, rv, true); };
    });
    reg("batch_norm_train_bwd", dims, 20, [](const Shape& d) {
      const Tensor x = leaf_cuda(d), w = leaf_cuda({d[1]}), b = leaf_cuda({d[1]}), g = randn_cuda(d);
      const Tensor rm = zeros({d[1]}).to(kCUDA), rv = ones({d[1]}).to(kCUDA);
      return [=] {
        const Tensor y = batch_norm(x, w, b, rm, rv, true);
        grad({y}, {x, w, b}, {g});
      };
    });
    reg("batch_norm_eval", dims, 8, [](const Shape& d) {
      const Tensor x = randn_cuda(d), w = randn_cuda({d[1]}), b = randn_cuda({d[1]});
      const Tensor rm = randn_cuda({d[1]}), rv = (rand({d[1]}) + 0.5).to(kCUDA);
      return [=] { batch_norm(x, w, b, rm, rv, false); };
    });
  }
  for (const Shape& dims : {Shape{16, 64, 35, 35}, Shape{8, 256, 16, 16}}) {
    reg("instance_norm", dims, 8, [](const Shape& d) {
      const Tensor x = randn_cuda(d), w = randn_cuda({d[1]}), b = randn_cuda({d[1]});
      return [=] { instance_norm(x, w, b); };
    });
    reg("layer_norm", dims, 8, [](const Shape& d) {
      const Shape ns{d[1], d[2], d[3]};
      const Tensor x = randn_cuda(d), w = randn_cuda(ns), b = randn_cuda(ns);
      return [=] { layer_norm(x, ns, w, b); };
    });
    reg("layer_norm_bwd", dims, 20, [](const Shape& d) {
      const Shape ns{d[1], d[2], d[3]};
      const Tensor x = leaf_cuda(d), w = leaf_cuda(ns), b = leaf_cuda(ns), g = randn_cuda(d);
      return [=] {
        const Tensor y = layer_norm(x, ns, w, b);
        grad({y}, {x, w, b}, {g});
      };
    });
    reg("dropout", dims, 8, [](const Shape& d) {
      const Tensor x = randn_cuda(d);
      return [=] { dropout(x, 0.5); };
    });
  }
  for (const Shape& dims : {Shape{16, 32, 64, 64}, Shape{32, 68, 32, 32}}) {
    reg("spatial_softmax", dims, 8, [](const Shape& d) {
      const Tensor x = randn_cuda(d);
      return [=] { spatial_softmax(x); };
    });
    reg("soft_argmax", dims, 4, [](const Shape& d) {
      const Tensor x = randn_cuda(d);
      return [=] { soft_argmax(x); };
    });
    reg("soft_argmax_bwd", dims, 12, [](const Shape& d) {
      const Tensor x = leaf_cuda(d), g = randn_cuda({d[0], d[1], 2});
      return [=] { grad({soft_argmax(x)}, {x}, {g}); };
    });
  }
  return true;
}();

}  // namespace
