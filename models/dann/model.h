#pragma once
// The DANN model of Ganin's thesis, chapter 5 (MNIST architecture; project notes section 3.3),
// its training objective, schedules and metrics.
//
//   features  G_f : conv5x5x32 - ReLU - maxpool2/2 - conv5x5x48 - ReLU - maxpool2/2 -> 768
//                   (3 x 28 x 28 input: 24 x 24 x 32, 12 x 12 x 32, 8 x 8 x 48, 4 x 4 x 48)
//   label     G_y : FC100 - ReLU - FC100 - ReLU - FC10
//   domain    G_d : gradient reversal (kernels/grad_reverse.h) - FC100 - ReLU - FC2
//                   (the thesis's MNIST choice; its other nets use FC1024 - ReLU - FC1024 - ReLU -
//                   FC2, and it notes the choice is arbitrary: domain_hidden sets the widths)
// Every conv and FC layer starts from He's initialisation (weights N(0, 2 / fan_in), biases 0).
// The input is mean-subtracted inside features() (the channel means of the training images,
// DannData::mean, held in the buffer "input_mean" so that checkpoints carry it), so raw [0, 1]
// images go in everywhere.
//
// Objective of one step (batches of 64 labelled source + 64 unlabelled target images):
//   dann         L = CE(G_y(G_f(x_s)), y_s) + CE_d, where CE_d is the mean domain cross-entropy
//                over all 128 images of G_d(R_lambda(G_f([x_s; x_t]))) (source label 0, target 1):
//                one softmax loss over the batch, as the Caffe and TensorFlow implementations of
//                DANN compute it. The thesis's E (eq. 5.3.7) averages the two halves separately
//                and adds them, which is twice this; with He's initialisation that doubled
//                adversarial gradient made the game blow up (docs/dann.md, "Checks"). G_d descends
//                its loss with weight 1; the reversal hands G_f -lambda_p times the domain gradient.
//   source-only  L = CE(G_y(G_f(x_s)), y_s)   (the lower baseline; no domain branch)
//   target-only  L = CE(G_y(G_f(x_t)), y_t)   (train on target, the upper bound; uses target labels)
// Schedules (p = training progress in [0, 1]): lr_p = 0.01 / (1 + 10 p)^0.75
// (nn::InverseDecayLR) and lambda_p = 2 / (1 + exp(-10 p)) - 1 (dann_lambda), with SGD and
// momentum 0.9.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace cvg::dann {

enum class Mode { dann, source_only, target_only };
Mode parse_mode(const std::string& s);  // "dann", "source-only", "target-only"
const char* mode_name(Mode m);

// lambda_p = 2 / (1 + exp(-gamma p)) - 1: 0 at p = 0, -> 1 as p grows (thesis eq. 5.4.1 area).
double dann_lambda(double p, double gamma = 10.0);

// The hidden widths of G_d from a comma-separated list ("100", "1024,1024"): one or more
// positive integers; anything else is an Error naming the value.
std::vector<int64_t> parse_domain_hidden(const std::string& s);

class DannNet : public nn::Module {
 public:
  explicit DannNet(std::array<double, 3> input_mean = {0, 0, 0},
                   const std::vector<int64_t>& domain_hidden = {100});
  // G_f: [N, 3, 28, 28] images in [0, 1] -> [N, 768].
  Tensor features(const Tensor& x);
  Tensor classify(const Tensor& f);                   // G_y: [N, 768] -> [N, 10] logits
  // G_y without its last layer: [N, 768] -> [N, 100], the activations of the last hidden layer
  // (FC100 - ReLU), which the thesis's protocol feeds to a linear SVM (models/dann/svm.h).
  Tensor label_hidden(const Tensor& f);
  Tensor discriminate(const Tensor& f, double lambda);  // G_d(R_lambda(f)): [N, 2] logits
  Tensor forward(const Tensor& x) override { return classify(features(x)); }
  std::string describe() const override { return "DannNet"; }

  void set_input_mean(const std::array<double, 3>& m);

  std::shared_ptr<nn::Module> feature_net, label_net, domain_net;
  Tensor input_mean;  // buffer, float32 [1, 3, 1, 1]
};

// The losses of one step, left on the model's device: reading one is a device-to-host copy that
// waits for the GPU, so a training loop reads them after the whole step (backward, optimizer) is
// queued, not in the middle of the forward pass.
struct StepLoss {
  Tensor total;            // what backward() runs on
  Tensor label;            // 0-d, detached: CE of the label predictor on its labelled half
  Tensor domain;           // 0-d, detached: CE_d (dann only, else undefined)
  Tensor domain_accuracy;  // 0-d float64: the domain classifier's accuracy on the batch (dann only)

  double label_loss() const { return label.item(); }
  double domain_loss() const { return domain.defined() ? domain.item() : 0.0; }
  double domain_acc() const { return domain_accuracy.defined() ? domain_accuracy.item() : 0.0; }
};

// How the dann mode forms CE_d. batch_mean (the default): one softmax loss averaged over the
// whole batch, as above. summed_halves: the thesis's E (eq. 5.3.7) literally, the source half's
// mean plus the target half's mean (twice batch_mean when the halves are equal), kept for the
// comparisons of docs/dann.md ("Tried after the study").
enum class DomainLoss { batch_mean, summed_halves };
DomainLoss parse_domain_loss(const std::string& s);  // "mean", "sum"
const char* domain_loss_name(DomainLoss l);

// The objective above. xs, xt: image batches on the model's device; ys, yt: int64 labels (yt is
// read only by target-only, xt ignored by source-only). `domain_loss` matters to dann only.
StepLoss training_loss(DannNet& net, Mode mode, const Tensor& xs, const Tensor& ys, const Tensor& xt,
                       const Tensor& yt, double lambda, DomainLoss domain_loss = DomainLoss::batch_mean);

// Label accuracy over images x [N, 3, 28, 28] (CPU) with labels y, in batches, in eval mode
// without autograd, on `device`.
double accuracy(DannNet& net, const Tensor& x, const Tensor& y, Device device, int64_t batch = 500);
// G_f features of x (CPU float32 [N, 768]), computed like accuracy().
Tensor extract_features(DannNet& net, const Tensor& x, Device device, int64_t batch = 500);
// label_hidden(G_f(x)) (CPU float32 [N, 100]), computed like accuracy().
Tensor extract_label_hidden(DannNet& net, const Tensor& x, Device device, int64_t batch = 500);

// Proxy A-distance (Ben-David et al.; thesis eq. 5.2.2) between two feature sets [N, D]:
// a logistic-regression probe is trained to tell them apart on the first half of each (features
// standardised with the training half's statistics, full-batch gradient descent, `steps`
// iterations), and its error eps on the second halves gives 2 (1 - 2 eps). Near 0: the domains
// are indistinguishable; 2: perfectly separable. Deterministic.
double proxy_a_distance(const Tensor& fs, const Tensor& ft, int64_t steps = 300);

// The top-2 principal components of rows x [N, D]: the [N, 2] float64 projections of the
// centred rows (eigenvectors by power iteration with deflation, in double; sign fixed so the
// largest-magnitude coefficient of each axis is positive).
Tensor pca_2d(const Tensor& x);

}  // namespace cvg::dann
