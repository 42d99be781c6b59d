// GPU timing for the benchmarks: see gpu_timer.h.
#include "bench/gpu_timer.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

// core/rng.h before headers that declare cvg::log(Tensor) etc.: its inline math calls
// unqualified sqrt/log/cos.
#include "core/rng.h"
#include "core/cuda_check.h"
#include "core/cuda_runtime.h"

namespace cvg::bench {
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

}  // namespace

bool init_gpu() {
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "cvg_bench_cuda: no CUDA device visible\n");
    return false;
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
  return true;
}

const CudaDeviceInfo& gpu_info() { return g.info; }
double gpu_d2d_gbps() { return g.d2d_gbps; }

void time_gpu(benchmark::State& state, const std::function<void()>& fn, double min_bytes,
              double flops) {
  try {
    fn();  // warm-up: first-touch allocations, library handles, module loading
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
    if (min_bytes > 0) {
      const double gbps = min_bytes * iters / total_s * 1e-9;
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

void reg_gpu(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))
      ->UseManualTime()
      // 0.1 s of GPU time per benchmark: with the L2 flush and a synchronisation around every
      // iteration, a 10 us kernel costs ~5x its own time in wall time, and the suite has to fit
      // one device call next to the PyTorch comparison.
      ->MinTime(0.1)
      ->Unit(benchmark::kMicrosecond);
}

Tensor randn_cuda(const Shape& shape) { return randn(shape).to(kCUDA); }

}  // namespace cvg::bench
