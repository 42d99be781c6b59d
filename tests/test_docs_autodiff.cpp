// Keeps docs/autodiff.md honest: recomputes its worked example with the library, formats every
// number the way the document prints it (4 decimals), and checks that the document contains
// exactly those lines. Changing the engine, an op, or the document without the other fails here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/graph_export.h"
#include "core/trace.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"

using namespace cvg;

namespace {

std::string read_doc() {
  // tests/test_docs_autodiff.cpp -> docs/autodiff.md
  std::string path = __FILE__;
  path = path.substr(0, path.rfind('/'));
  path = path.substr(0, path.rfind('/')) + "/docs/autodiff.md";
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// "name = [a, b, c]" for a 1-D tensor, "name = a" for a scalar, 4 decimals.
std::string line(const std::string& name, const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  std::string s = name + " = ";
  if (t.dim() == 0) return s + fmt(v[0]);
  s += "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt(v[i]);
  return s + "]";
}

}  // namespace

TEST_CASE("docs/autodiff.md: the worked example's numbers", "[docs][autograd]") {
  const std::string doc = read_doc();
  auto check_line = [&](const std::string& l) {
    INFO("docs/autodiff.md should contain the line:\n  " << l);
    CHECK(doc.find(l) != std::string::npos);
  };

  // The example, exactly as the document writes it.
  Tensor x = tensor({1.0, -2.0, 0.5}, {3});
  Tensor w = tensor({0.5, 0.25, -1.0}, {3}, TensorOptions{}.with_requires_grad(true));
  Tensor b = tensor({0.1, 0.2, 0.3}, {3}, TensorOptions{}.with_requires_grad(true));
  Tensor u = w * x;        // mul
  Tensor z = u + b;        // add
  Tensor h = tanh(z);      // tanh
  Tensor s1 = sum(h);      // sum
  Tensor ww = w * w;       // mul (w on both edges)
  Tensor s2 = sum(ww);     // sum
  Tensor r = 0.5 * s2;     // mul_scalar
  Tensor L = s1 + r;       // add

  // Forward values.
  check_line(line("u", u));
  check_line(line("z", z));
  check_line(line("h", h));
  check_line(line("s1", s1));
  check_line(line("ww", ww));
  check_line(line("s2", s2));
  check_line(line("r", r));
  check_line(line("L", L));

  // Independent check of the forward values in double precision.
  const double xs[] = {1.0, -2.0, 0.5}, ws[] = {0.5, 0.25, -1.0}, bs[] = {0.1, 0.2, 0.3};
  double ref_L = 0;
  for (int i = 0; i < 3; ++i) ref_L += std::tanh(ws[i] * xs[i] + bs[i]) + 0.5 * ws[i] * ws[i];
  CHECK(L.item() == Approx(ref_L).epsilon(1e-6));

  // The gradient reaching each intermediate (grad() keeps .grad untouched).
  const TensorList g = grad({L}, {s1, r, s2, h, ww, z, u}, {}, {.retain_graph = true});
  check_line(line("dL/ds1", g[0]));
  check_line(line("dL/dr", g[1]));
  check_line(line("dL/ds2", g[2]));
  check_line(line("dL/dh", g[3]));
  check_line(line("dL/dww", g[4]));
  check_line(line("dL/dz", g[5]));
  check_line(line("dL/du", g[6]));
  // The two contributions that meet in w's AccumulateGrad node.
  check_line(line("via u = w*x   ", g[6] * x));
  check_line(line("via ww = w*w  ", g[4] * w.detach() * 2.0));

  // The order the document lists for the backward pass, as CVG_TRACE reports it.
  std::ostringstream trace;
  const bool was_tracing = trace_enabled();
  set_trace_sink(&trace);
  set_trace_enabled(true);
  L.backward();
  set_trace_enabled(was_tracing);
  set_trace_sink(nullptr);
  std::vector<std::string> order;
  std::istringstream ts(trace.str());
  for (std::string l; std::getline(ts, l);)
    if (l.rfind("[cvg bwd] ", 0) == 0) order.push_back(l.substr(10, l.find(' ', 10) - 10));
  CHECK(order == std::vector<std::string>{"add", "mul_scalar", "sum", "mul", "sum", "tanh",
                                          "add", "mul"});
  check_line("    n10 add, n9 mul_scalar, n8 sum, n7 mul, n6 sum, n5 tanh, n3 add, n4 AccumulateGrad b,");
  check_line("    n1 mul, n2 AccumulateGrad w");
  check_line(line("w.grad", w.grad()));
  check_line(line("b.grad", b.grad()));
  // Independent check: dL/dw = (1 - tanh^2) x + w, dL/db = 1 - tanh^2.
  const std::vector<double> gw = w.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    const double t = std::tanh(ws[i] * xs[i] + bs[i]);
    CHECK(gw[i] == Approx((1 - t * t) * xs[i] + ws[i]).epsilon(1e-6));
    CHECK(gb[i] == Approx(1 - t * t).epsilon(1e-6));
  }
  CHECK(L.grad_fn()->released());
}

TEST_CASE("docs/autodiff.md: the graph it draws", "[docs][autograd]") {
  const std::string doc = read_doc();
  Tensor x = tensor({1.0, -2.0, 0.5}, {3});
  Tensor w = tensor({0.5, 0.25, -1.0}, {3}, TensorOptions{}.with_requires_grad(true));
  Tensor b = tensor({0.1, 0.2, 0.3}, {3}, TensorOptions{}.with_requires_grad(true));
  w.set_name("w");
  b.set_name("b");
  // One statement per op: the creation order (and so the node ids) must not depend on the
  // order in which the compiler evaluates the operands of one expression.
  Tensor u = w * x;
  Tensor z = u + b;
  Tensor h = tanh(z);
  Tensor s1 = sum(h);
  Tensor ww = w * w;
  Tensor s2 = sum(ww);
  Tensor r = 0.5 * s2;
  Tensor L = s1 + r;
  // The document shows graph_to_dot's output with the node ids renumbered from 1 in creation
  // order; do the same here and compare line by line.
  std::string dot = graph_to_dot({L});
  std::vector<std::string> ids;
  for (size_t p = dot.find(" n"); p != std::string::npos; p = dot.find(" n", p + 1)) {
    size_t e = p + 2;
    while (e < dot.size() && std::isdigit(static_cast<unsigned char>(dot[e]))) ++e;
    if (e == p + 2) continue;
    const std::string id = dot.substr(p + 2, e - p - 2);
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& c) {
    return std::stoll(a) < std::stoll(c);
  });
  std::string renumbered;
  for (size_t i = 0; i < dot.size();) {
    if ((dot[i] == 'n') && i > 0 && (dot[i - 1] == ' ') && i + 1 < dot.size() &&
        std::isdigit(static_cast<unsigned char>(dot[i + 1]))) {
      size_t e = i + 1;
      while (e < dot.size() && std::isdigit(static_cast<unsigned char>(dot[e]))) ++e;
      const std::string id = dot.substr(i + 1, e - i - 1);
      const size_t k = std::find(ids.begin(), ids.end(), id) - ids.begin();
      renumbered += "n" + std::to_string(k + 1);
      i = e;
    } else {
      renumbered += dot[i++];
    }
  }
  INFO("graph_to_dot, renumbered:\n" << renumbered);
  std::istringstream is(renumbered);
  for (std::string l; std::getline(is, l);) {
    INFO("docs/autodiff.md should contain the line:\n" << l);
    CHECK(doc.find(l + "\n") != std::string::npos);
  }
}
