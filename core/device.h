#pragma once
// Where a tensor lives. An op runs on the device of its inputs; inputs on different devices are
// an error, and an op without a kernel for a device fails with an Error naming both.
#include <cstdint>
#include <ostream>
#include <string>

namespace cvg {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const;
  // Parses "cpu", "cuda", "cuda:1".
  static Device parse(const std::string& s);
};

inline const Device kCPU{DeviceType::cpu, 0};
inline const Device kCUDA{DeviceType::cuda, 0};

std::ostream& operator<<(std::ostream& os, const Device& d);

// True when the library was built with CUDA and a device is present at run time.
bool cuda_available();
// Waits until the work queued on `d` has finished (a no-op for the CPU, whose ops return when
// done). For timing a pipeline stage by stage: GPU kernels return before they run.
void synchronize(Device d);

}  // namespace cvg
