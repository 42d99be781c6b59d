// Dataset / DataLoader: deterministic shuffling, epoch reshuffles, batching, drop_last, prefetch
// equal to no prefetch, worker errors surfacing in the caller; each transform on tiny images
// whose results are computed by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include "nn/data/dataset.h"
#include "nn/data/loader.h"
#include "nn/data/transforms.h"

using namespace cvg;
using namespace cvg::data;
using Catch::Matchers::Contains;

namespace {

template <typename T>
Tensor vec(const std::vector<T>& v, const Shape& shape) {
  return from_vector<T>(v, shape, TensorOptions{}.with_dtype(dtype_of<T>()));
}

// n examples; input i is a [2] float tensor (i, 10 i), target i is the int64 i.
std::shared_ptr<TensorDataset> numbered(int64_t n) {
  std::vector<float> in;
  std::vector<int64_t> tg;
  for (int64_t i = 0; i < n; ++i) {
    in.push_back(static_cast<float>(i));
    in.push_back(static_cast<float>(10 * i));
    tg.push_back(i);
  }
  return std::make_shared<TensorDataset>(vec<float>(in, {n, 2}), vec<int64_t>(tg, {n}));
}

std::vector<int64_t> visit(const DataLoader& loader, int64_t epoch) {
  std::vector<int64_t> out;
  for (const Batch& b : loader.epoch(epoch)) {
    const std::vector<int64_t> t = b.target.to_vector<int64_t>();
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

// A 1x2x3 float64 image (one channel) with values 0..5 / 10.
Tensor tiny_gray() {
  return tensor({0.0, 0.1, 0.2, 0.3, 0.4, 0.5}, {1, 2, 3}, TensorOptions{}.with_dtype(DType::float64));
}

std::vector<double> values(const Tensor& t) { return t.to(DType::float64).to_vector<double>(); }

}  // namespace

TEST_CASE("TensorDataset returns rows as views", "[data]") {
  auto ds = numbered(5);
  CHECK(ds->size() == 5);
  const Example e = ds->get(3);
  CHECK(e.input.shape() == Shape{2});
  CHECK(values(e.input) == std::vector<double>{3, 30});
  CHECK(e.target.dim() == 0);
  CHECK(e.target.item<int64_t>() == 3);
  REQUIRE_THROWS_WITH(ds->get(5), Contains("out of range"));
  REQUIRE_THROWS_WITH(TensorDataset(zeros({3, 2}), zeros({4})), Contains("same number of rows"));
}

TEST_CASE("DataLoader without shuffle visits in order, batches and keeps the partial batch", "[data]") {
  DataLoader loader(numbered(10), {.batch_size = 4});
  CHECK(loader.num_batches() == 3);
  std::vector<Shape> shapes;
  std::vector<int64_t> seen;
  for (const Batch& b : loader.epoch(0)) {
    shapes.push_back(b.input.shape());
    CHECK(b.target.shape() == Shape{b.input.size(0)});
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    // Row r of the batch is example indices[r].
    const std::vector<double> v = values(b.input);
    for (size_t r = 0; r < b.indices.size(); ++r) CHECK(v[2 * r + 1] == 10.0 * b.indices[r]);
  }
  CHECK(shapes == std::vector<Shape>{{4, 2}, {4, 2}, {2, 2}});
  std::vector<int64_t> expect(10);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(seen == expect);
}

TEST_CASE("DataLoader drop_last drops the partial batch", "[data]") {
  DataLoader loader(numbered(10), {.batch_size = 4, .shuffle = true, .seed = 3, .drop_last = true});
  CHECK(loader.num_batches() == 2);
  int n = 0;
  for (const Batch& b : loader.epoch(1)) {
    CHECK(b.input.shape() == Shape{4, 2});
    ++n;
  }
  CHECK(n == 2);
  DataLoader exact(numbered(8), {.batch_size = 4, .drop_last = true});
  CHECK(exact.num_batches() == 2);
  DataLoader none(numbered(3), {.batch_size = 4, .drop_last = true});
  CHECK(none.num_batches() == 0);
  CHECK_FALSE(none.epoch(0).next().has_value());
}

TEST_CASE("DataLoader shuffling is a deterministic permutation per (seed, epoch)", "[data]") {
  auto ds = numbered(50);
  DataLoader a(ds, {.batch_size = 7, .shuffle = true, .seed = 42});
  DataLoader b(ds, {.batch_size = 7, .shuffle = true, .seed = 42});
  DataLoader c(ds, {.batch_size = 7, .shuffle = true, .seed = 43});
  const std::vector<int64_t> a0 = visit(a, 0), a1 = visit(a, 1);
  CHECK(a0 == visit(b, 0));          // same seed, same order
  CHECK(a0 == visit(a, 0));          // repeatable
  CHECK(a0 != a1);                   // each epoch reshuffles
  CHECK(a0 != visit(c, 0));          // the seed matters
  std::vector<int64_t> sorted = a0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> expect(50);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(sorted == expect);           // a permutation
  CHECK(a0 != expect);
  CHECK(a.order(1) == a1);
  // The batch size does not change the order.
  DataLoader d(ds, {.batch_size = 50, .shuffle = true, .seed = 42});
  CHECK(visit(d, 1) == a1);
  // Every element lands in every position over many epochs (no stuck elements).
  std::set<int64_t> first;
  for (int64_t e = 0; e < 200; ++e) first.insert(a.order(e)[0]);
  CHECK(first.size() > 40);
}

TEST_CASE("DataLoader prefetch gives exactly the batches of the synchronous loader", "[data]") {
  auto ds = numbered(37);
  const ExampleTransform noise = [](Example ex, SampleRng& rng) {
    ex.input = ex.input.clone();
    ex.input.data<float>()[0] += static_cast<float>(rng.uniform());
    return ex;
  };
  for (int prefetch : {1, 3, 100}) {
    INFO("prefetch " << prefetch);
    DataLoader sync(ds, {.batch_size = 5, .shuffle = true, .seed = 9, .transform = noise});
    DataLoader pre(ds, {.batch_size = 5, .shuffle = true, .seed = 9, .prefetch = prefetch, .transform = noise});
    for (int64_t epoch : {0, 4}) {
      Epoch s = sync.epoch(epoch), p = pre.epoch(epoch);
      int64_t n = 0;
      for (;;) {
        auto bs = s.next();
        auto bp = p.next();
        REQUIRE(bs.has_value() == bp.has_value());
        if (!bs) break;
        CHECK(bs->indices == bp->indices);
        CHECK(values(bs->input) == values(bp->input));
        CHECK(bs->target.to_vector<int64_t>() == bp->target.to_vector<int64_t>());
        ++n;
      }
      CHECK(n == 8);
      CHECK_FALSE(p.next().has_value());  // stays finished
    }
  }
}

TEST_CASE("DataLoader transforms draw from (seed, epoch, index) only", "[data]") {
  auto ds = numbered(12);
  const ExampleTransform tag = [](Example ex, SampleRng& rng) {
    ex.input = full({1}, rng.uniform());
    return ex;
  };
  DataLoader a(ds, {.batch_size = 3, .shuffle = true, .seed = 5, .transform = tag});
  DataLoader b(ds, {.batch_size = 12, .shuffle = false, .seed = 5, .prefetch = 2, .transform = tag});
  // Example i gets the same random number whatever the batch size, order or prefetch.
  std::map<int64_t, float> ra, rb;
  for (const Batch& x : a.epoch(2))
    for (size_t r = 0; r < x.indices.size(); ++r) ra[x.indices[r]] = x.input.to_vector<float>()[r];
  for (const Batch& x : b.epoch(2))
    for (size_t r = 0; r < x.indices.size(); ++r) rb[x.indices[r]] = x.input.to_vector<float>()[r];
  CHECK(ra == rb);
  for (int64_t i = 0; i < 12; ++i) {
    SampleRng rng(5, 2, static_cast<uint64_t>(i));
    CHECK(ra[i] == static_cast<float>(rng.uniform()));
  }
  // A different epoch draws differently.
  std::map<int64_t, float> r3;
  for (const Batch& x : a.epoch(3))
    for (size_t r = 0; r < x.indices.size(); ++r) r3[x.indices[r]] = x.input.to_vector<float>()[r];
  CHECK(r3 != ra);
}

TEST_CASE("DataLoader surfaces worker exceptions in the caller, in order", "[data]") {
  // Example 13 fails; batches before it arrive first, with and without prefetch.
  auto ds = std::make_shared<FunctionDataset>(20, [](int64_t i) -> Example {
    if (i == 13) fail("synthetic failure at ", i);
    return {full({1}, static_cast<double>(i)), Tensor()};
  });
  for (int prefetch : {0, 2}) {
    INFO("prefetch " << prefetch);
    DataLoader loader(ds, {.batch_size = 4, .prefetch = prefetch});
    Epoch e = loader.epoch(0);
    for (int b = 0; b < 3; ++b) {
      auto batch = e.next();
      REQUIRE(batch.has_value());
      CHECK_FALSE(batch->target.defined());
      CHECK(batch->indices.front() == 4 * b);
    }
    REQUIRE_THROWS_WITH(e.next(), Contains("example 13") && Contains("synthetic failure at 13"));
    CHECK_FALSE(e.next().has_value());
  }
  // Exceptions that are not cvg::Error pass through unchanged.
  auto bad = std::make_shared<FunctionDataset>(3, [](int64_t) -> Example { throw std::out_of_range("boom"); });
  DataLoader loader(bad, {.batch_size = 2, .prefetch = 1});
  Epoch e = loader.epoch(0);
  REQUIRE_THROWS_AS(e.next(), std::out_of_range);
}

TEST_CASE("DataLoader shuts its prefetch thread down when an epoch is abandoned", "[data]") {
  std::atomic<int> calls{0};
  auto ds = std::make_shared<FunctionDataset>(1000, [&](int64_t i) -> Example {
    ++calls;
    return {full({1}, static_cast<double>(i)), Tensor()};
  });
  DataLoader loader(ds, {.batch_size = 10, .prefetch = 2});
  {
    Epoch e = loader.epoch(0);
    REQUIRE(e.next().has_value());
  }  // destroyed with the worker blocked on a full queue
  // It stopped early: at most the consumed batch, the queue and one in hand were built.
  CHECK(calls.load() <= 10 * (1 + 2 + 1));
  // Moving an epoch keeps it working.
  Epoch a = loader.epoch(1);
  Epoch b = std::move(a);
  int n = 0;
  while (b.next()) ++n;
  CHECK(n == 100);
}

TEST_CASE("DataLoader reports mismatched example shapes", "[data]") {
  auto ds = std::make_shared<FunctionDataset>(4, [](int64_t i) -> Example {
    return {zeros({i == 2 ? 3 : 2}), Tensor()};
  });
  DataLoader loader(ds, {.batch_size = 4});
  REQUIRE_THROWS_WITH(loader.epoch(0).next(), Contains("input 2 has shape [3]") && Contains("[2]"));
  REQUIRE_THROWS_WITH(DataLoader(ds, {.batch_size = 0}), Contains("batch_size"));
}

// ---- transforms on hand-made images ---------------------------------------------------------------

TEST_CASE("crop and random_crop", "[data][transforms]") {
  const Tensor img = tiny_gray();  // [[0, .1, .2], [.3, .4, .5]]
  CHECK(values(crop(img, 0, 1, 2, 2)) == std::vector<double>{0.1, 0.2, 0.4, 0.5});
  // Padding 1 with fill 9: the window at (0, 0) of size 2x2 sees fill in row 0 and column 0.
  CHECK(values(crop(img, 0, 0, 2, 2, 1, 9.0)) == std::vector<double>{9, 9, 9, 0});
  REQUIRE_THROWS_WITH(crop(img, 1, 0, 2, 2), Contains("does not fit"));

  // random_crop picks the offset from the rng: 2 valid tops x 2 valid lefts for 1x2 windows.
  const Transform t = random_crop(1, 2);
  std::set<std::vector<double>> seen;
  for (uint64_t i = 0; i < 64; ++i) {
    SampleRng rng(1, 0, i);
    const Tensor out = t(img, rng);
    CHECK(out.shape() == Shape{1, 1, 2});
    seen.insert(values(out));
    SampleRng again(1, 0, i);
    CHECK(values(t(img, again)) == values(out));
  }
  CHECK(seen.size() == 4);
  SampleRng rng(0, 0, 0);
  REQUIRE_THROWS_WITH(random_crop(3, 3)(img, rng), Contains("larger than the padded image"));
  CHECK(center_crop(1, 1)(img, rng).item() == Approx(0.1));  // (2-1)/2 = 0 row, (3-1)/2 = 1 col
}

TEST_CASE("resize is bilinear with half-pixel centres", "[data][transforms]") {
  // 1x2 -> 1x4: output x samples source (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped.
  const Tensor row = tensor({0.0, 1.0}, {1, 1, 2});
  CHECK(values(resize_bilinear(row, 1, 4)) == std::vector<double>{0.0, 0.25, 0.75, 1.0});
  // 2x2 -> 1x1 averages the four corners (source (0.5, 0.5)).
  const Tensor sq = tensor({0.0, 1.0, 2.0, 3.0}, {1, 2, 2});
  CHECK(values(resize_bilinear(sq, 1, 1)) == std::vector<double>{1.5});
  // Same size is the identity; channels are independent; dtype is kept.
  const Tensor rgb = tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 2, 2}, TensorOptions{}.with_dtype(DType::float64));
  const Tensor same = resize_bilinear(rgb, 2, 2);
  CHECK(same.dtype() == DType::float64);
  CHECK(values(same) == values(rgb));
  CHECK(resize_bilinear(rgb, 4, 3).shape() == Shape{3, 4, 3});
  // 2-D images keep their rank.
  CHECK(resize_bilinear(tensor({0.0, 1.0}, {1, 2}), 2, 2).shape() == Shape{2, 2});
  SampleRng rng(0, 0, 0);
  CHECK(resize(2, 6)(tiny_gray(), rng).shape() == Shape{1, 2, 6});
}

