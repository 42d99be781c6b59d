#include "models/deepmatch/pairs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <random>

#include "core/error.h"
#include "kernels/shape.h"
#include "kernels/tps.h"
#include "kernels/view.h"
#include "nn/io/idx.h"
#include "nn/io/image.h"
#include "nn/io/npy.h"

namespace cvg::deepmatch {

namespace fs = std::filesystem;

namespace {

// Photos of data/ (scripts/fetch-data) by split. The motorcycle and Aloe stereo pairs are kept
// out of both: they are the real test pairs.
const std::vector<std::string> kTrainPhotos = {
    "skimage/astronaut.png", "skimage/brick.png",     "skimage/camera.png",      "skimage/chelsea.png",
    "skimage/grass.png",     "skimage/gravel.png",    "skimage/rocket.jpg",      "skimage/hubble_deep_field.jpg",
    "opencv/baboon.jpg",     "opencv/building.jpg",   "opencv/fruits.jpg",       "opencv/home.jpg",
    "opencv/board.jpg",      "opencv/butterfly.jpg",  "opencv/graf1.png",        "opencv/box_in_scene.png",
    "opencv/messi5.jpg",     "opencv/orange.jpg",     "opencv/stuff.jpg",        "opencv/starry_night.jpg",
    "opencv/smarties.png",   "opencv/aero1.jpg",      "opencv/basketball1.png",  "opencv/leuvenA.jpg"};
const std::vector<std::string> kHeldOutPhotos = {
    "skimage/coffee.png", "opencv/apple.jpg",           "opencv/HappyFish.jpg",
    "opencv/rubberwhale1.png", "opencv/Blender_Suzanne1.jpg", "opencv/ela_original.jpg"};
// Photos are reduced (box filter, integer factor) to at most this side, so that a 128 x 96 frame
// shows a scene rather than a texture close-up.
constexpr int64_t kPhotoMaxSide = 400;
constexpr int64_t kSpritesPerSplit = 3000;
constexpr float kSpriteAlphaThreshold = 0.1f;
// aloeGT.png holds the disparity in pixels of the 1282 x 1110 images times this factor's inverse
// (checked by photometric consistency: see docs/deepmatch.md).
constexpr float kAloeDisparityScale = 1.0f;

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform draws from 53 random bits: the same numbers on every standard library.
struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  double uniform(double a, double b) { return a + (b - a) * static_cast<double>(g() >> 11) * 0x1.0p-53; }
  double sym(double a) { return uniform(-a, a); }
  int64_t below(int64_t n) { return static_cast<int64_t>(g() % static_cast<uint64_t>(n)); }
  double normal() {  // Box-Muller
    const double u = uniform(0x1.0p-53, 1.0), v = uniform(0.0, 1.0);
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * std::numbers::pi * v);
  }
};

Homography similarity(double cx, double cy, double tx, double ty, double rot_deg, double scale) {
  // x -> c + t + s R (x - c)
  const double a = rot_deg * std::numbers::pi / 180.0, c = scale * std::cos(a), s = scale * std::sin(a);
  Homography h;
  h.m[0] = c, h.m[1] = -s, h.m[2] = cx + tx - c * cx + s * cy;
  h.m[3] = s, h.m[4] = c, h.m[5] = cy + ty - s * cx - c * cy;
  return h;
}

// Bilinear sample at (x, y); `clamp` repeats the border (photos), otherwise outside is 0 (sprites).
float sample(const GrayImage& im, double x, double y, bool clamp) {
  if (clamp) {
    x = std::clamp(x, 0.0, static_cast<double>(im.w - 1));
    y = std::clamp(y, 0.0, static_cast<double>(im.h - 1));
  }
  const double fx = std::floor(x), fy = std::floor(y);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  const double ax = x - fx, ay = y - fy;
  auto at = [&](int64_t yy, int64_t xx) -> double {
    if (xx < 0 || yy < 0 || xx >= im.w || yy >= im.h) return clamp ? im.at(std::clamp<int64_t>(yy, 0, im.h - 1),
                                                                            std::clamp<int64_t>(xx, 0, im.w - 1))
                                                                   : 0.0;
    return im.at(yy, xx);
  };
  return static_cast<float>((1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x0 + 1)) +
                            ay * ((1 - ax) * at(y0 + 1, x0) + ax * at(y0 + 1, x0 + 1)));
}

