// CPU benchmarks of the Deep Matching layers (kernels/deepmatch.h), float32, at the CPU
// substitute's scale of the notes (a 128 x 96 frame at alpha_0 = 8: P = 16 x 12 reference points,
// R_0 = 16, K_0 = 33). Names "cpu/dm_<layer>[_bwd]/<P>x<K>": each layer's public op (forward, or
// its backward op alone: dm_power_bwd and dm_hinge_loss_bwd through the engine; dm_correlation_v1:
// the per-score forward the tiled one replaced; dm_(dis)aggregate(_bwd)_v1 and _v2,
// dm_max_pool_bwd_v2, dm_max_pool_v1, dm_unpool_v1, _v2 and dm_unpool_bwd_v1, _v2: versions 1
// and 2 of those kernels, beside the default (for the aggregation family version 3, for
// dm_max_pool(_bwd) and dm_unpool the CPU's whole-plane loops): kernels/deepmatch.h; dm_unpool_skip_bwd_unfused: the compare and select the
// fused skip gradient replaced; dm_unpool_grads: both of dm_unpool's gradients, by default
// the two ops, _v2 in one pass by cells), and "cpu/deep_matching_fwd_bwd" for the U-network with
// L = 3 through the structured loss and back to S_0 and the exponents (and again on the 32-bit
// index path, the GPU's: "..._index32"); "cpu/deep_matching_match/..." times the app's whole
// `match` of a pair (bench/deepmatch_match.h).
#include <benchmark/benchmark.h>

#include <limits>
#include <optional>
#include <string>

#include "bench/deepmatch_match.h"
#include "core/autograd.h"
#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/deepmatch.h"
#include "kernels/unary.h"

