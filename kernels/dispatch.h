#pragma once
// on_device(op, device, cpu, cuda): the one place an op chooses its kernel by the device its
// inputs live on. A CUDA tensor in a build without CUDA fails loudly, naming the op; there is no
// silent fallback to the CPU.
#include "core/error.h"
#include "core/device.h"

namespace cvg {

template <typename Cpu, typename Cuda>
void on_device(const char* op, Device dev, Cpu&& cpu, Cuda&& cuda) {
  if (dev.is_cpu()) return cpu();
#ifdef CVG_WITH_CUDA
  (void)op;
  return cuda();
#else
  (void)cuda;
  fail(op, ": no kernel for device ", dev.str());
#endif
}

}  // namespace cvg
