#pragma once
// Shared by the benchmark executables: the op list (names that bench/compare_torch.py parses)
// and helpers for counters.
//
// Benchmark names are "<device>/<op>/<shape>" with shape "4096" (a length, or a cube for
// matmul) or "4096x1024" (rows x columns), e.g. "cuda/sgemm_v5/2048", "cpu/relu/16777216",
// "cuda/sum_rows/4096x4096". compare_torch.py maps each <op> to the same PyTorch call.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/binary.h"
#include "kernels/matmul.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#if __has_include("kernels/softmax.h")
#include "kernels/softmax.h"
#define CVG_BENCH_HAVE_SOFTMAX 1
#endif

namespace cvg::bench {

// Four sizes (N x C x H x W, or N x K x h x w) and their name in a benchmark: "16x3x100x100".
using Dims4 = std::array<int64_t, 4>;
inline std::string dims_label(const Dims4& d) {
  return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" + std::to_string(d[2]) + "x" +
         std::to_string(d[3]);
}

// One elementwise/reduction workload: what it computes and its minimum memory traffic.
struct Workload {
  std::string op;     // relu, exp, add, mul, add_bcast, transpose, sum_rows, softmax
  int64_t rows, cols; // elementwise ops use rows * cols elements (rows = 1)
};

// Bytes an op must move at least (float32): unary reads and writes n, binary reads 2n and
// writes n, add_bcast (rows x cols + a 1 x cols row, a bias add) reads n + cols and writes n,
// transpose (a rows x cols matrix transposed and made contiguous) reads and writes n, sum_rows
// reads n and writes rows, softmax reads and writes n. add_bcast and transpose take the strided
// paths of the elementwise kernels (broadcast and permuted operands).
inline double min_bytes(const Workload& w) {
  const double n = static_cast<double>(w.rows) * w.cols;
  if (w.op == "add" || w.op == "mul") return 12.0 * n;
  if (w.op == "add_bcast") return 8.0 * n + 4.0 * w.cols;
  if (w.op == "sum_rows") return 4.0 * n + 4.0 * w.rows;
  return 8.0 * n;
}

inline std::string shape_label(const Workload& w) {
  return w.rows == 1 ? std::to_string(w.cols)
                     : std::to_string(w.rows) + "x" + std::to_string(w.cols);
}

// Inputs for a workload on `dev`, and the op itself through the public API.
struct Prepared {
  Tensor x, y;
};

inline Prepared prepare(const Workload& w, Device dev) {
  const Shape shape = w.rows == 1 ? Shape{w.cols} : Shape{w.rows, w.cols};
  Prepared p;
  p.x = randn(shape).to(dev);
  if (w.op == "add" || w.op == "mul") p.y = randn(shape).to(dev);
  if (w.op == "add_bcast") p.y = randn({1, w.cols}).to(dev);
  return p;
}

inline Tensor run(const Workload& w, const Prepared& p) {
  if (w.op == "relu") return relu(p.x);
  if (w.op == "exp") return exp(p.x);
  if (w.op == "add") return add(p.x, p.y);
  if (w.op == "mul") return mul(p.x, p.y);
  if (w.op == "add_bcast") return add(p.x, p.y);
  if (w.op == "transpose") return transpose(p.x, 0, 1).contiguous();
  if (w.op == "sum_rows") return sum(p.x, {1});
#ifdef CVG_BENCH_HAVE_SOFTMAX
  if (w.op == "softmax") return softmax(p.x, 1);
#endif
  fail("bench: unknown workload ", w.op);
}

// The workloads of both executables: elementwise from L2-sized to DRAM-bound, reductions and
// softmax at typical activation shapes (rows = batch x positions, columns = features/classes).
inline std::vector<Workload> workloads(bool gpu) {
  std::vector<Workload> ws;
  const std::vector<int64_t> lengths =
      gpu ? std::vector<int64_t>{1 << 20, 1 << 24, 1 << 26} : std::vector<int64_t>{1 << 16, 1 << 20, 1 << 24};
  for (const char* op : {"relu", "exp", "add", "mul"})
    for (int64_t n : lengths) ws.push_back({op, 1, n});
  const std::vector<std::pair<int64_t, int64_t>> mats =
      gpu ? std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {65536, 256}, {256, 65536}}
          : std::vector<std::pair<int64_t, int64_t>>{{256, 1000}, {1024, 1024}, {4096, 4096}};
  for (auto [r, c] : mats) ws.push_back({"sum_rows", r, c});
  for (auto [r, c] : mats) ws.push_back({"add_bcast", r, c});
  for (auto [r, c] : mats) ws.push_back({"transpose", r, c});
#ifdef CVG_BENCH_HAVE_SOFTMAX
  for (auto [r, c] : mats) ws.push_back({"softmax", r, c});
#endif
  return ws;
}

}  // namespace cvg::bench
