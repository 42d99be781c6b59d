// nn/conv_layers.h, nn/norm_layers.h, nn/pool_layers.h and Dropout: parameter layouts and
// initialisation as PyTorch's, forward equal to the ops they wrap, train/eval behaviour,
// running statistics, state dict names, and the errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/rng.h"
#include "kernels/binary.h"
#include "kernels/conv.h"
#include "kernels/reduce.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "nn/conv_layers.h"
#include "nn/layers.h"
#include "nn/norm_layers.h"
#include "nn/pool_layers.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using cvg::testing::error_of;

TEST_CASE("Conv2d: PyTorch layout, uniform init within 1/sqrt(fan_in), forward = conv2d", "[nn][layers]") {
  manual_seed(1);
  nn::Conv2d conv(4, 6, 3, nn::Conv2dOptions{.stride = {2, 2}, .padding = {1, 1}, .groups = 2});
  CHECK(conv.weight.shape() == Shape{6, 2, 3, 3});
  CHECK(conv.bias.shape() == Shape{6});
  const double bound = 1.0 / std::sqrt(2.0 * 9.0);
  CHECK(amax(abs(conv.weight)).item() <= bound);
  CHECK(amax(abs(conv.weight)).item() > 0.5 * bound);  // actually spread over the range
  const Tensor x = randn({2, 4, 7, 7});
  const Tensor y = conv.forward(x);
  CHECK(y.shape() == Shape{2, 6, 4, 4});
  CHECK(max_abs_diff(y, conv2d(x, conv.weight, conv.bias, {2, 2}, {1, 1}, {1, 1}, 2)) == 0);
  const nn::StateDict sd = conv.state_dict();
  CHECK(sd.size() == 2);
  CHECK(sd.count("weight") == 1);
  CHECK(conv.describe() == "Conv2d(4, 6, kernel=3x3, stride=2x2, padding=1x1, groups=2, bias=true)");
  nn::Conv2d no_bias(3, 5, 1, nn::Conv2dOptions{.bias = false});
  CHECK_FALSE(no_bias.bias.defined());
  CHECK(no_bias.parameters().size() == 1);
  CHECK_THAT(error_of([] { nn::Conv2d(4, 6, 3, nn::Conv2dOptions{.groups = 3}); }),
             Catch::Contains("groups (3) must divide in_channels (4)"));
  CHECK(nn::same_padding(5) == 2);
  CHECK(nn::same_padding(3, 4) == 4);
  CHECK_THAT(error_of([] { nn::same_padding(4); }), Catch::Contains("odd kernel"));
}

TEST_CASE("ConvTranspose2d: weight [in, out/groups, k, k], output size, forward = op", "[nn][layers]") {
  manual_seed(2);
  nn::ConvTranspose2d up(6, 4, 4, nn::Conv2dOptions{.stride = {2, 2}, .padding = {1, 1}});
  CHECK(up.weight.shape() == Shape{6, 4, 4, 4});
  const Tensor x = randn({1, 6, 5, 5});
  const Tensor y = up.forward(x);
  CHECK(y.shape() == Shape{1, 4, 10, 10});  // (5 - 1) * 2 - 2 + 4
  CHECK(max_abs_diff(y, conv_transpose2d(x, up.weight, up.bias, {2, 2}, {1, 1})) == 0);
}

TEST_CASE("BatchNorm2d: batch statistics and running averages in train, running ones in eval",
          "[nn][layers]") {
  manual_seed(3);
  nn::BatchNorm2d bn(3);
  CHECK(bn.state_dict().size() == 5);  // weight, bias, running_mean, running_var, num_batches_tracked
  const Tensor x = randn({4, 3, 5, 5}) * 2.0 + 1.0;
  const Tensor y = bn.forward(x);
  // Normalised per channel: mean 0 and (biased) variance 1.
  CHECK(amax(abs(mean(y, {0, 2, 3}))).item() < 1e-5);
  CHECK(max_abs_diff(var(y, {0, 2, 3}, /*unbiased=*/false), ones({3})) < 1e-3);
  // running = 0.9 * running + 0.1 * batch statistic (unbiased variance).
  CHECK(max_abs_diff(bn.running_mean, mean(x, {0, 2, 3}) * 0.1) < 1e-5);
  CHECK(max_abs_diff(bn.running_var, var(x, {0, 2, 3}, /*unbiased=*/true) * 0.1 + 0.9) < 1e-4);
  CHECK(bn.num_batches_tracked.item() == 1);
  bn.eval();
  const Tensor z = bn.forward(x);
  const Tensor want = (x - reshape(bn.running_mean, {1, 3, 1, 1})) /
                      sqrt(reshape(bn.running_var, {1, 3, 1, 1}) + 1e-5);
  CHECK(max_abs_diff(z, want) < 1e-5);
  CHECK(bn.num_batches_tracked.item() == 1);  // eval does not count
  bn.train();
  bn.forward(x);
  CHECK(bn.num_batches_tracked.item() == 2);
  CHECK(bn.num_batches_tracked.dtype() == DType::int64);
  bn.eval();
  CHECK_THAT(error_of([&] { bn.forward(randn({2, 4, 3, 3})); }),
             Catch::Contains("BatchNorm2d: expected N x 3 x H x W input"));
  // Without running statistics the layer uses batch statistics in eval mode too.
  nn::BatchNorm2d plain(3, nn::BatchNormOptions{.track_running_stats = false});
  plain.eval();
  CHECK(amax(abs(mean(plain.forward(x), {0, 2, 3}))).item() < 1e-5);
  CHECK(plain.state_dict().size() == 2);
}

