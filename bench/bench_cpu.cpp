// CPU benchmarks of the public ops (matmul, elementwise, reductions, softmax) at sizes people
// use, wall-clock timed (the ops run on OpenMP threads: set OMP_NUM_THREADS to compare with
// PyTorch at the same thread count). Counters: GFLOP/s (matmul) and GB/s of minimum traffic.
#include <benchmark/benchmark.h>

// core/rng.h first: its inline math calls unqualified sqrt/log/cos, which cvg::log(Tensor)
// and friends from kernels/unary.h (included by bench_common.h) would otherwise hide.
#include "core/rng.h"
#include "bench/bench_common.h"
#include "kernels/blas_core.h"

using namespace cvg;
using namespace cvg::bench;

namespace {

void bm_matmul(benchmark::State& state, int64_t n) {
  manual_seed(1);
  const Tensor a = randn({n, n}), b = randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(matmul(a, b));
  const double flops = 2.0 * n * n * n, bytes = 3.0 * 4.0 * n * n;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_workload(benchmark::State& state, Workload w) {
  manual_seed(2);
  const Prepared p = prepare(w, kCPU);
  for (auto _ : state) benchmark::DoNotOptimize(run(w, p));
  state.counters["GB/s"] =
      benchmark::Counter(min_bytes(w) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("blas_core", cvg::blas_core_name());
  for (int64_t n : {64, 128, 256, 512, 1024})
    benchmark::RegisterBenchmark(("cpu/matmul/" + std::to_string(n)).c_str(), bm_matmul, n)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  for (const Workload& w : workloads(/*gpu=*/false))
    benchmark::RegisterBenchmark(("cpu/" + w.op + "/" + shape_label(w)).c_str(), bm_workload, w)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