// One layer of a synthetic pair: its source, the frame-0 map (per pixel, since a TPS has no
// closed-form inverse) and the frame-1 homography; gt0 maps frame 0 to frame 1 directly.
struct Layer {
  const GrayImage* src = nullptr;
  GrayImage mask;  // sprites: 1 where the item is, bilinear alpha
  bool sprite = false;
  double gain = 1, bias = 0;
  std::vector<double> sx0, sy0;  // map0 at every frame-0 pixel
  Homography map1;               // frame 1 -> source
  std::vector<double> gx, gy;    // ground truth at every frame-0 pixel
};

void fill_maps(Layer& l, int64_t h, int64_t w, const Homography& map0, const Homography& gt) {
  l.sx0.resize(static_cast<size_t>(h * w));
  l.sy0.resize(l.sx0.size());
  l.gx.resize(l.sx0.size());
  l.gy.resize(l.sx0.size());
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const size_t i = static_cast<size_t>(y * w + x);
      map0.apply(x, y, l.sx0[i], l.sy0[i]);
      gt.apply(x, y, l.gx[i], l.gy[i]);
    }
}

GrayImage gray_of(const Tensor& hwc_u8) {
  const Tensor t = hwc_u8.contiguous();
  GrayImage g;
  g.h = t.size(0), g.w = t.size(1);
  g.v.resize(static_cast<size_t>(g.h * g.w));
  const uint8_t* p = t.data<uint8_t>();
  for (size_t i = 0; i < g.v.size(); ++i) g.v[i] = static_cast<float>(p[i]) / 255.0f;
  return g;
}

std::string need_file(const fs::path& p) {
  CVG_CHECK(fs::exists(p), "deepmatch data: missing ", p.string(), " (run scripts/fetch-data)");
  return p.string();
}

}  // namespace

const char* pair_kind_name(PairKind k) {
  switch (k) {
    case PairKind::homography: return "homography";
    case PairKind::tps: return "tps";
    case PairKind::sprites: return "sprites";
  }
  return "?";
}

void Homography::apply(double x, double y, double& ox, double& oy) const {
  const double d = m[6] * x + m[7] * y + m[8];
  ox = (m[0] * x + m[1] * y + m[2]) / d;
  oy = (m[3] * x + m[4] * y + m[5]) / d;
}

Homography Homography::inverse() const {
  const double* a = m;
  Homography r;
  r.m[0] = a[4] * a[8] - a[5] * a[7];
  r.m[1] = a[2] * a[7] - a[1] * a[8];
  r.m[2] = a[1] * a[5] - a[2] * a[4];
  r.m[3] = a[5] * a[6] - a[3] * a[8];
  r.m[4] = a[0] * a[8] - a[2] * a[6];
  r.m[5] = a[2] * a[3] - a[0] * a[5];
  r.m[6] = a[3] * a[7] - a[4] * a[6];
  r.m[7] = a[1] * a[6] - a[0] * a[7];
  r.m[8] = a[0] * a[4] - a[1] * a[3];
  const double det = a[0] * r.m[0] + a[1] * r.m[3] + a[2] * r.m[6];
  CVG_CHECK(std::abs(det) > 1e-12, "Homography::inverse: singular matrix");
  for (double& v : r.m) v /= det;
  return r;
}

Homography Homography::then(const Homography& next) const {
  Homography r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += next.m[i * 3 + k] * m[k * 3 + j];
      r.m[i * 3 + j] = s;
    }
  return r;
}

GrayImage read_gray(const std::string& path) { return gray_of(io::read_image(need_file(path), 1)); }

GrayImage downscale(const GrayImage& im, int64_t f) {
  CVG_CHECK(f >= 1, "downscale: factor must be >= 1, got ", f);
  if (f == 1) return im;
  GrayImage o;
  o.h = im.h / f, o.w = im.w / f;
  o.v.assign(static_cast<size_t>(o.h * o.w), 0.0f);
  for (int64_t y = 0; y < o.h; ++y)
    for (int64_t x = 0; x < o.w; ++x) {
      double s = 0;
      for (int64_t dy = 0; dy < f; ++dy)
        for (int64_t dx = 0; dx < f; ++dx) s += im.at(y * f + dy, x * f + dx);
      o.v[static_cast<size_t>(y * o.w + x)] = static_cast<float>(s / static_cast<double>(f * f));
    }
  return o;
}

Tensor to_tensor(const GrayImage& im) { return from_vector(im.v, {1, im.h, im.w}); }