TEST_CASE("horizontal flip", "[data][transforms]") {
  CHECK(values(hflip(tiny_gray())) == std::vector<double>{0.2, 0.1, 0.0, 0.5, 0.4, 0.3});
  int flipped = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    SampleRng rng(7, 1, i);
    flipped += values(random_horizontal_flip(0.5)(tiny_gray(), rng))[0] == 0.2;
  }
  CHECK(flipped > 70);
  CHECK(flipped < 130);
  SampleRng rng(0, 0, 0);
  CHECK(values(random_horizontal_flip(0.0)(tiny_gray(), rng)) == values(tiny_gray()));
  CHECK(values(random_horizontal_flip(1.0)(tiny_gray(), rng)) == values(hflip(tiny_gray())));
}

TEST_CASE("colour jitter: brightness, contrast, saturation by hand", "[data][transforms]") {
  // One pixel per channel layout [3, 1, 2]: pixel 0 = (0.2, 0.4, 0.6), pixel 1 = (1, 1, 1).
  const Tensor img = tensor({0.2, 1.0, 0.4, 1.0, 0.6, 1.0}, {3, 1, 2}, TensorOptions{}.with_dtype(DType::float64));
  // Brightness 0.5 halves; 2 doubles and clamps at 1.
  CHECK(values(adjust_brightness(img, 0.5)) == std::vector<double>{0.1, 0.5, 0.2, 0.5, 0.3, 0.5});
  CHECK(values(adjust_brightness(img, 2.0)) == std::vector<double>{0.4, 1, 0.8, 1, 1, 1});
  // Luma of pixel 0: 0.299*0.2 + 0.587*0.4 + 0.114*0.6 = 0.363; pixel 1: 1. Mean 0.6815.
  const double g0 = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, m = (g0 + 1.0) / 2;
  const std::vector<double> c = values(adjust_contrast(img, 0.5));
  const std::vector<double> in = values(img);
  for (size_t i = 0; i < 6; ++i) CHECK(c[i] == Approx(m + 0.5 * (in[i] - m)));
  for (double v : values(adjust_contrast(img, 0.0))) CHECK(v == Approx(m));
  // Saturation 0 gives the luma in every channel; 1 is the identity.
  const std::vector<double> s0 = values(adjust_saturation(img, 0.0));
  CHECK(s0[0] == Approx(g0));
  CHECK(s0[2] == Approx(g0));
  CHECK(s0[4] == Approx(g0));
  CHECK(s0[1] == Approx(1.0));
  const std::vector<double> s1 = values(adjust_saturation(img, 1.0));
  for (size_t i = 0; i < 6; ++i) CHECK(s1[i] == Approx(in[i]));
  REQUIRE_THROWS_WITH(adjust_saturation(zeros({2, 1, 1}), 0.5), Contains("1- or 3-channel"));

  // color_jitter draws three factors in order and applies them in order.
  const Transform j = color_jitter(0.4, 0.3, 0.2);
  SampleRng rng(11, 0, 3), draw(11, 0, 3);
  const double fb = draw.uniform(0.6, 1.4), fc = draw.uniform(0.7, 1.3), fs = draw.uniform(0.8, 1.2);
  const std::vector<double> got = values(j(img, rng));
  const std::vector<double> want = values(adjust_saturation(adjust_contrast(adjust_brightness(img, fb), fc), fs));
  CHECK(got == want);
  // Zero strengths leave the image unchanged.
  SampleRng r2(1, 1, 1);
  CHECK(values(color_jitter(0, 0, 0)(img, r2)) == in);
}

