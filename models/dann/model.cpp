#include "models/dann/model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/grad_reverse.h"
#include "kernels/loss.h"
#include "kernels/matmul.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "models/dann/data.h"
#include "nn/conv_layers.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/pool_layers.h"

namespace cvg::dann {

Mode parse_mode(const std::string& s) {
  if (s == "dann") return Mode::dann;
  if (s == "source-only") return Mode::source_only;
  if (s == "target-only") return Mode::target_only;
  fail("dann: unknown mode '", s, "'; expected dann, source-only or target-only");
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::dann: return "dann";
    case Mode::source_only: return "source-only";
    case Mode::target_only: return "target-only";
  }
  return "?";
}

double dann_lambda(double p, double gamma) { return 2.0 / (1.0 + std::exp(-gamma * p)) - 1.0; }

namespace {

// He initialisation (weights N(0, 2 / fan_in), biases 0) for the layers of a ReLU network. The
// thesis does not give its initialisation; PyTorch's default (uniform with std 1 / sqrt(3 fan_in),
// a third of He's variance) shrinks the signal at every one of the five layers, and on MNIST-M'
// the network then sits on the chance-level plateau for hundreds of steps while the lr schedule
// is already decaying (docs/dann.md, "Checks": PyTorch itself shows the same).
template <typename Layer>
std::shared_ptr<Layer> he_init(std::shared_ptr<Layer> layer) {
  NoGradGuard no_grad;
  nn::init::kaiming_normal_(layer->weight);
  nn::init::constant_(layer->bias, 0.0);
  return layer;
}

std::shared_ptr<nn::Conv2d> conv5x5(int64_t in, int64_t out) {
  return he_init(std::make_shared<nn::Conv2d>(in, out, 5));
}

std::shared_ptr<nn::Linear> fc(int64_t in, int64_t out) { return he_init(std::make_shared<nn::Linear>(in, out)); }

}  // namespace

std::vector<int64_t> parse_domain_hidden(const std::string& s) {
  std::vector<int64_t> widths;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t used = 0;
    long long w = 0;
    try {
      w = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    CVG_CHECK(!item.empty() && used == item.size() && w >= 1, "dann: --domain-hidden must be a comma-separated "
              "list of positive widths such as 100 or 1024,1024, got '", s, "'");
    widths.push_back(w);
    if (comma == std::string::npos) return widths;
    start = comma + 1;
  }
}

DannNet::DannNet(std::array<double, 3> mean, const std::vector<int64_t>& domain_hidden) {
  using std::make_shared;
  input_mean = from_vector(std::vector<double>{mean[0], mean[1], mean[2]}, {1, 3, 1, 1});
  register_buffer("input_mean", &input_mean);
  feature_net = register_module(
      "features", make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                      conv5x5(3, 32), make_shared<nn::ReLU>(), make_shared<nn::MaxPool2d>(2),
                      conv5x5(32, 48), make_shared<nn::ReLU>(), make_shared<nn::MaxPool2d>(2),
                      make_shared<nn::Flatten>()}));
  label_net = register_module(
      "label", make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                   fc(768, 100), make_shared<nn::ReLU>(), fc(100, 100), make_shared<nn::ReLU>(), fc(100, 10)}));
  CVG_CHECK(!domain_hidden.empty(), "DannNet: domain_hidden needs at least one width");
  std::vector<std::shared_ptr<nn::Module>> domain;
  int64_t width = 768;
  for (int64_t w : domain_hidden) {
    CVG_CHECK(w >= 1, "DannNet: domain_hidden widths must be positive, got ", w);
    domain.push_back(fc(width, w));
    domain.push_back(make_shared<nn::ReLU>());
    width = w;
  }
  domain.push_back(fc(width, 2));
  domain_net = register_module("domain", make_shared<nn::Sequential>(domain));
}

Tensor DannNet::features(const Tensor& x) {
  CVG_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == kSide && x.size(3) == kSide,
            "DannNet: expected images [N, 3, 28, 28], got ", x.shape());
  return feature_net->forward(x - input_mean);
}

void DannNet::set_input_mean(const std::array<double, 3>& m) {
  NoGradGuard no_grad;
  input_mean.copy_(from_vector(std::vector<double>{m[0], m[1], m[2]}, {1, 3, 1, 1}).to(input_mean.device()));
}

