#include "core/graph_export.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <unordered_set>

#include "core/autograd.h"
#include "core/trace.h"

namespace cvg {

namespace {

std::vector<Node*> collect(const TensorList& outputs) {
  std::vector<Node*> nodes, stack;
  std::unordered_set<Node*> seen;
  for (const Tensor& t : outputs) {
    Node* r = gradient_edge(t).get();
    if (r && seen.insert(r).second) stack.push_back(r);
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    nodes.push_back(n);
    for (auto& c : n->next)
      if (c && seen.insert(c.get()).second) stack.push_back(c.get());
  }
  std::sort(nodes.begin(), nodes.end(), [](Node* a, Node* b) { return a->seq < b->seq; });
  return nodes;
}

std::string label(const Node* n) {
  std::string name = n->name;
  if (auto leaf = n->leaf.lock(); leaf && !leaf->name.empty()) name += " " + leaf->name;
  return name;
}

// Escapes a string for a JSON string literal (also valid inside a DOT label): quotes,
// backslashes and control characters, which JSON forbids raw (a tensor name may hold a newline).
std::string escape_json(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

std::string graph_to_dot(const TensorList& outputs) {
  std::ostringstream os;
  os << "digraph cvgrad {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n";
  for (Node* n : collect(outputs)) {
    std::ostringstream shape;
    shape << '(';
    for (size_t i = 0; i < n->shape.size(); ++i) shape << (i ? ", " : "") << n->shape[i];
    shape << ") " << dtype_name(n->dtype) << ' ' << n->device.str();
    os << "  n" << n->seq << " [label=\"" << escape_json(label(n)) << "\\n" << shape.str() << "\""
       << (n->is_accumulator() ? ", style=filled, fillcolor=lightblue" : "") << "];\n";
    for (auto& c : n->next)
      if (c) os << "  n" << n->seq << " -> n" << c->seq << ";\n";
  }
  os << "}\n";
  return os.str();
}

std::string graph_to_json(const TensorList& outputs) {
  std::ostringstream os;
  os << "{\"nodes\":[";
  bool first = true;
  for (Node* n : collect(outputs)) {
    os << (first ? "" : ",") << "{\"id\":" << n->seq << ",\"op\":\"" << escape_json(label(n))
       << "\",\"shape\":[";
    for (size_t i = 0; i < n->shape.size(); ++i) os << (i ? "," : "") << n->shape[i];
    os << "],\"dtype\":\"" << dtype_name(n->dtype) << "\",\"device\":\"" << n->device.str()
       << "\",\"inputs\":[";
    bool f2 = true;
    for (auto& c : n->next) {
      os << (f2 ? "" : ",") << (c ? std::to_string(c->seq) : "null");
      f2 = false;
    }
    os << "],\"released\":" << (n->is_accumulator() || !n->released() ? "false" : "true") << "}";
    first = false;
  }
  os << "],\"outputs\":[";
  for (size_t i = 0; i < outputs.size(); ++i) {
    Node* r = gradient_edge(outputs[i]).get();
    os << (i ? "," : "") << (r ? std::to_string(r->seq) : "null");
  }
  os << "]}";
  return os.str();
}

}  // namespace cvg
