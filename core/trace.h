#pragma once
// CVG_TRACE=1 logs each op as it runs to stderr: forward ops with input and output shapes, and
// backward nodes as the engine runs them, each with its elapsed wall time. Meant for people
// learning how the engine works and for finding slow ops; costs one branch when off.
//
//   [cvg fwd] mul  (2, 3) float32 cpu, (2, 3) float32 cpu -> (2, 3) float32 cpu  0.004 ms (self 0.004 ms)
//   [cvg bwd] mul  grad (2, 3) float32 cpu -> 2 inputs  0.011 ms (self 0.003 ms)
//
// Ops use it as:  TraceOp trace("mul", {a, b});  ...  return trace.result(out);
//
// Each line ends with the op's self time, "(self 0.004 ms)": its time minus that of the traced ops
// it ran itself (a composite op's parts, the ops a backward node calls), so the self times of a
// run add up to its traced total and scripts/trace-summary can rank ops without double counting.
// CVG_TRACE=sync also waits for the GPU before and after every op or node that touches a CUDA
// tensor: the times are then the kernels' (plus launch overhead), not the time to queue them.
// Without sync, CUDA ops show launch times only.
#include <chrono>
#include <string>

#include "core/tensor.h"

namespace cvg {

bool trace_enabled();
bool trace_sync();                  // CVG_TRACE=sync
void set_trace_enabled(bool on, bool sync = false);   // overrides the environment (tests use it)
// Where trace lines go (stderr by default); tests capture them.
void set_trace_sink(std::ostream* os);
void trace_line(const std::string& line);

// A timed region on this thread's stack of traced regions (an op, a backward node): start()
// and stop() return its total and self milliseconds; regions nest.
class TraceSpan {
 public:
  TraceSpan() = default;
  ~TraceSpan();  // closes a span left open by an exception
  TraceSpan(const TraceSpan&) = delete;
  TraceSpan& operator=(const TraceSpan&) = delete;
  void start(bool cuda);           // cuda: a CUDA tensor is involved (synchronised in sync mode)
  void stop(bool cuda, double* total_ms, double* self_ms);

 private:
  std::chrono::steady_clock::time_point start_;
  double children_ms_ = 0;
  TraceSpan* parent_ = nullptr;
  bool open_ = false;
};

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
  bool cuda_ = false;
  std::string inputs_;
  std::string output_;
  TraceSpan span_;
};

std::string describe(const Tensor& t);  // "(2, 3) float32 cpu"

}  // namespace cvg