Tensor DannNet::classify(const Tensor& f) { return label_net->forward(f); }

Tensor DannNet::label_hidden(const Tensor& f) {
  const auto& layers = static_cast<const nn::Sequential&>(*label_net);
  Tensor h = f;
  for (size_t i = 0; i + 1 < layers.size(); ++i) h = layers[i]->forward(h);
  return h;
}

Tensor DannNet::discriminate(const Tensor& f, double lambda) {
  return domain_net->forward(grad_reverse(f, lambda));
}

namespace {

// A 0-d float64 tensor on the logits' device (no host copy).
Tensor accuracy_of(const Tensor& logits, const Tensor& y) {
  NoGradGuard no_grad;
  return mean(eq(argmax(logits, 1), y.to(DType::int64)).to(DType::float64));
}

}  // namespace

DomainLoss parse_domain_loss(const std::string& s) {
  if (s == "mean") return DomainLoss::batch_mean;
  if (s == "sum") return DomainLoss::summed_halves;
  fail("dann: unknown domain loss '", s, "' (expected mean or sum)");
}

const char* domain_loss_name(DomainLoss l) { return l == DomainLoss::batch_mean ? "mean" : "sum"; }

StepLoss training_loss(DannNet& net, Mode mode, const Tensor& xs, const Tensor& ys, const Tensor& xt,
                       const Tensor& yt, double lambda, DomainLoss domain_loss) {
  StepLoss out;
  if (mode == Mode::source_only || mode == Mode::target_only) {
    const bool src = mode == Mode::source_only;
    out.total = cross_entropy(net.forward(src ? xs : xt), src ? ys : yt);
    out.label = out.total.detach();
    return out;
  }
  const int64_t ns = xs.size(0), nt = xt.size(0);
  // One pass of G_f over both halves: the features of the source half feed G_y, all of them G_d.
  const Tensor f = net.features(cat({xs, xt}, 0));
  const Tensor label = cross_entropy(net.classify(narrow(f, 0, 0, ns)), ys);
  const Tensor d = net.discriminate(f, lambda);
  const TensorOptions i64 = TensorOptions{}.with_dtype(DType::int64).with_device(xs.device());
  const Tensor domain_labels = cat({zeros({ns}, i64), ones({nt}, i64)}, 0);
  const Tensor domain =
      domain_loss == DomainLoss::batch_mean
          ? cross_entropy(d, domain_labels)
          : cross_entropy(narrow(d, 0, 0, ns), narrow(domain_labels, 0, 0, ns)) +
                cross_entropy(narrow(d, 0, ns, nt), narrow(domain_labels, 0, ns, nt));
  out.total = label + domain;
  out.label = label.detach();
  out.domain = domain.detach();
  out.domain_accuracy = accuracy_of(d, domain_labels);
  return out;
}

namespace {

template <typename Fn>
void in_batches(DannNet& net, const Tensor& x, Device device, int64_t batch, Fn fn) {
  CVG_CHECK(batch >= 1, "dann: batch must be positive");
  NoGradGuard no_grad;
  const bool was_training = net.is_training();
  net.eval();
  for (int64_t b = 0; b < x.size(0); b += batch) {
    const int64_t n = std::min(batch, x.size(0) - b);
    fn(b, n, net.features(narrow(x, 0, b, n).to(device)));
  }
  net.train(was_training);
}

}  // namespace

