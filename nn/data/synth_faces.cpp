#include "nn/data/synth_faces.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/rng.h"
#include "nn/data/transforms.h"
#include "nn/io/image.h"
#include "nn/viz/draw.h"
#include "nn/viz/png.h"

namespace cvg::data {

namespace {

constexpr double kPi = 3.14159265358979323846;

// ---- small 3-D algebra ----------------------------------------------------------------------------

struct V3 {
  double x = 0, y = 0, z = 0;
};
V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
V3 operator*(double s, V3 a) { return {s * a.x, s * a.y, s * a.z}; }
V3 hadamard(V3 a, V3 b) { return {a.x * b.x, a.y * b.y, a.z * b.z}; }
double dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
V3 normalized(V3 a) { return (1.0 / std::sqrt(dot(a, a))) * a; }

// Row-major 3x3 matrix.
struct M3 {
  double m[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
};
V3 operator*(const M3& a, V3 v) {
  return {a.m[0][0] * v.x + a.m[0][1] * v.y + a.m[0][2] * v.z,
          a.m[1][0] * v.x + a.m[1][1] * v.y + a.m[1][2] * v.z,
          a.m[2][0] * v.x + a.m[2][1] * v.y + a.m[2][2] * v.z};
}
M3 operator*(const M3& a, const M3& b) {
  M3 r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r.m[i][j] = a.m[i][0] * b.m[0][j] + a.m[i][1] * b.m[1][j] + a.m[i][2] * b.m[2][j];
  return r;
}
V3 row(const M3& a, int i) { return {a.m[i][0], a.m[i][1], a.m[i][2]}; }
M3 transpose(const M3& a) {
  M3 r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r.m[i][j] = a.m[j][i];
  return r;
}
// Rotations about the head axes (x right, y down, z towards the viewer). rot_y(+) moves +z
// towards +x (yaw to image right); rot_x(+) moves +z towards -y (pitch up); rot_z(+) moves +x
// towards +y (clockwise on screen, since y points down).
M3 rot_x(double a) {
  const double c = std::cos(a), s = std::sin(a);
  M3 r;
  r.m[1][1] = c; r.m[1][2] = -s;
  r.m[2][1] = s; r.m[2][2] = c;
  return r;
}
M3 rot_y(double a) {
  const double c = std::cos(a), s = std::sin(a);
  M3 r;
  r.m[0][0] = c; r.m[0][2] = s;
  r.m[2][0] = -s; r.m[2][2] = c;
  return r;
}
M3 rot_z(double a) {
  const double c = std::cos(a), s = std::sin(a);
  M3 r;
  r.m[0][0] = c; r.m[0][1] = -s;
  r.m[1][0] = s; r.m[1][1] = c;
  return r;
}

double clamp01(double v) { return std::min(1.0, std::max(0.0, v)); }
double smoothstep(double e0, double e1, double v) {
  const double t = clamp01((v - e0) / (e1 - e0));
  return t * t * (3.0 - 2.0 * t);
}

struct Rgb {
  double r = 0, g = 0, b = 0;
};
Rgb operator*(double s, Rgb c) { return {s * c.r, s * c.g, s * c.b}; }
Rgb mix(Rgb a, Rgb b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

// ---- ellipsoids under orthographic rays -----------------------------------------------------------

// An ellipsoid {p : |D^-1 Q^T (p - c)| = 1} in camera coordinates (Q's columns are its axes,
// D = diag(radii)), prepared for the rays p(t) = (X, Y, t) that look down -z: in the unit-sphere
// frame the ray is u(t) = o0 + X ox + Y oy + t d, so a hit is one quadratic in t.
struct Ellipsoid {
  V3 o0, ox, oy, d, inv_r;
  M3 Q;
  double dd = 1, inv_dd = 1;
  // Screen-space bounding box: centre +- the half-extents sqrt(M_xx), sqrt(M_yy) of the
  // shape matrix M = Q D^2 Q^T, so rays that cannot hit skip the quadratic.
  double bx = 0, by = 0, ex = -1, ey = -1;

  Ellipsoid() = default;
  Ellipsoid(V3 centre, const M3& axes, V3 radii) : Q(axes) {
    inv_r = {1.0 / radii.x, 1.0 / radii.y, 1.0 / radii.z};
    const M3 qt = transpose(axes);
    o0 = hadamard(inv_r, qt * (-1.0 * centre));
    ox = hadamard(inv_r, qt * V3{1, 0, 0});
    oy = hadamard(inv_r, qt * V3{0, 1, 0});
    d = hadamard(inv_r, qt * V3{0, 0, 1});
    dd = dot(d, d);
    inv_dd = 1.0 / dd;
    bx = centre.x;
    by = centre.y;
    const V3 r2 = hadamard(radii, radii), qx = row(axes, 0), qy = row(axes, 1);
    ex = std::sqrt(dot(qx, hadamard(r2, qx)));
    ey = std::sqrt(dot(qy, hadamard(r2, qy)));
  }
  // The hit nearest the viewer (largest t) of the ray through (X, Y); u is the hit in the
  // unit-sphere frame.
  bool hit(double X, double Y, double& t, V3& u) const {
    if (std::abs(X - bx) > ex || std::abs(Y - by) > ey) return false;
    const V3 o = o0 + X * ox + Y * oy;
    const double b = dot(o, d), c = dot(o, o) - 1.0, disc = b * b - dd * c;
    if (disc < 0) return false;
    t = (-b + std::sqrt(disc)) * inv_dd;
    u = o + t * d;
    return true;
  }
  // Outward unit normal (camera frame) at the unit-sphere point u: the gradient Q D^-1 u.
  V3 normal(V3 u) const { return normalized(Q * hadamard(inv_r, u)); }
};

// ---- one face --------------------------------------------------------------------------------------

// Everything drawn for one example: identity, expression, appearance, pose, light, background.
// Lengths are in head units (half-height of the head = 1), head frame as in the header.
struct Face {
  double a = 0.75, c = 0.85;                        // head half-width and half-depth
  double xe = 0, ye = 0, ew = 0, eh = 0, iris_r = 0, pupil_r = 0, lid = 0;  // eyes
  double brow_gap = 0, brow_len = 0, brow_th = 0, brow_arch = 0, brow_tilt = 0;
  V3 nose_c, nose_r, nose_tip;                      // head frame
  M3 nose_axes;                                     // head frame
  double ym = 0, mw = 0, lift = 0, open_half = 0, lip_up = 0, lip_lo = 0;
  bool teeth = false;
  bool hair = false;
  double hair_top = 0, hair_side = 0;               // hairline y = -hair_top + hair_side (x / a)^2
  V3 hair_c, hair_r;                                // hair volume, head frame
  Rgb skin, hair_col, brow_col, iris_col, lip_col;
  static constexpr int kBlobs = 5;
  double blob_x[kBlobs], blob_y[kBlobs], blob_r[kBlobs], blob_amp[kBlobs];
  double blush = 0;
  double yaw = 0, pitch = 0, roll = 0;              // radians
  M3 R;                                             // head -> camera rotation
  double scale = 1, cx = 0, cy = 0;                 // pixels per head unit, head centre in pixels
  V3 light;
  double ambient = 0.4, gain = 1;
  // Background: an image index, crop window and flip, or procedural noise grids.
  int64_t bg_index = -1;
  double bg_top = 0, bg_left = 0, bg_side = 0;
  bool bg_flip = false;
  // Procedural: base colour + coarse luminance and colour noise + finer luminance noise.
  Rgb bg_base;
  double bg_amp1 = 0, bg_amp2 = 0, bg_chroma = 0;
  static constexpr int kG1 = 5, kG2 = 11;
  double g1[4][kG1 * kG1];  // [0] luminance, [1..3] per-channel colour
  double g2[kG2 * kG2];
  double pixel_noise = 0;
  uint64_t noise_key = 0;
};

// Height of the front of the head ellipsoid at head (x, y) (0 outside its outline).
double head_z(const Face& f, double x, double y) {
  return f.c * std::sqrt(std::max(0.0, 1.0 - (x / f.a) * (x / f.a) - y * y));
}

Rgb pick(const Rgb* palette, int64_t n, SampleRng& rng) {
  const Rgb base = palette[rng.randint(0, n)];
  const double j = rng.uniform(0.9, 1.1);
  return {clamp01(base.r * j), clamp01(base.g * j), clamp01(base.b * j)};
}

const Rgb kSkin[] = {{0.98, 0.86, 0.76}, {0.94, 0.77, 0.63}, {0.86, 0.65, 0.50},
                     {0.73, 0.53, 0.39}, {0.56, 0.38, 0.26}, {0.38, 0.25, 0.17}};
const Rgb kHair[] = {{0.07, 0.06, 0.05}, {0.24, 0.15, 0.08}, {0.45, 0.30, 0.16},
                     {0.85, 0.70, 0.42}, {0.60, 0.26, 0.10}, {0.66, 0.66, 0.66}};
const Rgb kIris[] = {{0.36, 0.21, 0.10}, {0.25, 0.45, 0.72}, {0.30, 0.50, 0.30},
                     {0.45, 0.50, 0.56}, {0.14, 0.09, 0.06}};

// All draws for example (seed, index), in a fixed order.
Face draw_face(uint64_t seed, int64_t index, const SynthFaceOptions& o) {
  SampleRng rng(derive_key(seed, static_cast<uint64_t>(index)));
  Face f;
  // Identity: head shape and feature layout.
  f.a = rng.uniform(0.66, 0.80);
  f.c = rng.uniform(0.78, 0.92);
  f.ye = rng.uniform(-0.10, 0.02);
  f.xe = f.a * rng.uniform(0.40, 0.50);
  f.ew = rng.uniform(0.10, 0.14);
  f.eh = f.ew * rng.uniform(0.50, 0.75);
  f.iris_r = f.ew * rng.uniform(0.40, 0.52);
  f.pupil_r = f.iris_r * rng.uniform(0.40, 0.55);
  f.lid = rng.uniform(0.015, 0.03);
  f.brow_gap = rng.uniform(0.05, 0.10);
  f.brow_len = f.ew * rng.uniform(1.0, 1.3);
  f.brow_th = rng.uniform(0.018, 0.035);
  f.brow_arch = rng.uniform(0.02, 0.05);
  f.brow_tilt = rng.uniform(-0.12, 0.12);
  // Nose: a tilted ellipsoid placed so that its most protruding point (along head z) lands at
  // the drawn tip height, just in front of the head surface.
  const double nose_len = rng.uniform(0.28, 0.38);
  const double tilt = rng.uniform(0.30, 0.55);
  f.nose_r = {rng.uniform(0.07, 0.11), rng.uniform(0.13, 0.18), rng.uniform(0.09, 0.13)};
  {
    M3 q;  // columns: x, the long axis (down and forwards), the depth axis
    q.m[0][0] = 1; q.m[0][1] = 0; q.m[0][2] = 0;
    q.m[1][0] = 0; q.m[1][1] = std::cos(tilt); q.m[1][2] = -std::sin(tilt);
    q.m[2][0] = 0; q.m[2][1] = std::sin(tilt); q.m[2][2] = std::cos(tilt);
    f.nose_axes = q;
    // argmax of z over the ellipsoid: centre + M e_z / sqrt(e_z' M e_z), M = Q D^2 Q'.
    const V3 r2 = hadamard(f.nose_r, f.nose_r);
    const V3 qz = row(q, 2);
    const V3 Mez = q * hadamard(r2, qz);
    const V3 off = (1.0 / std::sqrt(dot(qz, hadamard(r2, qz)))) * Mez;
    const double tip_y = f.ye + nose_len;
    const double cy = tip_y - off.y;
    // The centre sits inside the head so the nose grows out of the face; the tip sticks out by
    // off.z - depth_in in front of the surface.
    const double cz = head_z(f, 0.0, cy) - rng.uniform(0.25, 0.45) * f.nose_r.z;
    f.nose_c = {0.0, cy, cz};
    f.nose_tip = f.nose_c + off;
  }
  // Expression: smile widens the mouth and raises the corners, opening parts the lips.
  const double smile = rng.uniform(0.0, 1.0);
  const double opening = rng.uniform(0.0, 1.0);
  f.ym = f.nose_tip.y + rng.uniform(0.20, 0.28);
  f.mw = rng.uniform(0.19, 0.26) * (1.0 + 0.2 * smile);
  f.lift = 0.05 * smile - 0.015;
  f.open_half = 0.06 * opening * opening;
  f.lip_up = rng.uniform(0.035, 0.055);
  f.lip_lo = rng.uniform(0.045, 0.07);
  f.teeth = f.open_half > 0.02 && rng.bernoulli(0.6);
  // Hair.
  f.hair = rng.bernoulli(0.85);
  f.hair_top = rng.uniform(0.42, 0.62);
  f.hair_side = rng.uniform(0.25, 0.65);
  f.hair_c = {0.0, -rng.uniform(0.05, 0.15), -f.c * rng.uniform(0.22, 0.35)};
  f.hair_r = {f.a * rng.uniform(1.05, 1.18), rng.uniform(1.0, 1.08), f.c * rng.uniform(0.95, 1.05)};
  // Appearance.
  {
    const double t = rng.uniform(0.0, 5.0);
    const int k = std::min(4, static_cast<int>(t));
    const Rgb base = mix(kSkin[k], kSkin[k + 1], t - k);
    f.skin = {clamp01(base.r * rng.uniform(0.95, 1.05)), clamp01(base.g * rng.uniform(0.95, 1.05)),
              clamp01(base.b * rng.uniform(0.95, 1.05))};
  }
  f.hair_col = pick(kHair, 6, rng);
  f.brow_col = f.hair ? mix(f.hair_col, Rgb{0.1, 0.07, 0.05}, 0.4) : Rgb{0.2, 0.13, 0.08};
  f.iris_col = pick(kIris, 5, rng);
  f.lip_col = mix(f.skin, Rgb{0.72, 0.22, 0.28}, rng.uniform(0.35, 0.7));
  for (int i = 0; i < Face::kBlobs; ++i) {
    f.blob_x[i] = rng.uniform(-f.a, f.a);
    f.blob_y[i] = rng.uniform(-0.9, 0.9);
    f.blob_r[i] = rng.uniform(0.25, 0.7);
    f.blob_amp[i] = rng.uniform(-0.08, 0.08);
  }
  f.blush = rng.uniform(0.0, 0.25);
  // Pose and placement.
  const double deg = kPi / 180.0;
  f.yaw = rng.uniform(-o.max_yaw_deg, o.max_yaw_deg) * deg;
  f.pitch = rng.uniform(-o.max_pitch_deg, o.max_pitch_deg) * deg;
  f.roll = rng.uniform(-o.max_roll_deg, o.max_roll_deg) * deg;
  f.R = rot_z(f.roll) * rot_y(f.yaw) * rot_x(f.pitch);
  const double n = static_cast<double>(o.size);
  f.scale = rng.uniform(o.scale_min, o.scale_max) * n / 2.0;
  // The head centre sits 0.15 head units above the image centre so that the eyes-to-mouth
  // region, not the whole head, is centred.
  f.cx = (n - 1) / 2.0 + rng.uniform(-o.max_shift, o.max_shift) * n;
  f.cy = (n - 1) / 2.0 + rng.uniform(-o.max_shift, o.max_shift) * n - 0.15 * f.scale;
  // Light: mostly from the front, from a random side and height.
  f.light = normalized(V3{rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.2), 1.0});
  f.ambient = rng.uniform(0.3, 0.5);
  f.gain = rng.uniform(0.85, 1.15);
  // Background.
  if (!o.backgrounds.empty()) {
    f.bg_index = rng.randint(0, static_cast<int64_t>(o.backgrounds.size()));
    const Tensor& bg = o.backgrounds[f.bg_index];
    const double h = static_cast<double>(bg.size(1)), w = static_cast<double>(bg.size(2));
    f.bg_side = rng.uniform(0.25, 1.0) * std::min(h, w);
    f.bg_top = rng.uniform(0.0, h - f.bg_side);
    f.bg_left = rng.uniform(0.0, w - f.bg_side);
    f.bg_flip = rng.bernoulli(0.5);
  } else {
    f.bg_base = {rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)};
    f.bg_amp1 = rng.uniform(0.2, 0.6);
    f.bg_amp2 = rng.uniform(0.05, 0.25);
    f.bg_chroma = rng.uniform(0.1, 0.4);
    for (auto& grid : f.g1)
      for (double& v : grid) v = rng.uniform();
    for (double& v : f.g2) v = rng.uniform();
  }
  f.pixel_noise = rng.uniform(0.0, o.max_pixel_noise);
  f.noise_key = derive_key(rng.key(), 0x6e6f697365ull);  // a second stream for per-pixel noise
  return f;
}

// Head frame -> output pixels.
V3 project(const Face& f, V3 p) {
  const V3 q = f.R * p;
  return {f.cx + f.scale * q.x, f.cy + f.scale * q.y, q.z};
}

// The five landmarks (head frame), MAFL order.
std::array<V3, 5> landmarks_3d(const Face& f) {
  const double yc = f.ym - f.lift;  // the lip centre line at the corners
  return {V3{-f.xe, f.ye, head_z(f, -f.xe, f.ye)}, V3{f.xe, f.ye, head_z(f, f.xe, f.ye)}, f.nose_tip,
          V3{-f.mw, yc, head_z(f, -f.mw, yc)}, V3{f.mw, yc, head_z(f, f.mw, yc)}};
}

// ---- shading -----------------------------------------------------------------------------------------

// One interpolation position along an axis: the lower sample index and the weight of the next.
struct Tap {
  int64_t i0;
  double t;
};

// The background of one image on the supersample grid. The interpolation positions depend on
// the column alone or the row alone, so they are computed once per column and per row and a
// sample costs a few multiply-adds.
class Backdrop {
 public:
  Backdrop(const Face& f, const SynthFaceOptions& o) : f_(f) {
    const int64_t big = o.size * o.supersample;
    if (f.bg_index >= 0) {
      const Tensor& bg = o.backgrounds[f.bg_index];
      h_ = bg.size(1);
      w_ = bg.size(2);
      img_ = bg.data<float>();
      // Sample b of the crop sits at (b + 0.5) / big of the window, bilinear, edges clamped.
      auto taps = [&](double start, bool flip, int64_t len) {
        std::vector<Tap> out(static_cast<size_t>(big));
        for (int64_t b = 0; b < big; ++b) {
          const double u = (b + 0.5) / static_cast<double>(big);
          const double s = std::clamp(start + (flip ? 1.0 - u : u) * f.bg_side - 0.5, 0.0, static_cast<double>(len - 1));
          const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(s), len - 2);
          out[b] = {i0, s - static_cast<double>(i0)};
        }
        return out;
      };
      cols_ = taps(f.bg_left, f.bg_flip, w_);
      rows_ = taps(f.bg_top, false, h_);
    } else {
      // Value noise: smoothstep interpolation on g x g lattices spanning the image.
      auto taps = [&](int g) {
        std::vector<Tap> out(static_cast<size_t>(big));
        for (int64_t b = 0; b < big; ++b) {
          const double x = (b + 0.5) / static_cast<double>(big) * (g - 1);
          const int64_t i0 = std::min<int64_t>(g - 2, static_cast<int64_t>(x));
          out[b] = {i0, smoothstep(0.0, 1.0, x - static_cast<double>(i0))};
        }
        return out;
      };
      cols_ = taps(Face::kG1);
      rows_ = taps(Face::kG1);
      cols2_ = taps(Face::kG2);
      rows2_ = taps(Face::kG2);
    }
  }

