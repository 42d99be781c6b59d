// GPU benchmarks. Every iteration first flushes the L2 cache (by writing a buffer twice its
// size), then times the work alone between two CUDA events on the default stream; the event
// time is reported as the iteration time (UseManualTime), so host-side work outside the events
// is not counted but host work between them (an op's launch overhead) is.
//
// Counters (computed from the event times):
//   GB/s        minimum bytes the op must read + write, per second
//   %D2D        GB/s as a percentage of the device-to-device copy bandwidth measured at start
//               (cudaMemcpy D2D, counting read + write bytes): the practical memory roofline
//   GFLOP/s     for GEMMs: 2 M N K per second
//   %FP32peak   GFLOP/s as a percentage of SMs x FP32 lanes x 2 x peak clock
// Baselines in the same run: cuBLAS SGEMM (FP32 math) and cudaMemcpy D2D at several sizes.
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
#include "kernels/sgemm_cuda.h"

using namespace cvg;
using namespace cvg::bench;

namespace {

struct Gpu {
  CudaDeviceInfo info;
  void* flush = nullptr;  // written before every timed iteration to evict L2
  size_t flush_bytes = 0;
  double d2d_gbps = 0;    // measured copy bandwidth, read + write bytes per second
  cudaEvent_t start{}, stop{};
};
Gpu g;

void flush_l2() {
  CVG_CUDA_CHECK(cudaMemsetAsync(g.flush, 0, g.flush_bytes, 0), "bench: L2 flush");
}

// Times fn() per iteration with events; sets the iteration time and the counters.
void time_gpu(benchmark::State& state, const std::function<void()>& fn, double bytes,
              double flops) {
  try {
    fn();  // warm-up: first-touch allocations, cuBLAS handle, module loading
    CVG_CUDA_CHECK(cudaDeviceSynchronize(), "bench: warm-up");
    double total_s = 0;
    for (auto _ : state) {
      flush_l2();
      CVG_CUDA_CHECK(cudaEventRecord(g.start, 0), "bench");
      fn();
      CVG_CUDA_CHECK(cudaEventRecord(g.stop, 0), "bench");
      CVG_CUDA_CHECK(cudaEventSynchronize(g.stop), "bench");
      float ms = 0;
      CVG_CUDA_CHECK(cudaEventElapsedTime(&ms, g.start, g.stop), "bench");
      state.SetIterationTime(ms * 1e-3);
      total_s += ms * 1e-3;
    }
    const double iters = static_cast<double>(state.iterations());
    if (total_s <= 0) return;
    if (bytes > 0) {
      const double gbps = bytes * iters / total_s * 1e-9;
      state.counters["GB/s"] = gbps;
      state.counters["%D2D"] = 100.0 * gbps / g.d2d_gbps;
    }
    if (flops > 0) {
      const double gflops = flops * iters / total_s * 1e-9;
      state.counters["GFLOP/s"] = gflops;
      state.counters["%FP32peak"] = 100.0 * gflops / g.info.peak_fp32_gflops();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Best of several 256 MiB (or smaller, on small GPUs) device-to-device copies.
double measure_d2d_gbps() {
  const size_t n = std::min<size_t>(size_t(256) << 20, g.info.total_memory / 8);
  void *a = nullptr, *b = nullptr;
  CVG_CUDA_CHECK(cudaMalloc(&a, n), "bench: calibrate");
  CVG_CUDA_CHECK(cudaMalloc(&b, n), "bench: calibrate");
  CVG_CUDA_CHECK(cudaMemset(a, 1, n), "bench: calibrate");
  float best_ms = 1e30f;
  for (int i = 0; i < 20; ++i) {
    CVG_CUDA_CHECK(cudaEventRecord(g.start, 0), "bench: calibrate");
    CVG_CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0), "bench: calibrate");
    CVG_CUDA_CHECK(cudaEventRecord(g.stop, 0), "bench: calibrate");
    CVG_CUDA_CHECK(cudaEventSynchronize(g.stop), "bench: calibrate");
    float ms = 0;
    CVG_CUDA_CHECK(cudaEventElapsedTime(&ms, g.start, g.stop), "bench: calibrate");
    if (i > 2) best_ms = std::min(best_ms, ms);  // skip warm-up copies
  }
  CVG_CUDA_CHECK(cudaFree(a), "bench: calibrate");
  CVG_CUDA_CHECK(cudaFree(b), "bench: calibrate");
  return 2.0 * static_cast<double>(n) / (best_ms * 1e-3) * 1e-9;
}

// ---- benchmarks ---------------------------------------------------------------------------

Tensor randn_cuda(const Shape& s) { return randn(s).to(kCUDA); }

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

void reg(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "cvg_bench_cuda: no CUDA device visible\n");
    return 1;
  }
  g.info = cuda_device_info(0);
  std::cerr << describe(g.info);
  CVG_CUDA_CHECK(cudaEventCreate(&g.start), "bench");
  CVG_CUDA_CHECK(cudaEventCreate(&g.stop), "bench");
  g.flush_bytes = std::max<size_t>(2 * g.info.l2_cache_bytes, size_t(64) << 20);
  CVG_CUDA_CHECK(cudaMalloc(&g.flush, g.flush_bytes), "bench: L2 flush buffer");
  g.d2d_gbps = measure_d2d_gbps();
  std::fprintf(stderr, "device-to-device copy: %.0f GB/s (read + write); peak FP32 %.0f GFLOP/s\n",
               g.d2d_gbps, g.info.peak_fp32_gflops());
  benchmark::AddCustomContext("gpu", g.info.name);
  benchmark::AddCustomContext("gpu_sm_count", std::to_string(g.info.sm_count));
  benchmark::AddCustomContext("gpu_peak_fp32_gflops", std::to_string(g.info.peak_fp32_gflops()));
  benchmark::AddCustomContext("gpu_d2d_gbps", std::to_string(g.d2d_gbps));
  benchmark::AddCustomContext("sgemm_default_version", std::to_string(kSgemmDefaultVersion));

  for (int64_t n : {1024, 2048, 4096}) {
    const std::string sz = "/" + std::to_string(n);
    reg("cuda/cublas" + sz, [n](benchmark::State& s) { bm_gemm(s, 0, n); });
    for (int v = 1; v <= kSgemmVersions; ++v)
      reg("cuda/sgemm_v" + std::to_string(v) + sz, [v, n](benchmark::State& s) { bm_gemm(s, v, n); });
    reg("cuda/matmul" + sz, [n](benchmark::State& s) { bm_gemm(s, -1, n); });
  }
  for (int64_t n : {int64_t(1) << 20, int64_t(1) << 24, int64_t(1) << 26})
    reg("cuda/memcpy_d2d/" + std::to_string(n), [n](benchmark::State& s) { bm_memcpy(s, n); });
  for (const Workload& w : workloads(/*gpu=*/true))
    reg("cuda/" + w.op + "/" + shape_label(w), [w](benchmark::State& s) { bm_workload(s, w); });

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
