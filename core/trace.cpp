#include "core/trace.h"

#include <cstdlib>
#include <iostream>
#include <sstream>

#ifdef CVG_WITH_CUDA
#include "core/cuda_runtime.h"
#endif

namespace cvg {

namespace {
int g_trace = -1;  // -1: read CVG_TRACE on first use; 0 off, 1 on, 2 on with GPU syncs
std::ostream* g_sink = nullptr;
thread_local TraceSpan* t_open = nullptr;  // innermost open span of this thread

int trace_mode() {
  if (g_trace < 0) {
    const char* v = std::getenv("CVG_TRACE");
    const std::string s = v ? v : "";
    g_trace = s.empty() || s == "0" ? 0 : s == "sync" ? 2 : 1;
  }
  return g_trace;
}

void sync_device(bool cuda) {
#ifdef CVG_WITH_CUDA
  if (cuda && g_trace == 2) cuda_synchronize();
#else
  (void)cuda;
#endif
}

bool any_cuda(const TensorList& ts) {
  for (const Tensor& t : ts)
    if (t.defined() && t.device().is_cuda()) return true;
  return false;
}
}  // namespace

bool trace_enabled() { return trace_mode() != 0; }
bool trace_sync() { return trace_mode() == 2; }

void set_trace_enabled(bool on, bool sync) { g_trace = on ? (sync ? 2 : 1) : 0; }

TraceSpan::~TraceSpan() {
  if (open_) t_open = parent_;
}

void TraceSpan::start(bool cuda) {
  sync_device(cuda);  // work queued before this region is not its time
  parent_ = t_open;
  t_open = this;
  open_ = true;
  children_ms_ = 0;
  start_ = std::chrono::steady_clock::now();
}

void TraceSpan::stop(bool cuda, double* total_ms, double* self_ms) {
  sync_device(cuda);
  *total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  *self_ms = *total_ms - children_ms_;
  t_open = parent_;
  open_ = false;
  if (parent_) parent_->children_ms_ += *total_ms;
}

void set_trace_sink(std::ostream* os) { g_sink = os; }
void trace_line(const std::string& line) { (g_sink ? *g_sink : std::cerr) << line << '\n'; }

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << '(';
  for (int64_t i = 0; i < t.dim(); ++i) os << (i ? ", " : "") << t.shape()[i];
  os << ") " << dtype_name(t.dtype()) << ' ' << t.device().str();
  return os.str();
}

TraceOp::TraceOp(const char* op, const TensorList& inputs) : op_(op), on_(trace_enabled()) {
  if (!on_) return;
  for (size_t i = 0; i < inputs.size(); ++i) inputs_ += (i ? ", " : "") + describe(inputs[i]);
  cuda_ = any_cuda(inputs);
  span_.start(cuda_);
}

Tensor TraceOp::result(Tensor out) {
  if (on_) {
    output_ = describe(out);
    cuda_ = cuda_ || any_cuda({out});
  }
  return out;
}

TraceOp::~TraceOp() {
  if (!on_) return;
  double ms = 0, self = 0;
  span_.stop(cuda_, &ms, &self);
  trace_line(str_cat("[cvg fwd] ", op_, "  ", inputs_, " -> ", output_, "  ", ms, " ms (self ", self,
                     " ms)"));
}

}  // namespace cvg