  Rgb at(int64_t row, int64_t col) const {
    const Tap ty = rows_[row], tx = cols_[col];
    if (img_) {
      double out[3];
      for (int ch = 0; ch < 3; ++ch) out[ch] = bilinear(img_ + ch * h_ * w_, w_, ty, tx);
      return {out[0], out[1], out[2]};
    }
    const Tap ty2 = rows2_[row], tx2 = cols2_[col];
    const double lum = f_.bg_amp1 * (bilinear(f_.g1[0], Face::kG1, ty, tx) - 0.5) +
                       f_.bg_amp2 * (bilinear(f_.g2, Face::kG2, ty2, tx2) - 0.5);
    const double k = f_.bg_amp1 * f_.bg_chroma;
    return {clamp01(f_.bg_base.r + lum + k * (bilinear(f_.g1[1], Face::kG1, ty, tx) - 0.5)),
            clamp01(f_.bg_base.g + lum + k * (bilinear(f_.g1[2], Face::kG1, ty, tx) - 0.5)),
            clamp01(f_.bg_base.b + lum + k * (bilinear(f_.g1[3], Face::kG1, ty, tx) - 0.5))};
  }

 private:
  template <typename T>
  static double bilinear(const T* grid, int64_t w, Tap ty, Tap tx) {
    const T* p = grid + ty.i0 * w + tx.i0;
    const double top = p[0] + (p[1] - p[0]) * tx.t, bot = p[w] + (p[w + 1] - p[w]) * tx.t;
    return top + (bot - top) * ty.t;
  }

