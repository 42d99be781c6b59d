// CPU benchmarks of host memory (core/storage.cpp), wall-clock timed. "cpu/full_fresh/<n>": a
// float32 tensor of n elements allocated and filled once per iteration, the previous one freed,
// which is what every op's output costs. At 4 Mi elements (16 MiB) the heap hands the same
// memory back each time (a training loop's steady state); at 64 Mi (256 MiB) the block is mapped
// afresh every time and its first touch faults (2 MiB huge pages: 128 faults, where 4 KiB pages
// took 65,536), as every block of a fresh process does. PyTorch side: torch.full
// (bench/torch_ops/memory.py).
#include <benchmark/benchmark.h>

#include <string>

#include "core/tensor.h"

namespace {

using namespace cvg;

void bm_full_fresh(benchmark::State& st, int64_t n) {
  for (auto _ : st) {
    const Tensor t = full({n}, 1.0);
    benchmark::DoNotOptimize(t.raw_data());
  }
  st.SetBytesProcessed(st.iterations() * n * 4);
}

const bool registered = [] {
  for (const int64_t n : {int64_t{4} << 20, int64_t{64} << 20}) {
    const std::string name = "cpu/full_fresh/" + std::to_string(n);
    benchmark::RegisterBenchmark(name.c_str(), [n](benchmark::State& st) { bm_full_fresh(st, n); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
