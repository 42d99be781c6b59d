// Graph inspection (core/graph_export.h) on a small MLP-like expression
//     y = sum(tanh(x * w + b)),  x: [2, 3] data, w and b: [3] parameters,
// checking node ops, shapes, edges and release state in the JSON and the DOT outputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>

#include "core/autograd.h"
#include "core/graph_export.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"

#ifdef CVG_HAVE_NLOHMANN_JSON
#include <nlohmann/json.hpp>
#endif

using namespace cvg;
using Catch::Matchers::Contains;

namespace {

struct Mlp {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = tensor({0.1, -0.2, 0.3}, {3}, TensorOptions{}.with_requires_grad(true));
  Tensor b = tensor({0.0, 0.5, -0.5}, {3}, TensorOptions{}.with_requires_grad(true));
  Tensor y;
  Mlp() {
    w.set_name("w");
    b.set_name("b");
    y = sum(tanh(x * w + b));
  }
};

}  // namespace

#ifdef CVG_HAVE_NLOHMANN_JSON
TEST_CASE("graph export: JSON describes nodes, shapes and edges", "[graph]") {
  Mlp m;
  const nlohmann::json j = nlohmann::json::parse(graph_to_json({m.y}));
  REQUIRE(j["nodes"].size() == 6);  // sum, tanh, add, mul, AccumulateGrad w and b
  std::map<std::string, nlohmann::json> by_op;
  for (const auto& n : j["nodes"]) {
    by_op[n["op"].get<std::string>()] = n;
    CHECK(n["dtype"] == "float32");
    CHECK(n["device"] == "cpu");
    CHECK(n["released"] == false);
  }
  REQUIRE(by_op.count("mul"));
  REQUIRE(by_op.count("add"));
  REQUIRE(by_op.count("tanh"));
  REQUIRE(by_op.count("sum"));
  REQUIRE(by_op.count("AccumulateGrad w"));
  REQUIRE(by_op.count("AccumulateGrad b"));
  auto id = [&](const std::string& op) { return by_op[op]["id"]; };
  CHECK(j["outputs"] == nlohmann::json::array({id("sum")}));
  CHECK(by_op["sum"]["shape"] == nlohmann::json::array());
  CHECK(by_op["sum"]["inputs"] == nlohmann::json::array({id("tanh")}));
  CHECK(by_op["tanh"]["shape"] == nlohmann::json::array({2, 3}));
  CHECK(by_op["tanh"]["inputs"] == nlohmann::json::array({id("add")}));
  CHECK(by_op["add"]["inputs"] == nlohmann::json::array({id("mul"), id("AccumulateGrad b")}));
  // x needs no gradient: its edge is null.
  CHECK(by_op["mul"]["inputs"] == nlohmann::json::array({nullptr, id("AccumulateGrad w")}));
  CHECK(by_op["AccumulateGrad w"]["shape"] == nlohmann::json::array({3}));
  CHECK(by_op["AccumulateGrad w"]["inputs"] == nlohmann::json::array());
  // Nodes are listed in creation order.
  int64_t prev = -1;
  for (const auto& n : j["nodes"]) {
    CHECK(n["id"].get<int64_t>() > prev);
    prev = n["id"].get<int64_t>();
  }

  m.y.backward();
  const nlohmann::json after = nlohmann::json::parse(graph_to_json({m.y}));
  for (const auto& n : after["nodes"]) {
    const bool acc = n["op"].get<std::string>().rfind("AccumulateGrad", 0) == 0;
    CHECK(n["released"] == !acc);
  }
}

TEST_CASE("graph export: names with quotes and control characters stay valid JSON", "[graph]") {
  Tensor p = ones({2}).set_requires_grad(true);
  p.set_name("layer \"1\"\n\tweight\\");
  Tensor y = sum(p * p);
  const nlohmann::json j = nlohmann::json::parse(graph_to_json({y}));
  bool found = false;
  for (const auto& n : j["nodes"])
    if (n["op"] == "AccumulateGrad layer \"1\"\n\tweight\\") found = true;
  CHECK(found);
  CHECK_THAT(graph_to_dot({y}), Contains("AccumulateGrad layer \\\"1\\\"\\n\\tweight\\\\"));
}
#endif

TEST_CASE("graph export: JSON text", "[graph]") {
  Mlp m;
  const std::string js = graph_to_json({m.y});
  CHECK_THAT(js, Contains("\"op\":\"tanh\",\"shape\":[2,3],\"dtype\":\"float32\",\"device\":\"cpu\""));
  CHECK_THAT(js, Contains("\"op\":\"sum\",\"shape\":[]"));
  CHECK_THAT(js, Contains("\"op\":\"AccumulateGrad w\",\"shape\":[3]"));
  CHECK_THAT(js, Contains("\"inputs\":[null,"));
  // A tensor outside any graph exports as an empty graph with a null output.
  CHECK(graph_to_json({zeros({2})}) == "{\"nodes\":[],\"outputs\":[null]}");
}

namespace {
// A DOT node id. Built by appending: GCC 12 warns falsely (-Wrestrict) on "literal" + string.
std::string nid(int64_t seq) {
  std::string s = "n";
  s += std::to_string(seq);
  return s;
}
}  // namespace

TEST_CASE("graph export: DOT", "[graph]") {
  Mlp m;
  const std::string dot = graph_to_dot({m.y});
  CHECK_THAT(dot, Contains("digraph cvgrad {"));
  const int64_t s = m.y.grad_fn()->seq;
  const int64_t t = m.y.grad_fn()->next[0]->seq;  // tanh
  CHECK_THAT(dot, Contains(nid(s) + " [label=\"sum\\n() float32 cpu\"];"));
  CHECK_THAT(dot, Contains(nid(t) + " [label=\"tanh\\n(2, 3) float32 cpu\"];"));
  CHECK_THAT(dot, Contains(nid(s) + " -> " + nid(t) + ";"));
  const Node* add = m.y.grad_fn()->next[0]->next[0].get();
  const Node* accb = add->next[1].get();
  CHECK_THAT(dot, Contains(nid(accb->seq) +
                               " [label=\"AccumulateGrad b\\n(3) float32 cpu\", style=filled, "
                               "fillcolor=lightblue];"));
  CHECK_THAT(dot, Contains(nid(add->seq) + " -> " + nid(accb->seq) + ";"));
  // 6 nodes, 5 edges (x contributes none).
  CHECK(std::count(dot.begin(), dot.end(), '\n') == 3 + 6 + 5 + 1);
}
