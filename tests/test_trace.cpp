// CVG_TRACE (core/trace.h): with tracing on, every forward op logs its inputs and output and
// every backward node logs the gradient it received; with it off, nothing is written.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"

using namespace cvg;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// Turns tracing on into a string for one scope, and restores the previous state.
struct CaptureTrace {
  std::ostringstream os;
  bool prev = trace_enabled();
  explicit CaptureTrace(bool on = true) {
    set_trace_sink(&os);
    set_trace_enabled(on);
  }
  ~CaptureTrace() {
    set_trace_enabled(prev);
    set_trace_sink(nullptr);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream is(os.str());
    for (std::string l; std::getline(is, l);) out.push_back(l);
    return out;
  }
};

// Index of the first line at or after `from` that starts with `prefix`, or -1.
int find_line(const std::vector<std::string>& lines, const std::string& prefix, int from = 0) {
  for (int i = from; i < static_cast<int>(lines.size()); ++i)
    if (lines[i].rfind(prefix, 0) == 0) return i;
  return -1;
}

// The two times at the end of a line: "... 0.012 ms (self 0.004 ms)".
struct Times {
  double total = -1, self = -1;
};
Times times_of(const std::string& line) {
  const size_t open = line.rfind(" ms (self ");
  REQUIRE(open != std::string::npos);
  REQUIRE(line.size() > 4);
  REQUIRE(line.substr(line.size() - 4) == " ms)");
  const size_t start = line.rfind(' ', open - 1) + 1;
  Times t;
  t.total = std::stod(line.substr(start, open - start));
  t.self = std::stod(line.substr(open + 10, line.size() - 4 - (open + 10)));
  return t;
}

}  // namespace

TEST_CASE("trace: forward and backward lines name ops and shapes", "[trace]") {
  Tensor x = ones({2, 3}).set_requires_grad(true);
  Tensor w = ones({3});
  std::vector<std::string> lines;
  {
    CaptureTrace cap;
    Tensor y = sum(exp(x) * w);
    y.backward();
    lines = cap.lines();
  }
  INFO([&] { std::string s; for (auto& l : lines) s += l + "\n"; return s; }());
  const int f_exp = find_line(lines, "[cvg fwd] exp  (2, 3) float32 cpu -> (2, 3) float32 cpu  ");
  const int f_mul = find_line(lines, "[cvg fwd] mul  (2, 3) float32 cpu, (3) float32 cpu -> (2, 3) float32 cpu  ");
  const int f_sum = find_line(lines, "[cvg fwd] sum  (2, 3) float32 cpu -> () float32 cpu  ");
  REQUIRE(f_exp >= 0);
  REQUIRE(f_mul > f_exp);
  REQUIRE(f_sum > f_mul);
  // The engine runs nodes from the output back: sum, then mul, then exp.
  const int b_sum = find_line(lines, "[cvg bwd] sum  grad () float32 cpu -> 1 inputs  ", f_sum);
  REQUIRE(b_sum > f_sum);
  const int b_mul = find_line(lines, "[cvg bwd] mul  grad (2, 3) float32 cpu -> 2 inputs  ", b_sum);
  REQUIRE(b_mul > b_sum);
  const int b_exp = find_line(lines, "[cvg bwd] exp  grad (2, 3) float32 cpu -> 1 inputs  ", b_mul);
  REQUIRE(b_exp > b_mul);
  // Every line ends with the elapsed time and the self time, which is never more.
  for (const std::string& l : lines) {
    CHECK_THAT(l, StartsWith("[cvg "));
    const Times t = times_of(l);
    CHECK(t.self <= t.total);
  }
}

TEST_CASE("trace: an op's self time leaves out the traced ops it ran", "[trace]") {
  std::vector<std::string> lines;
  {
    CaptureTrace cap;
    {
      TraceOp outer("outer", {});
      {
        TraceOp inner("inner", {});
        (void)sum(exp(ones({64, 64})));  // traced too: children of inner
      }
      (void)exp(ones({8}));  // a child of outer
    }
    lines = cap.lines();
  }
  INFO([&] { std::string s; for (auto& l : lines) s += l + "\n"; return s; }());
  const int f_inner = find_line(lines, "[cvg fwd] inner");
  const int f_outer = find_line(lines, "[cvg fwd] outer");
  REQUIRE(f_inner >= 0);
  REQUIRE(f_outer > f_inner);  // a line is written when its op ends
  const Times inner = times_of(lines[f_inner]), outer = times_of(lines[f_outer]);
  // inner's children: the exp and the sum (sum's own parts are sum's children, not inner's);
  // outer's: inner and the last exp.
  const int f_exp = find_line(lines, "[cvg fwd] exp  (64, 64)"), f_sum = find_line(lines, "[cvg fwd] sum");
  REQUIRE(f_exp >= 0);
  REQUIRE(f_sum > f_exp);
  REQUIRE(f_inner > f_sum);
  const double inner_children = times_of(lines[f_exp]).total + times_of(lines[f_sum]).total;
  const double outer_children = inner.total + times_of(lines[f_outer - 1]).total;
  CHECK(inner.self == Approx(inner.total - inner_children).margin(1e-4));
  CHECK(outer.self == Approx(outer.total - outer_children).margin(1e-4));
  // The self times of all lines add up to the outermost total.
  double all_self = 0;
  for (const std::string& l : lines) all_self += times_of(l).self;
  CHECK(all_self == Approx(outer.total).margin(1e-3));
}

TEST_CASE("trace: CVG_TRACE=sync mode on CPU tensors traces as usual", "[trace]") {
  const bool prev = trace_enabled();
  std::ostringstream os;
  set_trace_sink(&os);
  set_trace_enabled(true, /*sync=*/true);
  CHECK(trace_sync());
  (void)exp(ones({3}));
  set_trace_enabled(true);
  CHECK_FALSE(trace_sync());
  set_trace_enabled(prev);
  set_trace_sink(nullptr);
  CHECK_THAT(os.str(), StartsWith("[cvg fwd] exp  (3) float32 cpu -> (3) float32 cpu  "));
  CHECK_THAT(os.str(), Contains(" ms (self "));
}

TEST_CASE("trace: nothing is written when tracing is off", "[trace]") {
  CaptureTrace cap(/*on=*/false);
  CHECK_FALSE(trace_enabled());
  Tensor x = ones({2}).set_requires_grad(true);
  sum(x * x).backward();
  CHECK(cap.os.str().empty());
  CHECK(describe(zeros({4, 1}, TensorOptions{}.with_dtype(DType::int32))) == "(4, 1) int32 cpu");
  CHECK(describe(Tensor()) == "undefined");
}