TEST_CASE("normalize and compose", "[data][transforms]") {
  const Tensor img = tensor({0.5, 1.0, 0.0, 0.25}, {2, 1, 2});
  SampleRng rng(0, 0, 0);
  const Tensor n = normalize({0.5, 0.0}, {0.5, 0.25})(img, rng);
  CHECK(values(n) == std::vector<double>{0.0, 1.0, 0.0, 1.0});
  const Tensor one = normalize({0.5}, {2.0})(img, rng);  // one value for every channel
  CHECK(values(one) == std::vector<double>{0.0, 0.25, -0.25, -0.125});
  REQUIRE_THROWS_WITH(normalize({0.5, 0.5, 0.5}, {1, 1, 1})(img, rng), Contains("3 means"));
  REQUIRE_THROWS_WITH(normalize({0.5}, {0.0}), Contains("positive"));

  const Transform pipeline = compose({resize(2, 4), center_crop(2, 2), normalize({0.5}, {0.5})});
  const Tensor x = pipeline(tensor({0.0, 1.0}, {1, 1, 2}), rng);
  CHECK(x.shape() == Shape{1, 2, 2});
  // resize -> rows [0, .25, .75, 1]; centre crop -> [.25, .75]; normalise -> [-.5, .5].
  CHECK(values(x) == std::vector<double>{-0.5, 0.5, -0.5, 0.5});
  REQUIRE_THROWS_WITH(hflip(zeros({2, 2}, TensorOptions{}.with_dtype(DType::uint8))), Contains("float image"));
}
