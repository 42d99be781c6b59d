#include "core/cuda_device.h"

#include <cuda_runtime.h>

#include <sstream>

#include "core/cuda_allocator.h"
#include "core/cuda_check.h"
#include "core/cuda_runtime.h"

namespace cvg {

int CudaDeviceInfo::fp32_lanes_per_sm() const {
  if (cc_major < 7) return 64;                    // Pascal GP100-class; not a target
  if (cc_major == 7) return 64;                   // Volta, Turing
  if (cc_major == 8 && cc_minor == 0) return 64;  // A100
  return 128;                                     // GA10x, Ada, Hopper, Blackwell
}

double CudaDeviceInfo::peak_fp32_gflops() const {
  return static_cast<double>(sm_count) * fp32_lanes_per_sm() * 2.0 * clock_khz * 1e-6;
}

double CudaDeviceInfo::peak_memory_gbps() const {
  return 2.0 * memory_clock_khz * 1e3 * (memory_bus_width_bits / 8.0) * 1e-9;
}

std::string CudaDeviceInfo::compute_capability() const {
  return str_cat(cc_major, ".", cc_minor);
}

CudaDeviceInfo cuda_device_info(int device) {
  const char* op = "cuda_device_info";
  const int n = cuda_device_count();
  CVG_CHECK(device >= 0 && device < n, op, ": device cuda:", device, " does not exist (", n,
            " visible)");
  cudaDeviceProp p{};
  CVG_CUDA_CHECK(cudaGetDeviceProperties(&p, device), op);
  CudaDeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.max_threads_per_block = p.maxThreadsPerBlock;
  d.warp_size = p.warpSize;
  d.total_memory = p.totalGlobalMem;
  d.l2_cache_bytes = static_cast<size_t>(p.l2CacheSize);
  d.shared_memory_per_block = p.sharedMemPerBlock;
  d.shared_memory_per_block_optin = p.sharedMemPerBlockOptin;
  d.shared_memory_per_sm = p.sharedMemPerMultiprocessor;
  d.registers_per_sm = p.regsPerMultiprocessor;
  d.memory_bus_width_bits = p.memoryBusWidth;
  // CUDA 13 dropped the clock fields from cudaDeviceProp; they remain device attributes.
  CVG_CUDA_CHECK(cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, device), op);
  CVG_CUDA_CHECK(cudaDeviceGetAttribute(&d.memory_clock_khz, cudaDevAttrMemoryClockRate, device),
                 op);
  CVG_CUDA_CHECK(cudaDriverGetVersion(&d.driver_version), op);
  CVG_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version), op);
  int prev = 0;
  CVG_CUDA_CHECK(cudaGetDevice(&prev), op);
  CVG_CUDA_CHECK(cudaSetDevice(device), op);
  size_t total = 0;
  const cudaError_t e = cudaMemGetInfo(&d.free_memory, &total);
  CVG_CUDA_CHECK(cudaSetDevice(prev), op);
  CVG_CUDA_CHECK(e, op);
  return d;
}

std::string describe(const CudaDeviceInfo& d) {
  auto version = [](int v) { return str_cat(v / 1000, ".", (v % 1000) / 10); };
  std::ostringstream os;
  os << "cuda:" << d.index << "  " << d.name << "\n"
     << "  compute capability  " << d.compute_capability() << " (sm_" << d.cc_major
     << d.cc_minor << ")\n"
     << "  SMs                 " << d.sm_count << " x " << d.fp32_lanes_per_sm()
     << " FP32 lanes @ " << d.clock_khz / 1000 << " MHz -> peak FP32 "
     << static_cast<long>(d.peak_fp32_gflops()) << " GFLOP/s\n"
     << "  memory              " << format_bytes(d.total_memory) << " ("
     << format_bytes(d.free_memory) << " free), " << d.memory_bus_width_bits << "-bit @ "
     << d.memory_clock_khz / 1000 << " MHz -> theoretical "
     << static_cast<long>(d.peak_memory_gbps()) << " GB/s\n"
     << "  L2 cache            " << format_bytes(d.l2_cache_bytes) << "\n"
     << "  shared memory       " << format_bytes(d.shared_memory_per_block) << " per block ("
     << format_bytes(d.shared_memory_per_block_optin) << " opt-in), "
     << format_bytes(d.shared_memory_per_sm) << " per SM\n"
     << "  registers per SM    " << d.registers_per_sm << "\n"
     << "  driver / runtime    " << version(d.driver_version) << " / "
     << version(d.runtime_version) << "\n";
  return os.str();
}

void print_cuda_devices(std::ostream& os) {
  const int n = cuda_device_count();
  if (n == 0) {
    os << "no CUDA device visible\n";
    return;
  }
  for (int i = 0; i < n; ++i) os << describe(cuda_device_info(i));
}

}  // namespace cvg
