// CUDA benchmarks of the Deep Matching layers (kernels/deepmatch.h), float32, timed with CUDA
// events after an L2 flush (bench/gpu_timer.h). Names "cuda/dm_<layer>[_bwd]/<P>x<K>", P reference
// points of one pair and K the fine offsets per axis; each layer alone (its public op; _bwd times
// the backward op alone) and the whole U-network forward + backward for a 256 x 256 pair (alpha_0 =
// 8, R_0 = 80, L = 6, d = 64). min_bytes counts what each kernel must read and write at least
// (scores 4 B, switches 1 B; kernel list rows 6-11 of the notes):
//   correlation      4 P K^2 written + descriptors read once (4 d (P + Ht Wt))
//   correlation_bwd  both gathers: dS read twice, descriptors read, gradients written
//   max_pool         4 P K^2 read + 5 P K'^2 written;  _bwd: 5 P K'^2 read + 4 P K^2 written
//   aggregate        8 P K^2 (read + write), its backward the same
//   power            8 P K^2;  _bwd: A and dS read, dA written (12 P K^2)
//   disaggregate     4 P K^2 read + 5 P K^2 written;   _bwd: 5 P K^2 read + 4 P K^2 written
//   unpool           5 P K'^2 + 4 P K^2 read, 4 P K^2 written;  _bwd: 9 P K'^2 read + the
//                    4 P K'^2 fine gradients at the switches + 4 P K'^2 written;  _skip_bwd
//                    (d S_l): 8 P K^2 read + 4 P K^2 written (_unfused: the compare and select
//                    it replaced, counted with the same bytes); _grads: the layer's whole
//                    backward in one pass (d q_half and d s: grad, Q_l read, d s written, and
//                    5 P K'^2 read + 4 P K'^2 written; _unfused: the two ops, same bytes)
//   hinge_loss       4 P K^2 read;  _bwd: 4 P K^2 read + 4 P K^2 written
// Rows named *_index64 time a layer on its 64-bit index path (kernels/deepmatch.h), beside the
// default 32-bit one; dm_(dis)aggregate(_bwd)_v2 the aggregation family along runs of j (the
// default), _v3 by spans of k, _v4 along runs of kDmAggShortRun; dm_max_pool_bwd_v2, dm_unpool_v2
// and dm_unpool_bwd_v2 by 2 x 2 cells, dm_max_pool_v2 by pairs of outputs, beside one output
// per item; dm_correlation_v1 the per-score forward beside the tiled default,
// and dm_correlation_grad_ref(_v2) and dm_correlation_grad_target(_v2) each gradient alone, per
// point or pixel (v1, the default) and tiled (v2). "cuda/deep_matching_match/..." times the app's
// whole `match` of a pair (bench/deepmatch_match.h), at the motorcycle pair's 1/2 size and at
// the thesis's Sintel setting (1024 x 436, R_0 = 80, L = 6).
#include <benchmark/benchmark.h>

#include <functional>
#include <limits>
#include <string>

#include "bench/deepmatch_match.h"
#include "bench/gpu_timer.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;
using cvg::bench::randn_cuda;

Tensor scores_cuda(int64_t h, int64_t w, int64_t k) {
  return abs(randn_cuda({1, h, w, k, k}));
}

void reg(const std::string& op, int64_t h, int64_t w, int64_t k, double min_bytes,
         std::function<std::function<void()>()> make) {
  const std::string name =
      "cuda/" + op + "/" + std::to_string(h * w) + "x" + std::to_string(k);
  cvg::bench::reg_gpu(name, [make, min_bytes](benchmark::State& st) {
    manual_seed(5);
    NoGradGuard no_grad;
    const std::function<void()> fn = make();
    cvg::bench::time_gpu(st, fn, min_bytes, 0.0);
  });
}

int64_t coarse_k(int64_t k) { return 2 * (((k - 1) / 2 + 1) / 2) + 1; }

