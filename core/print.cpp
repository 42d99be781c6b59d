// PyTorch-like printing:
//   tensor([[ 1.0000, -2.5000],
//           [ 3.0000,  4.0000]], grad_fn=<mul>)
//   tensor([ True, False])
// Tensors with more than kSummarizeAbove elements show the first and last kEdge entries of each
// dimension with "..." between them. Floats use fixed notation with 4 decimals unless the
// magnitudes call for scientific notation; integers print as integers.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/autograd.h"
#include "core/tensor.h"

namespace cvg {

namespace {

constexpr int64_t kSummarizeAbove = 1000;
constexpr int64_t kEdge = 3;

struct Printer {
  const std::vector<double>& values;
  const Shape& shape;
  bool floating;
  bool scientific;
  bool summarize;
  int width;
  bool boolean = false;  // prints True / False

  std::string format(double v) const {
    std::ostringstream os;
    if (boolean) {
      os << (v != 0 ? "True" : "False");
    } else if (!floating) {
      os << static_cast<int64_t>(v);
    } else if (std::isnan(v)) {
      os << "nan";
    } else if (std::isinf(v)) {
      os << (v > 0 ? "inf" : "-inf");
    } else if (scientific) {
      os << std::scientific << std::setprecision(4) << v;
    } else {
      os << std::fixed << std::setprecision(4) << v;
    }
    return os.str();
  }

  void print(std::ostream& os, size_t d, int64_t base, int indent) const {
    if (shape.empty()) {
      os << format(values[0]);
      return;
    }
    const int64_t n = shape[d];
    const int64_t inner = numel_of(Shape(shape.begin() + d + 1, shape.end()));
    os << '[';
    for (int64_t i = 0; i < n; ++i) {
      if (summarize && n > 2 * kEdge && i == kEdge) {
        os << "...";
        i = n - kEdge - 1;
        os << (d + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
        continue;
      }
      if (d + 1 == shape.size()) {
        std::string s = format(values[base + i]);
        os << std::string(std::max<int>(0, width - static_cast<int>(s.size())), ' ') << s;
      } else {
        print(os, d + 1, base + i * inner, indent + 1);
      }
      if (i + 1 < n) {
        if (d + 1 == shape.size()) os << ", ";
        else os << ',' << std::string(shape.size() - d - 1, '\n') << std::string(indent + 1, ' ');
      }
    }
    os << ']';
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<double> v = to_vector<double>();
  const bool floating = is_floating(dtype());
  double maxabs = 0, minabs = INFINITY;
  for (double x : v)
    if (std::isfinite(x)) {
      maxabs = std::max(maxabs, std::fabs(x));
      if (x != 0) minabs = std::min(minabs, std::fabs(x));
    }
  Printer p{v, shape(), floating, floating && (maxabs >= 1e8 || (minabs < 1e-4 && minabs > 0)),
            numel() > kSummarizeAbove, 0};
  p.boolean = dtype() == DType::bool_;
  for (double x : v) p.width = std::max<int>(p.width, static_cast<int>(p.format(x).size()));
  std::ostringstream os;
  os << "tensor(";
  p.print(os, 0, 0, 7);
  // Like PyTorch, the default float and integer dtypes and bool (visible from the values) are
  // not spelled out.
  if (dtype() != DType::float32 && dtype() != DType::int64 && dtype() != DType::bool_)
    os << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device='" << device().str() << "'";
  if (grad_fn()) os << ", grad_fn=<" << grad_fn()->name << ">";
  else if (requires_grad()) os << ", requires_grad=True";
  if (numel() > kSummarizeAbove) os << ", shape=" << shape();
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace cvg