  const Face& f_;
  const float* img_ = nullptr;
  int64_t h_ = 0, w_ = 0;
  std::vector<Tap> cols_, rows_, cols2_, rows2_;
};

// The scene of one face, in camera coordinates (head units, head centre at the origin).
struct Scene {
  Ellipsoid head, nose, hair, neck, ears[2];
  M3 Rt;  // camera -> head rotation
};

Scene make_scene(const Face& f) {
  Scene s;
  s.head = Ellipsoid(V3{}, f.R, V3{f.a, 1.0, f.c});
  s.nose = Ellipsoid(f.R * f.nose_c, f.R * f.nose_axes, f.nose_r);
  if (f.hair) s.hair = Ellipsoid(f.R * f.hair_c, f.R, f.hair_r);
  s.neck = Ellipsoid(f.R * V3{0.0, 0.9, -0.3 * f.c}, f.R, V3{0.42 * f.a, 0.65, 0.5 * f.c});
  for (int side = 0; side < 2; ++side)
    s.ears[side] = Ellipsoid(f.R * V3{(side ? 1.0 : -1.0) * f.a, f.ye + 0.12, -0.15 * f.c}, f.R,
                             V3{0.07, 0.16, 0.12});
  s.Rt = transpose(f.R);
  return s;
}

double lambert(const Face& f, V3 n) { return f.ambient + (1.0 - f.ambient) * std::max(0.0, dot(n, f.light)); }

// A smooth bump of radius r: (1 - d^2/r^2)^2 inside, 0 outside (a compact, exp-free stand-in
// for a Gaussian; this runs for every skin sample).
double bump(double dx, double dy, double r) {
  const double q = (dx * dx + dy * dy) / (r * r);
  return q < 1.0 ? (1.0 - q) * (1.0 - q) : 0.0;
}

// Skin albedo at head point (x, y): blotches and cheek blush.
Rgb skin_at(const Face& f, double x, double y) {
  double m = 1.0;
  for (int i = 0; i < Face::kBlobs; ++i) m += f.blob_amp[i] * bump(x - f.blob_x[i], y - f.blob_y[i], f.blob_r[i]);
  const double cheek_y = f.nose_tip.y - 0.02, cheek_x = 0.5 * f.a;
  const double blush = f.blush * (bump(x + cheek_x, y - cheek_y, 0.22) + bump(x - cheek_x, y - cheek_y, 0.22));
  return mix(m * f.skin, Rgb{0.85, 0.30, 0.30}, blush);
}

// Albedo of the head surface at head point (x, y): skin with the painted features. `flat` is
// set for features that should take only half the shading (eye whites, irises), which keeps
// them readable under side light.
Rgb head_albedo(const Face& f, double x, double y, bool& flat) {
  flat = false;
  // Eyes: the white, iris and pupil, with a dark lid outline around the white.
  const double side = x < 0 ? -1.0 : 1.0;
  const double ex = x - side * f.xe, ey = y - f.ye;  // relative to this side's eye centre
  const double rho = std::sqrt((ex / f.ew) * (ex / f.ew) + (ey / f.eh) * (ey / f.eh));
  if (rho < 1.0) {
    flat = true;
    const double r = std::sqrt(ex * ex + ey * ey);
    if (r < f.pupil_r) return Rgb{0.03, 0.03, 0.03};
    if (r < f.iris_r) return mix(f.iris_col, 0.6 * f.iris_col, (r - f.pupil_r) / (f.iris_r - f.pupil_r));
    return Rgb{0.95, 0.95, 0.92};
  }
  if (rho < 1.0 + f.lid / f.eh) return Rgb{0.12, 0.07, 0.05};
  // Brows: an arched band above each eye, thicker in the middle, tilted by brow_tilt (positive
  // raises the outer ends).
  const double bx = side * ex;  // outwards from the eye centre
  if (std::abs(bx) < f.brow_len) {
    const double t = bx / f.brow_len;
    const double centre = f.ye - f.eh - f.brow_gap + f.brow_arch * t * t - f.brow_tilt * bx;
    if (std::abs(y - centre) < f.brow_th * std::sqrt(1.0 - t * t)) return f.brow_col;
  }
  // Mouth: lips between two arcs that meet at the corners; the dark opening (with teeth at
  // the top when drawn) between the lips.
  if (std::abs(x) < f.mw) {
    // Lip thickness profile: 1 in the middle, 0 at the corners, fuller than a parabola.
    const double t = x / f.mw, u = 1.0 - t * t, w = u * (1.6 - 0.6 * u);
    const double yc = f.ym - f.lift * t * t;
    const double dy = y - yc;
    if (dy > -(f.open_half + f.lip_up) * w && dy < (f.open_half + f.lip_lo) * w) {
      if (std::abs(dy) < f.open_half * w) {
        if (f.teeth && dy < 0.0 && dy > -0.8 * f.open_half * w) return Rgb{0.93, 0.92, 0.86};
        return Rgb{0.28, 0.05, 0.07};
      }
      return f.lip_col;
    }
  }
  Rgb skin = skin_at(f, x, y);
  // Hair cap over the top and sides of the head.
  if (f.hair && y < -f.hair_top + f.hair_side * (x / f.a) * (x / f.a)) return f.hair_col;
  return skin;
}

// Colour of the ray through camera (X, Y); background when it hits nothing.
Rgb shade(const Face& f, const Scene& s, double X, double Y, bool& hit_any) {
  double best = -std::numeric_limits<double>::infinity(), t;
  int which = -1;  // 0 head, 1 nose, 2 hair, 3 neck, 4 and 5 ears
  V3 u, ub;
  if (s.head.hit(X, Y, t, u) && t > best) { best = t; which = 0; ub = u; }
  if (s.nose.hit(X, Y, t, u) && t > best) { best = t; which = 1; ub = u; }
  if (f.hair && s.hair.hit(X, Y, t, u) && t > best) { best = t; which = 2; ub = u; }
  if (s.neck.hit(X, Y, t, u) && t > best) { best = t; which = 3; ub = u; }
  for (int side = 0; side < 2; ++side)
    if (s.ears[side].hit(X, Y, t, u) && t > best) { best = t; which = 4 + side; ub = u; }
  hit_any = which >= 0;
  if (which < 0) return {};
  if (which == 0) {
    const V3 n = s.head.normal(ub);
    // ub is the unit-sphere point; head coordinates scale it by the radii.
    bool flat;
    const Rgb albedo = head_albedo(f, f.a * ub.x, ub.y, flat);
    const double l = lambert(f, n);
    return (f.gain * (flat ? 0.5 + 0.5 * l : l)) * albedo;
  }
  if (which == 1) {
    const V3 n = s.nose.normal(ub);
    const V3 nh = s.Rt * n;  // head-frame normal: darker underside (nostrils' shadow)
    double l = lambert(f, n);
    l *= 0.55 + 0.45 * smoothstep(0.0, 0.4, n.z);  // rim towards the silhouette
    l *= 1.0 - 0.55 * smoothstep(0.2, 0.7, nh.y);
    const V3 hp = f.nose_c + f.nose_axes * hadamard(f.nose_r, ub);
    return (f.gain * l) * skin_at(f, hp.x, hp.y);
  }
  if (which == 2) return (f.gain * lambert(f, s.hair.normal(ub))) * f.hair_col;
  if (which == 3) return (0.75 * f.gain * lambert(f, s.neck.normal(ub))) * f.skin;
  // Ears: skin a little redder than the face, darker towards the middle (the ear's hollow).
  const double hollow = 1.0 - 0.45 * smoothstep(0.4, 0.9, ub.z);
  return (0.85 * hollow * f.gain * lambert(f, s.ears[which - 4].normal(ub))) * mix(f.skin, Rgb{0.8, 0.4, 0.35}, 0.2);
}

// Four approximately standard normal values from one Philox call: each is the sum of the four
// bytes of one output word (Irwin-Hall, tails cut at +-3.5 sd), centred and scaled to unit
// variance. Pixel noise needs no exact tails, and this avoids a log and a sine per value.
std::array<double, 4> four_normals(uint64_t key, uint64_t counter) {
  const Philox4 w = philox4x32_10(key, counter);
  // A byte is uniform on 0..255: mean 127.5, variance (256^2 - 1) / 12; four of them summed.
  const double sd = std::sqrt(4.0 * (256.0 * 256.0 - 1.0) / 12.0);
  std::array<double, 4> z;
  for (int i = 0; i < 4; ++i) {
    const uint32_t v = w.w[i];
    const double sum = (v & 0xFF) + ((v >> 8) & 0xFF) + ((v >> 16) & 0xFF) + (v >> 24);
    z[i] = (sum - 510.0) / sd;
  }
  return z;
}

void check_options(const SynthFaceOptions& o) {
  CVG_CHECK(o.size >= 8, "SynthFaces: options.size must be at least 8, got ", o.size);
  CVG_CHECK(o.supersample >= 1 && o.supersample <= 16, "SynthFaces: options.supersample must be in [1, 16], got ",
            o.supersample);
  for (const auto& [name, v] : {std::pair<const char*, double>{"max_yaw_deg", o.max_yaw_deg},
                                {"max_pitch_deg", o.max_pitch_deg}, {"max_roll_deg", o.max_roll_deg}})
    CVG_CHECK(v >= 0 && v <= 90, "SynthFaces: options.", name, " must be in [0, 90], got ", v);
  CVG_CHECK(o.scale_min > 0 && o.scale_min <= o.scale_max && o.scale_max <= 4,
            "SynthFaces: options.scale_min and scale_max must satisfy 0 < scale_min <= scale_max <= 4, got ",
            o.scale_min, " and ", o.scale_max);
  CVG_CHECK(o.max_shift >= 0 && o.max_shift <= 0.5, "SynthFaces: options.max_shift must be in [0, 0.5], got ",
            o.max_shift);
  CVG_CHECK(o.max_pixel_noise >= 0 && o.max_pixel_noise <= 1,
            "SynthFaces: options.max_pixel_noise must be in [0, 1], got ", o.max_pixel_noise);
}

// Box-downsamples a uint8 HWC image by an integer factor (the remainder rows/columns dropped)
// into float CHW in [0, 1].
Tensor downsample_to_chw(const Tensor& hwc, int64_t factor) {
  const int64_t h = hwc.size(0), w = hwc.size(1), oh = h / factor, ow = w / factor;
  Tensor out = Tensor::empty({3, oh, ow});
  const uint8_t* in = hwc.data<uint8_t>();
  float* o = out.data<float>();
  const double norm = 1.0 / (255.0 * factor * factor);
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t x = 0; x < ow; ++x)
      for (int64_t k = 0; k < 3; ++k) {
        double sum = 0;
        for (int64_t dy = 0; dy < factor; ++dy)
          for (int64_t dx = 0; dx < factor; ++dx) sum += in[((y * factor + dy) * w + x * factor + dx) * 3 + k];
        o[(k * oh + y) * ow + x] = static_cast<float>(sum * norm);
      }
  return out;
}

}  // namespace