PairSource::PairSource(std::vector<GrayImage> photos, std::vector<GrayImage> sprites, SyntheticOptions options)
    : photos_(std::move(photos)), sprites_(std::move(sprites)), opt_(options) {
  CVG_CHECK(!photos_.empty(), "PairSource: no photos");
  CVG_CHECK(opt_.width >= 16 && opt_.height >= 16, "PairSource: frames must be at least 16 x 16, got ",
            opt_.width, " x ", opt_.height);
  for (const GrayImage& s : sprites_)
    CVG_CHECK(s.h == 28 && s.w == 28, "PairSource: sprites must be 28 x 28, got ", s.h, " x ", s.w);
}

PairSource PairSource::open(const std::string& data_dir, bool held_out, SyntheticOptions options) {
  const fs::path root(data_dir);
  std::vector<GrayImage> photos;
  std::vector<std::string> names;
  for (const std::string& name : held_out ? kHeldOutPhotos : kTrainPhotos) {
    GrayImage g = read_gray((root / name).string());
    const int64_t f = (std::max(g.h, g.w) + kPhotoMaxSide - 1) / kPhotoMaxSide;
    photos.push_back(downscale(g, f));
    names.push_back(name);
  }
  const Tensor items = io::read_idx(need_file(
      root / "fashion-mnist" / (held_out ? "t10k-images-idx3-ubyte.gz" : "train-images-idx3-ubyte.gz")));
  const int64_t n = std::min<int64_t>(kSpritesPerSplit, items.size(0));
  std::vector<GrayImage> sprites;
  for (int64_t i = 0; i < n; ++i) sprites.push_back(gray_of(select(items, 0, i)));
  PairSource s(std::move(photos), std::move(sprites), options);
  s.names_ = std::move(names);
  return s;
}

std::string PairSource::description() const {
  return str_cat(photos_.size(), " photos, ", sprites_.size(), " sprites, ", opt_.width, " x ", opt_.height,
                 " frames");
}

Pair PairSource::pair(uint64_t seed, int64_t index) const {
  static const PairKind cycle[4] = {PairKind::homography, PairKind::tps, PairKind::sprites, PairKind::sprites};
  const PairKind kind = sprites_.empty() && cycle[index % 4] == PairKind::sprites ? PairKind::homography
                                                                                  : cycle[index % 4];
  Pair p = make(kind, splitmix(seed * 0x100000001B3ull + static_cast<uint64_t>(index)));
  p.name = str_cat(pair_kind_name(kind), "-", index);
  return p;
}

