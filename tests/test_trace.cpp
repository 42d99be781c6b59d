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
  // Every line ends with the elapsed time.
  for (const std::string& l : lines) {
    CHECK_THAT(l, StartsWith("[cvg "));
    CHECK(l.size() > 3);
    CHECK(l.substr(l.size() - 3) == " ms");
  }
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