const std::array<const char*, 5>& synth_face_landmark_names() {
  static const std::array<const char*, 5> names = {"left_eye", "right_eye", "nose_tip", "left_mouth_corner",
                                                   "right_mouth_corner"};
  return names;
}

std::vector<Tensor> load_backgrounds(const std::string& dir, int64_t min_side, int64_t max_side) {
  namespace fs = std::filesystem;
  CVG_CHECK(min_side >= 2 && max_side >= min_side, "load_backgrounds: need 2 <= min_side <= max_side, got ",
            min_side, " and ", max_side);
  std::error_code ec;
  CVG_CHECK(fs::is_directory(dir, ec), "load_backgrounds: '", dir, "' is not a folder");
  static const char* exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".tga"};
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (std::find(std::begin(exts), std::end(exts), ext) != std::end(exts)) files.push_back(it->path().string());
  }
  CVG_CHECK(!ec, "load_backgrounds: cannot list '", dir, "': ", ec.message());
  std::sort(files.begin(), files.end());
  std::vector<Tensor> out;
  for (const std::string& file : files) {
    Tensor hwc;
    try {
      hwc = io::read_image(file, 3).contiguous();
    } catch (const Error&) {
      continue;  // undecodable (e.g. a deliberately truncated test image): not a background
    }
    const int64_t h = hwc.size(0), w = hwc.size(1);
    if (std::min(h, w) < min_side) continue;
    const int64_t factor = (std::max(h, w) + max_side - 1) / max_side;
    out.push_back(downsample_to_chw(hwc, factor));
  }
  CVG_CHECK(!out.empty(), "load_backgrounds: no usable image in '", dir, "' (", files.size(),
            " image files; an image needs a decodable file and a shorter side of at least ", min_side, " px)");
  return out;
}