TEST_CASE("InstanceNorm2d: every (n, c) plane normalised, no running statistics", "[nn][layers]") {
  manual_seed(4);
  nn::InstanceNorm2d in(2);
  CHECK(in.parameters().empty());
  const Tensor y = in.forward(randn({3, 2, 4, 5}) * 3.0 - 2.0);
  CHECK(amax(abs(mean(y, {2, 3}))).item() < 1e-5);
  CHECK(max_abs_diff(var(y, {2, 3}, false), ones({3, 2})) < 1e-3);
  nn::InstanceNorm2d affine(2, 1e-5, true);
  CHECK(affine.parameters().size() == 2);
}

TEST_CASE("Dropout: identity in eval mode, zeroes and rescales in train mode", "[nn][layers]") {
  manual_seed(5);
  nn::Dropout drop(0.25);
  const Tensor x = ones({4000});
  const Tensor y = drop.forward(x);
  const double kept = mean(ne(y, zeros({4000})).to(DType::float32)).item();
  CHECK(kept == Approx(0.75).margin(0.04));
  CHECK(amax(y).item() == Approx(1.0 / 0.75));
  drop.eval();
  CHECK(max_abs_diff(drop.forward(x), x) == 0);
  CHECK_THAT(error_of([] { nn::Dropout(1.0); }), Catch::Contains("Dropout: p must be in [0, 1)"));
}

TEST_CASE("MaxPool2d / MaxUnpool2d / AvgPool2d / Upsample wrap their ops", "[nn][layers]") {
  manual_seed(6);
  // Positive values, so that the zeros unpooling leaves around each maximum never win a window.
  const Tensor x = abs(randn({2, 3, 6, 6})) + 0.1;
  nn::MaxPool2d pool(2);
  const PooledWithSwitches ps = pool.forward_with_switches(x);
  CHECK(max_abs_diff(pool.forward(x), ps.values) == 0);
  CHECK(ps.switches.dtype() == DType::int32);
  nn::MaxUnpool2d unpool;
  const Tensor back = unpool.unpool(ps.values, ps.switches, {6, 6});
  // Each pooled maximum returns to where it came from; everything else is zero.
  CHECK(max_abs_diff(max_pool2d(back, {2, 2}), ps.values) == 0);
  CHECK(sum(ne(back, zeros_like(back)).to(DType::float32)).item() == 2 * 3 * 9);
  CHECK_THAT(error_of([&] { unpool.forward(ps.values); }), Catch::Contains("call unpool("));
  CHECK(pool.describe() == "MaxPool2d(kernel=2x2, stride=2x2)");

  nn::AvgPool2d avg(PoolSize2{3, 3});
  CHECK(max_abs_diff(avg.forward(x), mean(reshape(permute(reshape(x, {2, 3, 2, 3, 2, 3}), {0, 1, 2, 4, 3, 5}),
                                                  {2, 3, 2, 2, 9}),
                                          {4})) < 1e-6);

  const auto up = nn::Upsample::by_scale(2.0);
  const Tensor u = up->forward(x);
  CHECK(u.shape() == Shape{2, 3, 12, 12});
  CHECK(max_abs_diff(avg_pool2d(u, {2, 2}), x) < 1e-6);  // nearest: each pixel becomes a 2x2 block
  CHECK(nn::Upsample::to_size({5, 7}, InterpMode::Bilinear)->forward(x).shape() == Shape{2, 3, 5, 7});
  CHECK_THAT(error_of([] { nn::Upsample::by_scale(0); }), Catch::Contains("scale_factor must be positive"));
}