namespace {

using namespace cvg;

constexpr int64_t kH = 16, kW = 12, kK = 33, kKc = 17, kD = 32;

Tensor scores(int64_t k) { return abs(randn({1, kH, kW, k, k})); }

void bm_correlation(benchmark::State& st) {
  manual_seed(0);
  const Tensor ref = randn({1, kD, kH, kW}), tgt = randn({1, kD, 96, 128});
  for (auto _ : st) benchmark::DoNotOptimize(dm_correlation(ref, tgt, 16, 8, 4).raw_data());
}
void bm_correlation_v1(benchmark::State& st) {
  manual_seed(0);
  const Tensor ref = randn({1, kD, kH, kW}), tgt = randn({1, kD, 96, 128});
  const DmCorrVersionGuard v1(1);
  for (auto _ : st) benchmark::DoNotOptimize(dm_correlation(ref, tgt, 16, 8, 4).raw_data());
}
void bm_correlation_bwd(benchmark::State& st) {
  manual_seed(0);
  const Tensor ref = randn({1, kD, kH, kW}), tgt = randn({1, kD, 96, 128});
  const Tensor g = randn({1, kH, kW, kK, kK});
  for (auto _ : st) {
    benchmark::DoNotOptimize(dm_correlation_grad_ref(g, tgt, 8, 4).raw_data());
    benchmark::DoNotOptimize(dm_correlation_grad_target(g, ref, {96, 128}, 8, 4).raw_data());
  }
}
void bm_max_pool(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor s = scores(kK);
  for (auto _ : st) benchmark::DoNotOptimize(dm_max_pool(s).values.raw_data());
}
void bm_max_pool_bwd(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor sw = dm_max_pool(scores(kK)).switches, g = randn({1, kH, kW, kKc, kKc});
  for (auto _ : st) benchmark::DoNotOptimize(dm_max_pool_backward(g, sw, kK).raw_data());
}
void bm_aggregate(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor s = scores(kK);
  for (auto _ : st) benchmark::DoNotOptimize(dm_aggregate(s, 1).raw_data());
}
void bm_aggregate_bwd(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor g = randn({1, kH, kW, kK, kK});
  for (auto _ : st) benchmark::DoNotOptimize(dm_aggregate_backward(g, 1).raw_data());
}
void bm_power(benchmark::State& st) {
  manual_seed(0);
  const Tensor a = scores(kK), nu = full({}, 1.4);
  for (auto _ : st) benchmark::DoNotOptimize(dm_power(a, nu).raw_data());
}
void bm_disaggregate(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor q = scores(kK);
  for (auto _ : st) benchmark::DoNotOptimize(dm_disaggregate(q, 1).values.raw_data());
}
void bm_disaggregate_bwd(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor sw = dm_disaggregate(scores(kK), 1).switches, g = randn({1, kH, kW, kK, kK});
  for (auto _ : st) benchmark::DoNotOptimize(dm_disaggregate_backward(g, sw, 1).raw_data());
}
void bm_unpool(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor s = scores(kK);
  const DmPooled p = dm_max_pool(s);
  for (auto _ : st) benchmark::DoNotOptimize(dm_unpool(p.values, p.switches, s).raw_data());
}
void bm_unpool_bwd(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const DmPooled p = dm_max_pool(scores(kK));
  const Tensor g = randn({1, kH, kW, kK, kK});
  for (auto _ : st)
    benchmark::DoNotOptimize(dm_unpool_backward(g, p.values, p.switches, kK).raw_data());
}
// dm_unpool's gradient in S_l: the fused op, or (unfused) the compare and select it replaced.
void bm_unpool_skip_bwd(benchmark::State& st, bool fused) {
  manual_seed(0);
  const Tensor s = scores(kK);
  const DmPooled p = dm_max_pool(s);
  const Tensor q = dm_unpool(p.values, p.switches, s), g = randn({1, kH, kW, kK, kK});
  const Tensor ninf = full({}, -std::numeric_limits<double>::infinity()), zero = zeros({});
  for (auto _ : st) {
    const Tensor r = fused ? dm_unpool_skip_backward(g, q) : where(gt(q, ninf), g, zero);
    benchmark::DoNotOptimize(r.raw_data());
  }
}
// dm_unpool's whole backward (d q_half and d s, dm_unpool_grads: the engine's path without
// create_graph): the CPU's default (the two ops by planes) or version 2 (one pass by cells).
void bm_unpool_grads(benchmark::State& st, int version) {
  manual_seed(0);
  std::optional<DmLayerVersionGuard> guard;
  if (version != 0) guard.emplace(version);
  const Tensor s = scores(kK);
  const DmPooled p = dm_max_pool(s);
  const Tensor q = dm_unpool(p.values, p.switches, s), g = randn({1, kH, kW, kK, kK});
  for (auto _ : st) {
    const DmUnpoolGrads d = dm_unpool_grads(g, p.values, p.switches, q);
    benchmark::DoNotOptimize(d.s.raw_data());
  }
}
void bm_hinge_loss(benchmark::State& st) {
  manual_seed(0);
  const Tensor q = scores(kK);
  const Tensor gt = randint(0, kK, {1, kH, kW, 2}, TensorOptions{}.with_dtype(DType::int32));
  for (auto _ : st) benchmark::DoNotOptimize(dm_hinge_loss(q, gt, 2.0).raw_data());
}
// dm_power's and the loss's backward alone, through the engine on a retained graph.
void bm_power_bwd(benchmark::State& st) {
  manual_seed(0);
  Tensor a = scores(kK), nu = full({}, 1.4);
  a.set_requires_grad(true);
  nu.set_requires_grad(true);
  const Tensor y = dm_power(a, nu), g = randn({1, kH, kW, kK, kK});
  for (auto _ : st) {
    const TensorList d = grad({y}, {a, nu}, {g}, {.retain_graph = true});
    benchmark::DoNotOptimize(d[0].raw_data());
  }
}
void bm_hinge_loss_bwd(benchmark::State& st) {
  manual_seed(0);
  Tensor q = scores(kK);
  q.set_requires_grad(true);
  const Tensor gt = randint(0, kK, {1, kH, kW, 2}, TensorOptions{}.with_dtype(DType::int32));
  const Tensor loss = dm_hinge_loss(q, gt, 2.0);
  for (auto _ : st) {
    const TensorList d = grad({loss}, {q}, {}, {.retain_graph = true});
    benchmark::DoNotOptimize(d[0].raw_data());
  }
}
// bits: the index width (kernels/deepmatch.h; the CPU's default is 64), to compare.
void bm_network(benchmark::State& st, int bits) {
  manual_seed(0);
  const DmIndexWidthGuard width(bits);
  Tensor s0 = scores(kK);
  s0.set_requires_grad(true);
  TensorList nus;
  for (int l = 0; l < 3; ++l) {
    Tensor nu = full({}, 1.4);
    nu.set_requires_grad(true);
    nus.push_back(nu);
  }
  const Tensor gt = full({1, kH, kW, 2}, 16, TensorOptions{}.with_dtype(DType::int32));
  TensorList inputs = nus;
  inputs.push_back(s0);
  for (auto _ : st) {
    const TensorList g = grad({dm_hinge_loss(deep_matching(s0, nus), gt, 2.0)}, inputs);
    benchmark::DoNotOptimize(g[0].raw_data());
  }
}

// "cpu/<op>/<P>x<K>", built by appending (GCC 12 warns falsely on literal + string).
std::string name(const char* op) {
  std::string s = "cpu/";
  s += op;
  s += '/';
  s += std::to_string(kH * kW);
  s += 'x';
  s += std::to_string(kK);
  return s;
}

const bool registered = [] {
  benchmark::RegisterBenchmark(name("dm_correlation").c_str(), bm_correlation);
  benchmark::RegisterBenchmark(name("dm_correlation_v1").c_str(), bm_correlation_v1);
  benchmark::RegisterBenchmark(name("dm_correlation_bwd").c_str(), bm_correlation_bwd);
  benchmark::RegisterBenchmark(name("dm_max_pool").c_str(), bm_max_pool, 0);
  benchmark::RegisterBenchmark(name("dm_max_pool_v1").c_str(), bm_max_pool, 1);
  benchmark::RegisterBenchmark(name("dm_max_pool_bwd").c_str(), bm_max_pool_bwd, 0);
  benchmark::RegisterBenchmark(name("dm_max_pool_bwd_v2").c_str(), bm_max_pool_bwd, 2);
  benchmark::RegisterBenchmark(name("dm_aggregate").c_str(), bm_aggregate, 0);
  benchmark::RegisterBenchmark(name("dm_aggregate_v1").c_str(), bm_aggregate, 1);
  benchmark::RegisterBenchmark(name("dm_aggregate_v2").c_str(), bm_aggregate, 2);
  benchmark::RegisterBenchmark(name("dm_aggregate_bwd").c_str(), bm_aggregate_bwd, 0);
  benchmark::RegisterBenchmark(name("dm_aggregate_bwd_v1").c_str(), bm_aggregate_bwd, 1);
  benchmark::RegisterBenchmark(name("dm_aggregate_bwd_v2").c_str(), bm_aggregate_bwd, 2);
  benchmark::RegisterBenchmark(name("dm_power").c_str(), bm_power);
  benchmark::RegisterBenchmark(name("dm_power_bwd").c_str(), bm_power_bwd);
  benchmark::RegisterBenchmark(name("dm_disaggregate").c_str(), bm_disaggregate, 0);
  benchmark::RegisterBenchmark(name("dm_disaggregate_v1").c_str(), bm_disaggregate, 1);
  benchmark::RegisterBenchmark(name("dm_disaggregate_v2").c_str(), bm_disaggregate, 2);
  benchmark::RegisterBenchmark(name("dm_disaggregate_bwd").c_str(), bm_disaggregate_bwd, 0);
  benchmark::RegisterBenchmark(name("dm_disaggregate_bwd_v1").c_str(), bm_disaggregate_bwd, 1);
  benchmark::RegisterBenchmark(name("dm_disaggregate_bwd_v2").c_str(), bm_disaggregate_bwd, 2);
  benchmark::RegisterBenchmark(name("dm_unpool").c_str(), bm_unpool, 0);
  benchmark::RegisterBenchmark(name("dm_unpool_v1").c_str(), bm_unpool, 1);
  benchmark::RegisterBenchmark(name("dm_unpool_v2").c_str(), bm_unpool, 2);
  benchmark::RegisterBenchmark(name("dm_unpool_bwd").c_str(), bm_unpool_bwd, 0);
  benchmark::RegisterBenchmark(name("dm_unpool_bwd_v1").c_str(), bm_unpool_bwd, 1);
  benchmark::RegisterBenchmark(name("dm_unpool_bwd_v2").c_str(), bm_unpool_bwd, 2);
  benchmark::RegisterBenchmark(name("dm_unpool_skip_bwd").c_str(), bm_unpool_skip_bwd, true);
  benchmark::RegisterBenchmark(name("dm_unpool_skip_bwd_unfused").c_str(), bm_unpool_skip_bwd, false);
  benchmark::RegisterBenchmark(name("dm_unpool_grads").c_str(), bm_unpool_grads, 0);
  benchmark::RegisterBenchmark(name("dm_unpool_grads_v2").c_str(), bm_unpool_grads, 2);
  benchmark::RegisterBenchmark(name("dm_hinge_loss").c_str(), bm_hinge_loss);
  benchmark::RegisterBenchmark(name("dm_hinge_loss_bwd").c_str(), bm_hinge_loss_bwd);
  benchmark::RegisterBenchmark(name("deep_matching_fwd_bwd").c_str(), bm_network, 64);
  benchmark::RegisterBenchmark(name("deep_matching_fwd_bwd_index32").c_str(), bm_network, 32);
  // The app's whole `match` per pair: the substitute's frames and the motorcycle pair at 1/2
  // (the README's match command).
  for (const cvg::bench::DmMatchCase c : {cvg::bench::DmMatchCase{128, 96, 16, 3},
                                          cvg::bench::DmMatchCase{370, 250, 48, 3}}) {
    benchmark::RegisterBenchmark(cvg::bench::dm_match_name("cpu", c).c_str(), [c](benchmark::State& st) {
      const cvg::bench::DmMatchSetup m = cvg::bench::dm_match_setup(c, kCPU);
      for (auto _ : st) {
        const deepmatch::MatchResult r =
            deepmatch::match_pair(*m.net, m.img0, m.img1, cvg::bench::kDmMatchMaxBytes);
        benchmark::DoNotOptimize(r.verified.data());
      }
    })->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