Pair PairSource::make(PairKind kind, uint64_t seed) const {
  CVG_CHECK(kind != PairKind::sprites || !sprites_.empty(), "PairSource: sprite pairs need sprites");
  Rng rng(seed);
  const int64_t w = opt_.width, h = opt_.height;
  const double cx = 0.5 * static_cast<double>(w - 1), cy = 0.5 * static_cast<double>(h - 1);
  std::vector<Layer> layers(1);

  // Background: the frame sees a region of the photo at scale s (frame -> photo map C).
  Layer& bg = layers[0];
  bg.src = &photos_[static_cast<size_t>(rng.below(static_cast<int64_t>(photos_.size())))];
  const double margin = 40;  // photo pixels kept around the crop for the motions
  const double smax = std::min((bg.src->w - 2 * margin) / w, (bg.src->h - 2 * margin) / h);
  const double s = smax > 0.8 ? rng.uniform(0.8, std::min(smax, 1.6)) : std::max(smax, 0.3);
  Homography crop;
  crop.m[0] = s, crop.m[4] = s;
  crop.m[2] = rng.uniform(margin, std::max(margin, bg.src->w - margin - s * w));
  crop.m[5] = rng.uniform(margin, std::max(margin, bg.src->h - margin - s * h));
  // G: frame 0 -> frame 1 motion of the background.
  Homography g = similarity(cx, cy, rng.sym(opt_.max_shift), rng.sym(opt_.max_shift), rng.sym(opt_.max_rotation),
                            1 + rng.sym(opt_.max_scale));
  if (kind == PairKind::homography) {
    // A little perspective about the centre: w = 1 + p (x - cx) + q (y - cy).
    const double p = rng.sym(1.5e-3), q = rng.sym(1.5e-3);
    Homography persp;
    persp.m[6] = p, persp.m[7] = q, persp.m[8] = 1 - p * cx - q * cy;  // keeps (cx, cy) fixed
    g = persp.then(g);
  }
  bg.map1 = g.inverse().then(crop);
  if (kind == PairKind::tps) {
    // Frame 0 = photo under T then C; the ground truth is G(T(x)).
    std::vector<double> ctrl, disp;
    for (double v : {-0.6, 0.0, 0.6})
      for (double u : {-0.6, 0.0, 0.6}) ctrl.insert(ctrl.end(), {u, v});
    for (int k = 0; k < 9; ++k) disp.insert(disp.end(), {rng.sym(4.0) * 2 / w, rng.sym(4.0) * 2 / h});
    const Tensor grid = tps_grid(tensor(ctrl, {9, 2}, TensorOptions{}.with_dtype(DType::float64)),
                                 tensor(disp, {1, 9, 2}, TensorOptions{}.with_dtype(DType::float64)), {h, w})
                            .contiguous();
    const double* gp = grid.data<double>();
    bg.sx0.resize(static_cast<size_t>(h * w));
    bg.sy0.resize(bg.sx0.size());
    bg.gx.resize(bg.sx0.size());
    bg.gy.resize(bg.sx0.size());
    for (size_t i = 0; i < bg.sx0.size(); ++i) {
      // grid_sample's normalised coordinates (align_corners false) to pixel centres.
      const double tx = ((gp[2 * i] + 1) * w - 1) / 2, ty = ((gp[2 * i + 1] + 1) * h - 1) / 2;
      crop.apply(tx, ty, bg.sx0[i], bg.sy0[i]);
      g.apply(tx, ty, bg.gx[i], bg.gy[i]);
    }
  } else {
    fill_maps(bg, h, w, crop, g);
  }

  if (kind == PairKind::sprites) {
    const int64_t count = 2 + rng.below(4);
    for (int64_t k = 0; k < count; ++k) {
      Layer l;
      l.sprite = true;
      l.src = &sprites_[static_cast<size_t>(rng.below(static_cast<int64_t>(sprites_.size())))];
      l.mask = *l.src;
      for (float& v : l.mask.v) v = v > kSpriteAlphaThreshold ? 1.0f : 0.0f;
      l.gain = rng.uniform(0.5, 1.0);
      l.bias = rng.uniform(0.0, 0.4);
      // Pose P: sprite (13.5, 13.5) -> centre c, scaled 1.2-2x and turned; motion M about c.
      const double px = rng.uniform(16, w - 16), py = rng.uniform(16, h - 16);
      const Homography pose = similarity(13.5, 13.5, px - 13.5, py - 13.5, rng.sym(30), rng.uniform(1.2, 2.0));
      const Homography local = similarity(px, py, rng.sym(opt_.sprite_shift), rng.sym(opt_.sprite_shift),
                                          rng.sym(opt_.sprite_rotation), 1 + rng.sym(opt_.sprite_scale));
      const Homography motion = local.then(g);  // the sprite also follows the background
      const Homography to_sprite = pose.inverse();
      fill_maps(l, h, w, to_sprite, motion);
      l.map1 = motion.inverse().then(to_sprite);
      layers.push_back(std::move(l));
    }
  }

  const double gain = 1 + rng.sym(opt_.max_gain), offset = rng.sym(opt_.max_bias);
  // Render both frames back to front; the ground truth takes the topmost layer of frame 0.
  std::vector<float> f0(static_cast<size_t>(h * w)), f1(f0.size()), flow(2 * f0.size());
  std::vector<uint8_t> valid8(f0.size());
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const size_t i = static_cast<size_t>(y * w + x);
      double v0 = 0, v1 = 0, gxv = 0, gyv = 0;
      for (const Layer& l : layers) {
        double sx1, sy1;
        l.map1.apply(x, y, sx1, sy1);
        if (!l.sprite) {
          v0 = sample(*l.src, l.sx0[i], l.sy0[i], true);
          v1 = sample(*l.src, sx1, sy1, true);
          gxv = l.gx[i], gyv = l.gy[i];
          continue;
        }
        const double a0 = sample(l.mask, l.sx0[i], l.sy0[i], false), a1 = sample(l.mask, sx1, sy1, false);
        v0 = (1 - a0) * v0 + a0 * (l.bias + l.gain * sample(*l.src, l.sx0[i], l.sy0[i], false));
        v1 = (1 - a1) * v1 + a1 * (l.bias + l.gain * sample(*l.src, sx1, sy1, false));
        if (a0 > 0.5) gxv = l.gx[i], gyv = l.gy[i];
      }
      f0[i] = static_cast<float>(std::clamp(v0 + opt_.noise * rng.normal(), 0.0, 1.0));
      f1[i] = static_cast<float>(std::clamp(gain * v1 + offset + opt_.noise * rng.normal(), 0.0, 1.0));
      flow[i] = static_cast<float>(gxv - x);
      flow[f0.size() + i] = static_cast<float>(gyv - y);
      valid8[i] = gxv >= 0 && gyv >= 0 && gxv <= w - 1 && gyv <= h - 1;
    }
  Pair p;
  p.img0 = from_vector(f0, {1, h, w});
  p.img1 = from_vector(f1, {1, h, w});
  p.flow = from_vector(flow, {2, h, w});
  p.valid = from_vector(valid8, {h, w}, TensorOptions{}.with_dtype(DType::uint8));
  p.name = pair_kind_name(kind);
  return p;
}