SynthFaces::SynthFaces(int64_t count, uint64_t seed, SynthFaceOptions options)
    : count_(count), seed_(seed), options_(std::move(options)) {
  CVG_CHECK(count >= 0, "SynthFaces: count must be non-negative, got ", count);
  check_options(options_);
  for (size_t i = 0; i < options_.backgrounds.size(); ++i) {
    Tensor& bg = options_.backgrounds[i];
    CVG_CHECK(bg.defined() && bg.dim() == 3 && bg.size(0) == 3 && bg.size(1) >= 2 && bg.size(2) >= 2,
              "SynthFaces: options.backgrounds[", i, "] must be a 3 x H x W image with H, W >= 2, got ",
              bg.defined() ? str_cat(bg.shape()) : std::string("an undefined tensor"));
    CVG_CHECK(is_floating(bg.dtype()), "SynthFaces: options.backgrounds[", i, "] must be float, got ",
              dtype_name(bg.dtype()));
    CVG_CHECK(bg.device().is_cpu(), "SynthFaces: options.backgrounds[", i, "] must be on the CPU, got ",
              bg.device().str());
    bg = bg.detach().to(DType::float32).contiguous();
  }
}

SynthFacePose SynthFaces::pose(int64_t index) const {
  CVG_CHECK(index >= 0 && index < count_, "SynthFaces::pose: index ", index, " out of range [0, ", count_, ")");
  const Face f = draw_face(seed_, index, options_);
  const double deg = 180.0 / kPi;
  return {f.yaw * deg, f.pitch * deg, f.roll * deg};
}