double accuracy(DannNet& net, const Tensor& x, const Tensor& y, Device device, int64_t batch) {
  CVG_CHECK(x.size(0) == y.size(0) && x.size(0) > 0, "dann accuracy: ", x.size(0), " images and ",
            y.size(0), " labels");
  int64_t correct = 0;
  const Tensor labels = y.to(DType::int64);
  in_batches(net, x, device, batch, [&](int64_t b, int64_t n, const Tensor& f) {
    const Tensor pred = argmax(net.classify(f), 1).to(kCPU);
    correct += std::llround(sum(eq(pred, narrow(labels, 0, b, n)).to(DType::float64)).item());
  });
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

Tensor extract_features(DannNet& net, const Tensor& x, Device device, int64_t batch) {
  TensorList parts;
  in_batches(net, x, device, batch, [&](int64_t, int64_t, const Tensor& f) { parts.push_back(f.to(kCPU)); });
  return cat(parts, 0);
}

Tensor extract_label_hidden(DannNet& net, const Tensor& x, Device device, int64_t batch) {
  TensorList parts;
  in_batches(net, x, device, batch,
             [&](int64_t, int64_t, const Tensor& f) { parts.push_back(net.label_hidden(f).to(kCPU)); });
  return cat(parts, 0);
}

double proxy_a_distance(const Tensor& fs, const Tensor& ft, int64_t steps) {
  CVG_CHECK(fs.dim() == 2 && ft.dim() == 2 && fs.size(1) == ft.size(1) && fs.size(0) >= 2 &&
                ft.size(0) >= 2,
            "proxy_a_distance: expected two [N, D] feature sets with N >= 2, got ", fs.shape(),
            " and ", ft.shape());
  NoGradGuard no_grad;
  const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
  const Tensor a = fs.to(kCPU).to(DType::float64), b = ft.to(kCPU).to(DType::float64);
  const int64_t ha = a.size(0) / 2, hb = b.size(0) / 2;
  const Tensor train = cat({narrow(a, 0, 0, ha), narrow(b, 0, 0, hb)}, 0);
  const Tensor test = cat({narrow(a, 0, ha, a.size(0) - ha), narrow(b, 0, hb, b.size(0) - hb)}, 0);
  auto labels = [&](int64_t na, int64_t nb) { return cat({zeros({na, 1}, f64), ones({nb, 1}, f64)}, 0); };
  const Tensor ytr = labels(ha, hb), yte = labels(a.size(0) - ha, b.size(0) - hb);
  const Tensor mu = mean(train, {0}, true), sd = std_dev(train, {0}, false, true) + 1e-6;
  const Tensor xtr = (train - mu) / sd, xte = (test - mu) / sd;
  // Logistic regression by full-batch gradient descent on the mean log-loss (+ a small ridge
  // term so that separable data does not send the weights to infinity).
  Tensor w = zeros({train.size(1), 1}, f64), c = zeros({1}, f64);
  const double lr = 0.5, ridge = 1e-3;
  const double n = static_cast<double>(train.size(0));
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor r = sigmoid(matmul(xtr, w) + c) - ytr;  // dLoss / dlogit, per row
    w = w - (matmul(transpose(xtr, 0, 1), r) / n + w * ridge) * lr;
    c = c - sum(r, {0}) / n * lr;
  }
  const Tensor pred = gt(matmul(xte, w) + c, zeros({1}, f64)).to(DType::float64);
  const double err = mean(abs(pred - yte)).item();
  return 2.0 * (1.0 - 2.0 * err);
}

Tensor pca_2d(const Tensor& x) {
  CVG_CHECK(x.dim() == 2 && x.size(0) >= 2, "pca_2d: expected [N, D] with N >= 2, got ", x.shape());
  NoGradGuard no_grad;
  const Tensor xc = x.to(kCPU).to(DType::float64) - mean(x.to(kCPU).to(DType::float64), {0}, true);
  const int64_t d = xc.size(1);
  Tensor cov = matmul(transpose(xc, 0, 1), xc) / static_cast<double>(xc.size(0) - 1);
  TensorList axes;
  const TensorOptions f64 = TensorOptions{}.with_dtype(DType::float64);
  for (int k = 0; k < 2; ++k) {
    // Power iteration from a fixed start (not orthogonal to any axis in practice); deflate after.
    std::vector<double> v0(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) v0[static_cast<size_t>(i)] = 1.0 + 0.01 * static_cast<double>(i % 7);
    Tensor v = from_vector(v0, {d, 1}, f64);
    double lambda = 0;
    for (int it = 0; it < 500; ++it) {
      const Tensor u = matmul(cov, v);
      const double nrm = norm(u).item();
      if (nrm == 0) break;
      const Tensor next = u / nrm;
      const double change = max_abs_diff(next, v);
      v = next;
      lambda = nrm;
      if (change < 1e-12) break;
    }
    const std::vector<double> vv = v.to_vector<double>();
    size_t big = 0;
    for (size_t i = 1; i < vv.size(); ++i)
      if (std::fabs(vv[i]) > std::fabs(vv[big])) big = i;
    if (vv[big] < 0) v = -v;
    axes.push_back(v);
    cov = cov - matmul(v, transpose(v, 0, 1)) * lambda;
  }
  return matmul(xc, cat(axes, 1));
}

}  // namespace cvg::dann