PairBatch stack_pairs(const std::vector<Pair>& pairs) {
  CVG_CHECK(!pairs.empty(), "stack_pairs: no pairs");
  TensorList a, b, f, v;
  for (const Pair& p : pairs) {
    a.push_back(p.img0), b.push_back(p.img1), f.push_back(p.flow), v.push_back(p.valid);
  }
  return {stack(a), stack(b), stack(f), stack(v)};
}

namespace {

// A stereo pair with a left-view disparity map (pixels at full size, NaN = unknown) reduced by
// `factor`: the disparity of a block is the mean of its finite values when all are finite.
Pair stereo_pair(const GrayImage& left, const GrayImage& right, const std::vector<float>& disp, int64_t factor,
                 const std::string& name) {
  CVG_CHECK(left.h == right.h && left.w == right.w && static_cast<int64_t>(disp.size()) == left.h * left.w,
            "deepmatch: stereo pair ", name, ": image and disparity sizes differ");
  const GrayImage l = downscale(left, factor), r = downscale(right, factor);
  const int64_t h = l.h, w = l.w;
  std::vector<float> flow(static_cast<size_t>(2 * h * w), 0.0f);
  std::vector<uint8_t> valid(static_cast<size_t>(h * w), 0);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double s = 0;
      bool ok = true;
      for (int64_t dy = 0; dy < factor; ++dy)
        for (int64_t dx = 0; dx < factor; ++dx) {
          const float d = disp[static_cast<size_t>((y * factor + dy) * left.w + x * factor + dx)];
          ok = ok && std::isfinite(d);
          s += d;
        }
      if (!ok) continue;
      const double d = s / static_cast<double>(factor * factor) / static_cast<double>(factor);
      const size_t i = static_cast<size_t>(y * w + x);
      flow[i] = static_cast<float>(-d);
      valid[i] = x - d >= 0 && x - d <= w - 1;
    }
  Pair p;
  p.img0 = to_tensor(l);
  p.img1 = to_tensor(r);
  p.flow = from_vector(flow, {2, h, w});
  p.valid = from_vector(valid, {h, w}, TensorOptions{}.with_dtype(DType::uint8));
  p.name = name;
  return p;
}

}  // namespace

Pair motorcycle_pair(const std::string& data_dir, int64_t factor) {
  const fs::path dir = fs::path(data_dir) / "skimage";
  const GrayImage left = read_gray((dir / "motorcycle_left.png").string());
  const GrayImage right = read_gray((dir / "motorcycle_right.png").string());
  const TensorMap npz = io::read_npz(need_file(dir / "motorcycle_disp.npz"));
  CVG_CHECK(npz.size() == 1, "motorcycle_disp.npz: expected one array, got ", npz.size());
  const Tensor d = npz.begin()->second.to(DType::float32).contiguous();
  CVG_CHECK(d.dim() == 2 && d.size(0) == left.h && d.size(1) == left.w, "motorcycle_disp.npz: shape ", d.shape(),
            " does not match the ", left.h, " x ", left.w, " images");
  return stereo_pair(left, right, std::vector<float>(d.data<float>(), d.data<float>() + d.numel()), factor,
                     "motorcycle");
}

Pair aloe_pair(const std::string& data_dir, int64_t factor) {
  const fs::path dir = fs::path(data_dir) / "opencv";
  const GrayImage left = read_gray((dir / "aloeL.jpg").string());
  const GrayImage right = read_gray((dir / "aloeR.jpg").string());
  const Tensor gt = io::read_image(need_file(dir / "aloeGT.png"), 1).contiguous();
  CVG_CHECK(gt.size(0) == left.h && gt.size(1) == left.w, "aloeGT.png: size does not match aloeL.jpg");
  std::vector<float> disp(static_cast<size_t>(gt.numel()));
  const uint8_t* g = gt.data<uint8_t>();
  for (size_t i = 0; i < disp.size(); ++i)
    disp[i] = g[i] == 0 ? NAN : static_cast<float>(g[i]) * kAloeDisparityScale;
  return stereo_pair(left, right, disp, factor, "aloe");
}

}  // namespace cvg::deepmatch