Example SynthFaces::get(int64_t index) const {
  CVG_CHECK(index >= 0 && index < count_, "SynthFaces::get: index ", index, " out of range [0, ", count_, ")");
  const SynthFaceOptions& o = options_;
  const Face f = draw_face(seed_, index, o);
  const Scene scene = make_scene(f);
  const int64_t n = o.size, ss = o.supersample, big = n * ss;
  const Backdrop backdrop(f, o);

  // Render at supersample resolution, accumulating straight into the output-pixel box sums.
  std::vector<double> acc(static_cast<size_t>(3 * n * n), 0.0);
  std::vector<double> X(static_cast<size_t>(big));  // camera x of each sample column
  for (int64_t b = 0; b < big; ++b) X[b] = (((b + 0.5) / ss - 0.5) - f.cx) / f.scale;
  for (int64_t a = 0; a < big; ++a) {
    const double y = (a + 0.5) / ss - 0.5;  // output-pixel coordinates of this sample row
    const double Y = (y - f.cy) / f.scale;
    double* row = acc.data() + (a / ss) * n;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t b = j * ss; b < (j + 1) * ss; ++b) {
        bool hit;
        Rgb c = shade(f, scene, X[b], Y, hit);
        if (!hit) c = backdrop.at(a, b);
        row[j] += clamp01(c.r);
        row[n * n + j] += clamp01(c.g);
        row[2 * n * n + j] += clamp01(c.b);
      }
  }
  const int64_t channels = o.rgb ? 3 : 1;
  Tensor image = Tensor::empty({channels, n, n});
  float* out = image.data<float>();
  const double inv = 1.0 / static_cast<double>(ss * ss);
  for (int64_t p = 0; p < n * n; ++p) {
    const double r = acc[p] * inv, g = acc[n * n + p] * inv, bl = acc[2 * n * n + p] * inv;
    const double vals[3] = {r, g, bl};
    for (int64_t k = 0; k < channels; ++k)
      out[k * n * n + p] = static_cast<float>(o.rgb ? vals[k] : 0.299 * r + 0.587 * g + 0.114 * bl);
  }
  if (f.pixel_noise > 0) {
    // Value v of the output gets normal(v / 4)[v % 4] * sigma, with four normals per Philox call.
    const int64_t total = channels * n * n;
    for (int64_t q = 0; q < total; q += 4) {
      const std::array<double, 4> z = four_normals(f.noise_key, static_cast<uint64_t>(q / 4));
      for (int64_t k = 0; k < 4 && q + k < total; ++k)
        out[q + k] = static_cast<float>(clamp01(out[q + k] + f.pixel_noise * z[k]));
    }
  }

  Tensor target = Tensor::empty({5, 2});
  float* t = target.data<float>();
  const std::array<V3, 5> pts = landmarks_3d(f);
  for (int i = 0; i < 5; ++i) {
    const V3 q = project(f, pts[i]);
    t[2 * i] = static_cast<float>(q.x);
    t[2 * i + 1] = static_cast<float>(q.y);
  }
  return {image, target};
}

