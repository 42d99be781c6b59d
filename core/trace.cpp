#include "core/trace.h"

#include <cstdlib>
#include <iostream>
#include <sstream>

namespace cvg {

namespace {
int g_trace = -1;  // -1: read CVG_TRACE on first use
std::ostream* g_sink = nullptr;
}  // namespace

bool trace_enabled() {
  if (g_trace < 0) {
    const char* v = std::getenv("CVG_TRACE");
    g_trace = (v && *v && std::string(v) != "0") ? 1 : 0;
  }
  return g_trace == 1;
}

void set_trace_enabled(bool on) { g_trace = on ? 1 : 0; }
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
  start_ = std::chrono::steady_clock::now();
}

Tensor TraceOp::result(Tensor out) {
  if (on_) output_ = describe(out);
  return out;
}

TraceOp::~TraceOp() {
  if (!on_) return;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  trace_line(str_cat("[cvg fwd] ", op_, "  ", inputs_, " -> ", output_, "  ", ms, " ms"));
}

}  // namespace cvg
