// GPU benchmarks of the foundation ops: every SGEMM version next to cuBLAS, elementwise ops,
// reductions and softmax, and cudaMemcpy device-to-device as the bandwidth baseline. Timing and
// counters: bench/gpu_timer.h. The vision ops register their own benchmarks from
// bench/cuda_<family>.cpp files, linked into the same executable.
#include <benchmark/benchmark.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>

// core/rng.h first: its inline math calls unqualified sqrt/log/cos, which cvg::log(Tensor)
// and friends from kernels/unary.h (included by bench_common.h) would otherwise hide.
#include "core/rng.h"
#include "bench/bench_common.h"
#include "core/cuda_check.h"
#include "core/cuda_device.h"
#include "core/cuda_runtime.h"
#include "bench/gpu_timer.h"
#include "kernels/sgemm_cuda.h"

using namespace cvg;
using namespace cvg::bench;

namespace {

// ---- benchmarks ---------------------------------------------------------------------------

// impl: 1 .. kSgemmVersions, 0 = cuBLAS, -1 = the public matmul op (default float32 path).
void bm_gemm(benchmark::State& state, int impl, int64_t n) {
  manual_seed(3);
  const Tensor a = randn_cuda({1, n, n}), b = randn_cuda({1, n, n});
  const Tensor out = Tensor::empty({1, n, n}, TensorOptions{}.with_device(kCUDA));
  const Tensor a2 = make_view(a, {n, n}, {n, 1}, 0), b2 = make_view(b, {n, n}, {n, 1}, 0);
  std::function<void()> fn;
  if (impl > 0)
    fn = [&] { sgemm_cuda(impl, a, b, out); };
  else if (impl == 0)
    fn = [&] { sgemm_cublas(a, b, out); };
  else
    fn = [&] { benchmark::DoNotOptimize(matmul(a2, b2)); };
  const double nn = static_cast<double>(n);
  time_gpu(state, fn, 12.0 * nn * nn, 2.0 * nn * nn * nn);
}

void bm_workload(benchmark::State& state, Workload w) {
  manual_seed(4);
  const Prepared p = prepare(w, kCUDA);
  time_gpu(state, [&] { benchmark::DoNotOptimize(run(w, p)); }, min_bytes(w), 0);
}

void bm_memcpy(benchmark::State& state, int64_t n) {
  const Tensor a = zeros({n}, TensorOptions{}.with_device(kCUDA));
  const Tensor b = Tensor::empty({n}, TensorOptions{}.with_device(kCUDA));
  const size_t bytes = static_cast<size_t>(n) * 4;
  time_gpu(
      state,
      [&] {
        CVG_CUDA_CHECK(
            cudaMemcpyAsync(b.raw_data(), a.raw_data(), bytes, cudaMemcpyDeviceToDevice, 0),
            "bench: memcpy");
      },
      2.0 * bytes, 0);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (!init_gpu()) return 1;
  benchmark::AddCustomContext("sgemm_default_version", std::to_string(kSgemmDefaultVersion));

  for (int64_t n : {1024, 2048, 4096}) {
    const std::string sz = "/" + std::to_string(n);
    reg_gpu("cuda/cublas" + sz, [n](benchmark::State& s) { bm_gemm(s, 0, n); });
    for (int v = 1; v <= kSgemmVersions; ++v)
      reg_gpu("cuda/sgemm_v" + std::to_string(v) + sz, [v, n](benchmark::State& s) { bm_gemm(s, v, n); });
    reg_gpu("cuda/matmul" + sz, [n](benchmark::State& s) { bm_gemm(s, -1, n); });
  }
  for (int64_t n : {int64_t(1) << 20, int64_t(1) << 24, int64_t(1) << 26})
    reg_gpu("cuda/memcpy_d2d/" + std::to_string(n), [n](benchmark::State& s) { bm_memcpy(s, n); });
  for (const Workload& w : workloads(/*gpu=*/true))
    reg_gpu("cuda/" + w.op + "/" + shape_label(w), [w](benchmark::State& s) { bm_workload(s, w); });

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
