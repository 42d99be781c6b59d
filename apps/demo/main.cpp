// cvg-demo: a tiny MLP learns to tell three interleaved spirals apart, on the CPU, in seconds.
// It is the smallest complete use of the library: tensors, a Module, cross_entropy, backward()
// and an optimizer step. The loss printed every few steps falls from ~1.1 (chance for three
// classes) towards 0 as the network carves the plane into spiral arms.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/rng.h"
#include "kernels/loss.h"
#include "kernels/reduce.h"
#include "kernels/binary.h"
#include "nn/layers.h"
#include "nn/optim.h"

using namespace cvg;

namespace {

struct Flags {
  int steps = 400;
  int points = 150;  // per class
  int hidden = 64;
  double lr = 0.01;
  uint64_t seed = 1;
};

void usage() {
  std::printf(
      "usage: cvg-demo [--steps N] [--points N] [--hidden N] [--lr X] [--seed N]\n"
      "Trains a 2-hidden-layer MLP on three spirals with Adam and prints the loss.\n"
      "  --steps N    optimizer steps (default 400)\n"
      "  --points N   points per spiral (default 150)\n"
      "  --hidden N   hidden units per layer (default 64)\n"
      "  --lr X       Adam learning rate (default 0.01)\n"
      "  --seed N     seed of data and initial weights (default 1)\n");
}

bool parse(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "cvg-demo: %s needs a value (see --help)\n", a.c_str());
      return false;
    }
    const char* v = argv[++i];
    char* end = nullptr;
    if (a == "--steps") f.steps = static_cast<int>(std::strtol(v, &end, 10));
    else if (a == "--points") f.points = static_cast<int>(std::strtol(v, &end, 10));
    else if (a == "--hidden") f.hidden = static_cast<int>(std::strtol(v, &end, 10));
    else if (a == "--lr") f.lr = std::strtod(v, &end);
    else if (a == "--seed") f.seed = std::strtoull(v, &end, 10);
    else {
      std::fprintf(stderr, "cvg-demo: unknown flag %s (see --help)\n", a.c_str());
      return false;
    }
    if (!end || *end != '\0') {
      std::fprintf(stderr, "cvg-demo: bad value '%s' for %s\n", v, a.c_str());
      return false;
    }
  }
  if (f.steps < 1 || f.points < 1 || f.hidden < 1 || !(f.lr > 0)) {
    std::fprintf(stderr, "cvg-demo: --steps, --points, --hidden and --lr must be positive\n");
    return false;
  }
  return true;
}

// Three spirals: class c's k-th point at radius r = k/n, angle 4r + 2 pi c / 3, plus noise.
void spirals(int n, Tensor& x, Tensor& y) {
  std::vector<double> xs, noise = randn({3 * n * 2}, TensorOptions{}.with_dtype(DType::float64))
                                      .to_vector<double>();
  std::vector<int64_t> ys;
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < n; ++k) {
      const double r = static_cast<double>(k) / n;
      const double t = 4.0 * r + 2.0 * M_PI * c / 3.0;
      const size_t i = static_cast<size_t>(c * n + k);
      xs.push_back(r * std::sin(t) + 0.03 * noise[2 * i]);
      xs.push_back(r * std::cos(t) + 0.03 * noise[2 * i + 1]);
      ys.push_back(c);
    }
  x = from_vector(xs, {3 * n, 2});
  y = from_vector(ys, {3 * n}, TensorOptions{}.with_dtype(DType::int64));
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!parse(argc, argv, f)) return 2;
  try {
    manual_seed(f.seed);
    Tensor x, y;
    spirals(f.points, x, y);
    auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(2, f.hidden), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(f.hidden, f.hidden), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(f.hidden, 3)});
    std::printf("cvg-demo: %d points in 3 spirals, model:\n%s", 3 * f.points, model->summary().c_str());
    nn::Adam opt(model->parameters(), nn::AdamOptions{.lr = f.lr});
    double first = 0, last = 0;
    for (int step = 1; step <= f.steps; ++step) {
      opt.zero_grad();
      const Tensor loss = cross_entropy(model->forward(x), y);
      loss.backward();
      opt.step();
      last = loss.item();
      if (step == 1) first = last;
      if (step == 1 || step % std::max(1, f.steps / 10) == 0 || step == f.steps)
        std::printf("step %4d  loss %.4f\n", step, last);
    }
    const Tensor pred = argmax(model->forward(x), 1);
    const double acc = mean(eq(pred, y).to(DType::float32)).item();
    std::printf("loss %.4f -> %.4f, training accuracy %.1f%%\n", first, last, 100 * acc);
    return last < first ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "cvg-demo: %s\n", e.what());
    return 1;
  }
}
