#pragma once
// CVG_TRACE=1 logs each op as it runs to stderr: forward ops with input and output shapes, and
// backward nodes as the engine runs them, each with its elapsed wall time. Meant for people
// learning how the engine works and for finding slow ops; costs one branch when off.
//
//   [cvg fwd] mul      (2, 3) float32 cpu, (2, 3) float32 cpu -> (2, 3)   0.004 ms
//   [cvg bwd] mul      grad (2, 3) -> 2 inputs                             0.011 ms
//
// Ops use it as:  TraceOp trace("mul", {a, b});  ...  return trace.result(out);
#include <chrono>
#include <string>

#include "core/tensor.h"

namespace cvg {

bool trace_enabled();
void set_trace_enabled(bool on);   // overrides the environment (tests use it)
// Where trace lines go (stderr by default); tests capture them.
void set_trace_sink(std::ostream* os);
void trace_line(const std::string& line);

class TraceOp {
 public:
  TraceOp(const char* op, const TensorList& inputs);
  ~TraceOp();
  Tensor result(Tensor out);
  TraceOp(const TraceOp&) = delete;
  TraceOp& operator=(const TraceOp&) = delete;

 private:
  const char* op_;
  bool on_;
  std::string inputs_;
  std::string output_;
  std::chrono::steady_clock::time_point start_;
};

std::string describe(const Tensor& t);  // "(2, 3) float32 cpu"

}  // namespace cvg