void write_synth_face_preview(const std::string& png_path, uint64_t seed, int64_t count, SynthFaceOptions options) {
  CVG_CHECK(count >= 1, "write_synth_face_preview: count must be positive, got ", count);
  const SynthFaces faces(count, seed, std::move(options));
  const int64_t n = faces.options().size;
  const int64_t zoom = std::max<int64_t>(1, (128 + n - 1) / n);
  TensorList cells;
  for (int64_t i = 0; i < count; ++i) {
    const Example ex = faces.get(i);
    const Tensor small = viz::to_rgb(ex.input);  // uint8 [n, n, 3]
    Tensor cell = Tensor::empty({n * zoom, n * zoom, 3}, TensorOptions{}.with_dtype(DType::uint8));
    const uint8_t* src = small.data<uint8_t>();
    uint8_t* dst = cell.data<uint8_t>();
    for (int64_t y = 0; y < n * zoom; ++y)
      for (int64_t x = 0; x < n * zoom; ++x)
        for (int64_t k = 0; k < 3; ++k) dst[(y * n * zoom + x) * 3 + k] = src[((y / zoom) * n + x / zoom) * 3 + k];
    const std::vector<float> xy = ex.target.to_vector<float>();
    for (int64_t k = 0; k < 5; ++k) {
      // Output pixel j spans canvas pixels [j zoom, (j + 1) zoom), centred at (j + 0.5) zoom - 0.5.
      const double cxk = (xy[2 * k] + 0.5) * zoom - 0.5, cyk = (xy[2 * k + 1] + 0.5) * zoom - 0.5;
      viz::draw_cross(cell, cxk, cyk, viz::palette(k), static_cast<int>(std::max<int64_t>(2, zoom)));
    }
    cells.push_back(cell);
  }
  viz::write_png(png_path, viz::make_grid(cells, 0, 2, viz::kWhite));
}

}  // namespace cvg::data
