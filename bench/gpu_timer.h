#pragma once
// GPU timing shared by every CUDA benchmark file (bench_cuda.cpp and bench/cuda_<family>.cpp).
//
// time_gpu() flushes the L2 cache before every iteration (by zeroing a buffer twice its size),
// then times fn() alone between two CUDA events on the default stream and reports the event
// time as the iteration time: register the benchmark with UseManualTime() (reg_gpu does). Host
// work outside the events is not counted; host work between them (an op's launch overhead) is.
//
// Counters:
//   GB/s        min_bytes (what the op must read + write at least) per second
//   %D2D        GB/s as a percentage of the device-to-device copy bandwidth measured at start
//               (cudaMemcpy D2D, read + write bytes): the practical memory roofline
//   GFLOP/s     flops per second (pass 0 when not meaningful)
//   %FP32peak   GFLOP/s as a percentage of SMs x FP32 lanes x 2 x peak clock
//
// Benchmarks in other files register statically (BENCHMARK(...)->UseManualTime() or a static
// call to reg_gpu); they run after main() has called init_gpu(), so the device state is ready.
#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "core/cuda_device.h"
#include "core/tensor.h"

namespace cvg::bench {

// Picks device 0, creates the events and the flush buffer, measures the copy bandwidth and
// adds them to the benchmark context. Returns false (after printing why) without a device.
bool init_gpu();
const CudaDeviceInfo& gpu_info();
double gpu_d2d_gbps();

void time_gpu(benchmark::State& state, const std::function<void()>& fn, double min_bytes,
              double flops);

// Registers fn under name with manual (event) time in microseconds.
void reg_gpu(const std::string& name, std::function<void(benchmark::State&)> fn);

// randn on the CPU generator, copied to the GPU (same values as the CPU benchmarks see).
Tensor randn_cuda(const Shape& shape);

}  // namespace cvg::bench