const bool registered = [] {
  // Level 0 and level 2 of a 256 x 256 pair (P = 32 x 32) with R_0 = 80.
  for (int64_t k : {161, 41}) {
    const int64_t h = 32, w = 32, p = h * w, kc = coarse_k(k);
    const double fine = 4.0 * p * k * k, coarse = 4.0 * p * kc * kc;
    if (k == 161) {
      const int64_t d = 64, ht = 256, wt = 256;
      const double desc = 4.0 * d * (p + ht * wt);
      reg("dm_correlation", h, w, k, fine + desc, [=] {
        const Tensor ref = randn_cuda({1, d, h, w}), tgt = randn_cuda({1, d, ht, wt});
        return [=] { dm_correlation(ref, tgt, 80, 8, 4); };
      });
      reg("dm_correlation_v1", h, w, k, fine + desc, [=] {
        const Tensor ref = randn_cuda({1, d, h, w}), tgt = randn_cuda({1, d, ht, wt});
        return [=] {
          const DmCorrVersionGuard per_score(1);
          dm_correlation(ref, tgt, 80, 8, 4);
        };
      });
      reg("dm_correlation_grad_ref", h, w, k, fine + desc, [=] {
        const Tensor tgt = randn_cuda({1, d, ht, wt}), g = randn_cuda({1, h, w, k, k});
        return [=] { dm_correlation_grad_ref(g, tgt, 8, 4); };
      });
      reg("dm_correlation_grad_ref_v2", h, w, k, fine + desc, [=] {
        const Tensor tgt = randn_cuda({1, d, ht, wt}), g = randn_cuda({1, h, w, k, k});
        return [=] {
          const DmCorrVersionGuard tiled(2);
          dm_correlation_grad_ref(g, tgt, 8, 4);
        };
      });
      reg("dm_correlation_grad_target", h, w, k, fine + desc, [=] {
        const Tensor ref = randn_cuda({1, d, h, w}), g = randn_cuda({1, h, w, k, k});
        return [=] { dm_correlation_grad_target(g, ref, {ht, wt}, 8, 4); };
      });
      reg("dm_correlation_grad_target_v2", h, w, k, fine + desc, [=] {
        const Tensor ref = randn_cuda({1, d, h, w}), g = randn_cuda({1, h, w, k, k});
        return [=] {
          const DmCorrVersionGuard tiled(2);
          dm_correlation_grad_target(g, ref, {ht, wt}, 8, 4);
        };
      });
      reg("dm_correlation_bwd", h, w, k, 2 * fine + 2 * desc, [=] {
        const Tensor ref = randn_cuda({1, d, h, w}), tgt = randn_cuda({1, d, ht, wt});
        const Tensor g = randn_cuda({1, h, w, k, k});
        return [=] {
          dm_correlation_grad_ref(g, tgt, 8, 4);
          dm_correlation_grad_target(g, ref, {ht, wt}, 8, 4);
        };
      });
    }
    reg("dm_max_pool", h, w, k, fine + 1.25 * coarse, [=] {
      const Tensor s = scores_cuda(h, w, k);
      return [=] { dm_max_pool(s); };
    });
    reg("dm_max_pool_bwd", h, w, k, 1.25 * coarse + fine, [=] {
      const Tensor s = scores_cuda(h, w, k);
      const Tensor sw = dm_max_pool(s).switches, g = randn_cuda({1, h, w, kc, kc});
      return [=] { dm_max_pool_backward(g, sw, k); };
    });
    reg("dm_aggregate", h, w, k, 2 * fine, [=] {
      const Tensor s = scores_cuda(h, w, k);
      return [=] { dm_aggregate(s, 1); };
    });
    reg("dm_aggregate_bwd", h, w, k, 2 * fine, [=] {
      const Tensor g = randn_cuda({1, h, w, k, k});
      return [=] { dm_aggregate_backward(g, 1); };
    });
    reg("dm_power", h, w, k, 2 * fine, [=] {
      const Tensor a = scores_cuda(h, w, k), nu = full({}, 1.4).to(kCUDA);
      return [=] { dm_power(a, nu); };
    });
    // dm_power's backward (no graph built of it: the one-pass kernel and a sum of its partial
    // sums), through the engine on a retained graph, as a training step runs it.
    reg("dm_power_bwd", h, w, k, 3 * fine, [=] {
      const GradModeGuard record(true);
      Tensor a = scores_cuda(h, w, k), nu = full({}, 1.4).to(kCUDA);
      a.set_requires_grad(true);
      nu.set_requires_grad(true);
      const Tensor y = dm_power(a, nu), g = randn_cuda({1, h, w, k, k});
      return [=] { grad({y}, {a, nu}, {g}, {.retain_graph = true}); };
    });
    reg("dm_disaggregate", h, w, k, 2.25 * fine, [=] {
      const Tensor q = scores_cuda(h, w, k);
      return [=] { dm_disaggregate(q, 1); };
    });
    reg("dm_disaggregate_bwd", h, w, k, 2.25 * fine, [=] {
      const Tensor q = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
      const Tensor sw = dm_disaggregate(q, 1).switches;
      return [=] { dm_disaggregate_backward(g, sw, 1); };
    });
    reg("dm_unpool", h, w, k, 1.25 * coarse + 2 * fine, [=] {
      const Tensor s = scores_cuda(h, w, k);
      const DmPooled p = dm_max_pool(s);
      return [=] { dm_unpool(p.values, p.switches, s); };
    });
    reg("dm_unpool_bwd", h, w, k, 3.25 * coarse, [=] {
      const Tensor s = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
      const DmPooled p = dm_max_pool(s);
      return [=] { dm_unpool_backward(g, p.values, p.switches, k); };
    });
    // The skip path's gradient (dm_unpool's d s): grad and Q_l read, d s written.
    reg("dm_unpool_skip_bwd", h, w, k, 3 * fine, [=] {
      const Tensor s = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
      const DmPooled p = dm_max_pool(s);
      const Tensor q = dm_unpool(p.values, p.switches, s);
      return [=] { dm_unpool_skip_backward(g, q); };
    });
    reg("dm_unpool_skip_bwd_unfused", h, w, k, 3 * fine, [=] {
      const Tensor s = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
      const DmPooled p = dm_max_pool(s);
      const Tensor q = dm_unpool(p.values, p.switches, s);
      const Tensor ninf = full({}, -std::numeric_limits<double>::infinity()).to(kCUDA);
      const Tensor zero = zeros({}).to(kCUDA);
      return [=] { where(gt(q, ninf), g, zero); };
    });
    // dm_unpool's whole backward: d q_half and d s in one pass (dm_unpool_grads), or the two
    // ops (_unfused, counted with the same bytes).
    for (const bool fused : {true, false}) {
      reg(fused ? "dm_unpool_grads" : "dm_unpool_grads_unfused", h, w, k, 3 * fine + 2.25 * coarse,
          [=] {
            const Tensor s = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
            const DmPooled p = dm_max_pool(s);
            const Tensor q = dm_unpool(p.values, p.switches, s);
            return [=]() -> void {
              if (fused) {
                dm_unpool_grads(g, p.values, p.switches, q);
              } else {
                dm_unpool_backward(g, p.values, p.switches, k);
                dm_unpool_skip_backward(g, q);
              }
            };
          });
    }
    if (k == 161) {
      // The aggregation family under versions 2 (runs of kDmAggRun along j, the default), 3
      // (spans of k: each point decoded once per kDmSpan outputs) and 4 (runs of kDmAggShortRun:
      // fewer registers per thread).
      for (const int v : {2, 3, 4}) {
        const std::string suffix = "_v" + std::to_string(v);
        reg("dm_aggregate" + suffix, h, w, k, 2 * fine, [=] {
          const Tensor s = scores_cuda(h, w, k);
          return [=] {
            const DmLayerVersionGuard version(v);
            dm_aggregate(s, 1);
          };
        });
        reg("dm_aggregate_bwd" + suffix, h, w, k, 2 * fine, [=] {
          const Tensor g = randn_cuda({1, h, w, k, k});
          return [=] {
            const DmLayerVersionGuard version(v);
            dm_aggregate_backward(g, 1);
          };
        });
        reg("dm_disaggregate" + suffix, h, w, k, 2.25 * fine, [=] {
          const Tensor q = scores_cuda(h, w, k);
          return [=] {
            const DmLayerVersionGuard version(v);
            dm_disaggregate(q, 1);
          };
        });
        reg("dm_disaggregate_bwd" + suffix, h, w, k, 2.25 * fine, [=] {
          const Tensor q = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
          const Tensor sw = dm_disaggregate(q, 1).switches;
          return [=] {
            const DmLayerVersionGuard version(v);
            dm_disaggregate_backward(g, sw, 1);
          };
        });
      }
      reg("dm_max_pool_v2", h, w, k, fine + 1.25 * coarse, [=] {
        const Tensor s = scores_cuda(h, w, k);
        return [=] {
          const DmLayerVersionGuard pairs(2);
          dm_max_pool(s);
        };
      });
      reg("dm_max_pool_bwd_v2", h, w, k, 1.25 * coarse + fine, [=] {
        const Tensor s = scores_cuda(h, w, k);
        const Tensor sw = dm_max_pool(s).switches, g = randn_cuda({1, h, w, kc, kc});
        return [=] {
          const DmLayerVersionGuard cells(2);
          dm_max_pool_backward(g, sw, k);
        };
      });
      reg("dm_unpool_v2", h, w, k, 1.25 * coarse + 2 * fine, [=] {
        const Tensor s = scores_cuda(h, w, k);
        const DmPooled p = dm_max_pool(s);
        return [=] {
          const DmLayerVersionGuard cells(2);
          dm_unpool(p.values, p.switches, s);
        };
      });
      reg("dm_unpool_bwd_v2", h, w, k, 3.25 * coarse, [=] {
        const Tensor s = scores_cuda(h, w, k), g = randn_cuda({1, h, w, k, k});
        const DmPooled p = dm_max_pool(s);
        return [=] {
          const DmLayerVersionGuard cells(2);
          dm_unpool_backward(g, p.values, p.switches, k);
        };
      });
      // The same layers on the 64-bit index path (DmIndexWidthGuard(64)): what 32-bit indexing gains.
      reg("dm_max_pool_bwd_index64", h, w, k, 1.25 * coarse + fine, [=] {
        const Tensor s = scores_cuda(h, w, k);
        const Tensor sw = dm_max_pool(s).switches, g = randn_cuda({1, h, w, kc, kc});
        return [=] {
          const DmIndexWidthGuard wide(64);
          dm_max_pool_backward(g, sw, k);
        };
      });
      reg("dm_aggregate_bwd_index64", h, w, k, 2 * fine, [=] {
        const Tensor g = randn_cuda({1, h, w, k, k});
        return [=] {
          const DmIndexWidthGuard wide(64);
          dm_aggregate_backward(g, 1);
        };
      });
      reg("dm_unpool_index64", h, w, k, 1.25 * coarse + 2 * fine, [=] {
        const Tensor s = scores_cuda(h, w, k);
        const DmPooled p = dm_max_pool(s);
        return [=] {
          const DmIndexWidthGuard wide(64);
          dm_unpool(p.values, p.switches, s);
        };
      });
    }
    reg("dm_hinge_loss", h, w, k, fine, [=] {
      const Tensor q = scores_cuda(h, w, k);
      const Tensor gt = randint(0, k, {1, h, w, 2}, TensorOptions{}.with_dtype(DType::int32))
                            .to(kCUDA);
      return [=] { dm_hinge_loss(q, gt, 2.0); };
    });
    // The loss's backward alone (the gradient of every score), on a retained graph.
    reg("dm_hinge_loss_bwd", h, w, k, 2 * fine, [=] {
      const GradModeGuard record(true);
      Tensor q = scores_cuda(h, w, k);
      q.set_requires_grad(true);
      const Tensor gt = randint(0, k, {1, h, w, 2}, TensorOptions{}.with_dtype(DType::int32))
                            .to(kCUDA);
      const Tensor loss = dm_hinge_loss(q, gt, 2.0);
      return [=] { grad({loss}, {q}, {}, {.retain_graph = true}); };
    });
  }
  // The whole network for a 256 x 256 pair: S_0 -> Q_0 -> loss, then the gradient in S_0 and
  // the six exponents. min_bytes 0: many kernels, timed for the per-pair figure only.
  cvg::bench::reg_gpu("cuda/deep_matching_fwd_bwd/256x256", [](benchmark::State& st) {
    manual_seed(6);
    Tensor s0 = scores_cuda(32, 32, 161);
    s0.set_requires_grad(true);
    TensorList nus;
    for (int l = 0; l < 6; ++l) {
      Tensor nu = full({}, 1.4).to(kCUDA);
      nu.set_requires_grad(true);
      nus.push_back(nu);
    }
    const Tensor gt = full({1, 32, 32, 2}, 80, TensorOptions{}.with_dtype(DType::int32)).to(kCUDA);
    TensorList inputs = nus;
    inputs.push_back(s0);
    cvg::bench::time_gpu(st, [&] { grad({dm_hinge_loss(deep_matching(s0, nus), gt, 2.0)}, inputs); },
                         0.0, 0.0);
  });
  for (const cvg::bench::DmMatchCase c : {cvg::bench::DmMatchCase{370, 250, 48, 3},
                                          cvg::bench::DmMatchCase{1024, 436, 80, 6}}) {
    cvg::bench::reg_gpu(cvg::bench::dm_match_name("cuda", c), [c](benchmark::State& st) {
      const cvg::bench::DmMatchSetup m = cvg::bench::dm_match_setup(c, kCUDA);
      cvg::bench::time_gpu(st, [&] {
        deepmatch::match_pair(*m.net, m.img0, m.img1, cvg::bench::kDmMatchMaxBytes);
      }, 0.0, 0.0);
    });
  }
  return true;
}();

}  // namespace
