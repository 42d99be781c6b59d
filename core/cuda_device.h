#pragma once
// CUDA device discovery: what the benchmarks and tests need to know about a GPU (name, SM
// count, memory, compute capability, clocks) and the peak numbers derived from it. Plain C++.
#include <cstddef>
#include <ostream>
#include <string>

namespace cvg {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;     // compute capability (9.0 = Hopper)
  int sm_count = 0;
  int max_threads_per_block = 0;
  int warp_size = 0;
  size_t total_memory = 0;             // bytes
  size_t free_memory = 0;              // bytes, when queried
  size_t l2_cache_bytes = 0;
  size_t shared_memory_per_block = 0;  // default limit, bytes
  size_t shared_memory_per_block_optin = 0;  // with cudaFuncAttributeMaxDynamicSharedMemorySize
  size_t shared_memory_per_sm = 0;
  int registers_per_sm = 0;
  int clock_khz = 0;                   // peak SM clock
  int memory_clock_khz = 0;            // peak memory clock
  int memory_bus_width_bits = 0;
  int driver_version = 0, runtime_version = 0;  // 13000 = 13.0

  // FP32 lanes per SM for this architecture (64 on Volta and A100, 128 on other Ampere and
  // later), and from it the peak FP32 rate: SMs x lanes x 2 flops (FMA) x clock.
  int fp32_lanes_per_sm() const;
  double peak_fp32_gflops() const;
  // Theoretical DRAM bandwidth: 2 transfers per clock (DDR) x bus width. An estimate; the
  // benchmarks use the measured device-to-device copy bandwidth as their reference instead.
  double peak_memory_gbps() const;
  std::string compute_capability() const;  // "9.0"
};

CudaDeviceInfo cuda_device_info(int device = 0);
// One line per field, e.g. "cuda:0  NVIDIA H100 80GB HBM3  sm_90  132 SMs  79.2 GiB ...".
std::string describe(const CudaDeviceInfo& info);
// Every visible device (or "no CUDA device").
void print_cuda_devices(std::ostream& os);

}  // namespace cvg
