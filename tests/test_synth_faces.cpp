// SynthFaces: determinism per (seed, index), shapes and ranges, landmark geometry (inside the
// image, anatomical order, yaw direction, left-right symmetry when frontal), the image agreeing
// with the landmarks (dark pupils at the eye centres, face pixels at every landmark),
// backgrounds, load_backgrounds, option errors and the preview PNG.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <thread>

#include "nn/data/synth_faces.h"
#include "nn/io/image.h"
#include "nn/viz/png.h"
#include "support/test_utils.h"

using namespace cvg;
using namespace cvg::data;
using Catch::Matchers::Contains;

namespace {

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

struct Pt {
  double x, y;
};
std::array<Pt, 5> points(const Example& ex) {
  const std::vector<float> v = values(ex.target);
  std::array<Pt, 5> p;
  for (int i = 0; i < 5; ++i) p[i] = {v[2 * i], v[2 * i + 1]};
  return p;
}

// Luma of pixel (row, col) of a C x H x W image (C = 1 or 3).
double luma_at(const Tensor& img, int64_t row, int64_t col) {
  const int64_t h = img.size(1), w = img.size(2);
  const float* p = img.data<float>();
  if (img.size(0) == 1) return p[row * w + col];
  const int64_t plane = h * w, i = row * w + col;
  return 0.299 * p[i] + 0.587 * p[plane + i] + 0.114 * p[2 * plane + i];
}

int64_t nearest(double v) { return static_cast<int64_t>(std::floor(v + 0.5)); }

}  // namespace

TEST_CASE("SynthFaces is deterministic per (seed, index)", "[data][synth_faces]") {
  const SynthFaces a(10, 7), b(10, 7), other_seed(10, 8);
  const Example x = a.get(3), y = b.get(3);
  CHECK(values(x.input) == values(y.input));
  CHECK(values(x.target) == values(y.target));
  // The same example again from the same object (no hidden state advanced by get).
  CHECK(values(a.get(3).input) == values(x.input));
  CHECK(values(a.get(4).input) != values(x.input));
  CHECK(values(a.get(4).target) != values(x.target));
  CHECK(values(other_seed.get(3).input) != values(x.input));
  CHECK(values(other_seed.get(3).target) != values(x.target));
}

TEST_CASE("SynthFaces gives the same examples from concurrent threads", "[data][synth_faces]") {
  // The loader calls get() from a background thread: no shared mutable state may leak between
  // calls, so two threads generating interleaved indices reproduce the sequential results.
  const SynthFaces faces(16, 21);
  std::vector<std::vector<float>> sequential(16), threaded(16);
  for (int64_t i = 0; i < 16; ++i) sequential[i] = values(faces.get(i).input);
  auto work = [&](int64_t first) {
    for (int64_t i = first; i < 16; i += 2) threaded[i] = values(faces.get(i).input);
  };
  std::thread t0(work, 0), t1(work, 1);
  t0.join();
  t1.join();
  for (int64_t i = 0; i < 16; ++i) CHECK(threaded[i] == sequential[i]);
}

TEST_CASE("SynthFaces shapes and value range, rgb and gray", "[data][synth_faces]") {
  SynthFaceOptions o;
  o.size = 40;
  o.max_pixel_noise = 0;
  const SynthFaces rgb(6, 1, o);
  o.rgb = false;
  const SynthFaces gray(6, 1, o);
  CHECK(rgb.size() == 6);
  for (int64_t i = 0; i < 6; ++i) {
    const Example c = rgb.get(i), g = gray.get(i);
    CHECK(c.input.shape() == Shape{3, 40, 40});
    CHECK(g.input.shape() == Shape{1, 40, 40});
    CHECK(c.input.dtype() == DType::float32);
    CHECK(c.target.shape() == Shape{5, 2});
    CHECK(c.target.dtype() == DType::float32);
    for (float v : values(c.input)) REQUIRE((v >= 0.0f && v <= 1.0f));
    // Same draws, same geometry: the gray image is the luma of the colour one (no pixel noise
    // here) and the landmarks are identical.
    CHECK(values(c.target) == values(g.target));
    double worst = 0;
    for (int64_t r = 0; r < 40; ++r)
      for (int64_t q = 0; q < 40; ++q) worst = std::max(worst, std::abs(luma_at(c.input, r, q) - luma_at(g.input, r, q)));
    CHECK(worst < 1e-5);
  }
  // The image has structure, not one flat colour.
  const std::vector<float> v = values(rgb.get(0).input);
  CHECK(*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()) > 0.3f);
}

TEST_CASE("SynthFaces landmarks lie inside the image in anatomical order", "[data][synth_faces]") {
  const int64_t n = 200;
  SECTION("default poses (roll up to 15 degrees)") {
    const SynthFaces faces(n, 11);
    for (int64_t i = 0; i < n; ++i) {
      const auto p = points(faces.get(i));
      for (const Pt& q : p) {
        REQUIRE(q.x >= 0.0);
        REQUIRE(q.x <= 47.0);
        REQUIRE(q.y >= 0.0);
        REQUIRE(q.y <= 47.0);
      }
      REQUIRE(p[kSynthFaceLeftEye].x < p[kSynthFaceRightEye].x);
      REQUIRE(p[3].x < p[4].x);
      // Inter-ocular distance: a face, not a speck (eyes >= 6 px apart at 48 px).
      REQUIRE(std::hypot(p[1].x - p[0].x, p[1].y - p[0].y) > 6.0);
    }
  }
  SECTION("no roll: eyes above the nose tip above the mouth corners") {
    SynthFaceOptions o;
    o.max_roll_deg = 0;
    const SynthFaces faces(n, 12, o);
    for (int64_t i = 0; i < n; ++i) {
      const auto p = points(faces.get(i));
      const double eyes_low = std::max(p[0].y, p[1].y), mouth_high = std::min(p[3].y, p[4].y);
      REQUIRE(eyes_low < p[2].y);
      REQUIRE(p[2].y < mouth_high);
      // The nose tip lies between the mouth corners horizontally within |yaw| <= 30 degrees.
      REQUIRE(p[3].x < p[2].x);
      REQUIRE(p[2].x < p[4].x);
    }
  }
}

TEST_CASE("SynthFaces frontal faces are left-right symmetric; yaw moves the nose tip", "[data][synth_faces]") {
  SynthFaceOptions o;
  o.max_pitch_deg = 0;
  o.max_roll_deg = 0;
  SECTION("yaw 0: nose tip on the vertical through the eye and mouth midpoints") {
    o.max_yaw_deg = 0;
    const SynthFaces faces(50, 3, o);
    for (int64_t i = 0; i < 50; ++i) {
      const auto p = points(faces.get(i));
      CHECK(std::abs(p[2].x - 0.5 * (p[0].x + p[1].x)) < 1e-3);
      CHECK(std::abs(p[2].x - 0.5 * (p[3].x + p[4].x)) < 1e-3);
      CHECK(std::abs(p[0].y - p[1].y) < 1e-3);
      CHECK(std::abs(p[3].y - p[4].y) < 1e-3);
    }
  }
  SECTION("positive yaw moves the nose tip right of the eye midpoint, negative left") {
    const SynthFaces faces(200, 4, o);
    int64_t checked = 0;
    double correlation = 0, yaw_sq = 0, shift_sq = 0;
    for (int64_t i = 0; i < 200; ++i) {
      const SynthFacePose pose = faces.pose(i);
      CHECK(std::abs(pose.pitch_deg) == 0.0);
      CHECK(std::abs(pose.roll_deg) == 0.0);
      CHECK(std::abs(pose.yaw_deg) <= 30.0);
      const auto p = points(faces.get(i));
      const double shift = p[2].x - 0.5 * (p[0].x + p[1].x);
      if (std::abs(pose.yaw_deg) > 2.0) {
        ++checked;
        REQUIRE((shift > 0) == (pose.yaw_deg > 0));
      }
      correlation += shift * pose.yaw_deg;
      yaw_sq += pose.yaw_deg * pose.yaw_deg;
      shift_sq += shift * shift;
    }
    CHECK(checked > 150);
    CHECK(correlation / std::sqrt(yaw_sq * shift_sq) > 0.9);
  }
}

TEST_CASE("SynthFaces images agree with their landmarks", "[data][synth_faces]") {
  SynthFaceOptions o;
  o.max_pixel_noise = 0;
  // A pure blue background: no face colour comes close, so "not blue" means "on the face".
  o.backgrounds = {full({3, 30, 40}, 0.0)};
  {
    float* p = o.backgrounds[0].data<float>();
    for (int64_t i = 0; i < 30 * 40; ++i) p[2 * 30 * 40 + i] = 1.0f;
  }
  const SynthFaces faces(100, 5, o);
  double pupil = 0, between = 0;
  for (int64_t i = 0; i < 100; ++i) {
    const Example ex = faces.get(i);
    const auto p = points(ex);
    const float* img = ex.input.data<float>();
    // Every landmark pixel is a face pixel (not the blue background).
    for (const Pt& q : p) {
      const int64_t r = nearest(q.y), c = nearest(q.x);
      const double blue = img[2 * 48 * 48 + r * 48 + c], red = img[r * 48 + c];
      REQUIRE(!(blue > 0.95 && red < 0.05));
    }
    for (int e : {kSynthFaceLeftEye, kSynthFaceRightEye}) pupil += luma_at(ex.input, nearest(p[e].y), nearest(p[e].x));
    between += luma_at(ex.input, nearest(0.5 * (p[0].y + p[1].y)), nearest(0.5 * (p[0].x + p[1].x)));
  }
  pupil /= 200;
  between /= 100;
  INFO("mean luma at the eye centres " << pupil << ", between the eyes " << between);
  CHECK(pupil < between - 0.2);
}

TEST_CASE("SynthFaces crops its backgrounds from the given images", "[data][synth_faces]") {
  SynthFaceOptions o;
  o.max_pixel_noise = 0;
  // Two constant-colour images: every corner pixel is one of the two colours, and both occur.
  o.backgrounds = {full({3, 20, 30}, 0.25), full({3, 64, 50}, 0.75)};
  const SynthFaces faces(40, 9, o);
  int64_t seen[2] = {0, 0};
  for (int64_t i = 0; i < 40; ++i) {
    const Tensor img = faces.get(i).input;
    const float* p = img.data<float>();
    const float corner = p[0];
    REQUIRE((std::abs(corner - 0.25f) < 1e-5f || std::abs(corner - 0.75f) < 1e-5f));
    ++seen[corner > 0.5f ? 1 : 0];
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t idx : {int64_t{0}, int64_t{47}, int64_t{47 * 48}, int64_t{48 * 48 - 1}})
        REQUIRE(std::abs(p[k * 48 * 48 + idx] - corner) < 1e-5f);
  }
  CHECK(seen[0] > 0);
  CHECK(seen[1] > 0);
  // A gradient background: the corner values come from inside the image's range, and different
  // crops give different corners.
  Tensor ramp = Tensor::empty({3, 50, 50});
  float* r = ramp.data<float>();
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t y = 0; y < 50; ++y)
      for (int64_t x = 0; x < 50; ++x) r[(k * 50 + y) * 50 + x] = 0.2f + 0.6f * static_cast<float>(x + y) / 98.0f;
  o.backgrounds = {ramp};
  const SynthFaces ramps(10, 9, o);
  std::vector<float> corners;
  for (int64_t i = 0; i < 10; ++i) {
    const float c = ramps.get(i).input.data<float>()[0];
    REQUIRE(c >= 0.2f - 1e-5f);
    REQUIRE(c <= 0.8f + 1e-5f);
    corners.push_back(c);
  }
  CHECK(*std::max_element(corners.begin(), corners.end()) - *std::min_element(corners.begin(), corners.end()) > 0.05f);
  // Without backgrounds: procedural noise, different per example.
  const SynthFaces noise(2, 9);
  CHECK(noise.get(0).input.data<float>()[0] != noise.get(1).input.data<float>()[0]);
}

TEST_CASE("load_backgrounds reads, filters and shrinks a folder of images", "[data][synth_faces]") {
  testing::TempDir dir("cvg_synth_bg");
  SECTION("empty folder: an error naming it") {
    const std::string msg = testing::error_of([&] { load_backgrounds(dir.path.string()); });
    CHECK_THAT(msg, Contains("load_backgrounds") && Contains(dir.path.string()));
  }
  SECTION("missing folder") {
    CHECK_THAT(testing::error_of([&] { load_backgrounds(dir.file("nope")); }), Contains("is not a folder"));
  }
  SECTION("recursive, small ones skipped, large ones box-downsampled") {
    std::filesystem::create_directories(dir.path / "sub");
    viz::write_png(dir.file("small.png"), full({3, 10, 10}, 0.5));
    Tensor big = Tensor::empty({3, 40, 90});
    float* p = big.data<float>();
    for (int64_t i = 0; i < big.numel(); ++i) p[i] = (i % 2) ? 1.0f : 0.0f;
    viz::write_png((dir.path / "sub" / "big.png").string(), big);
    // A file with an image extension that is not an image: skipped, not an error.
    { std::FILE* f = std::fopen(dir.file("broken.jpg").c_str(), "wb"); std::fputs("not a jpeg", f); std::fclose(f); }
    const std::vector<Tensor> bgs = load_backgrounds(dir.path.string(), 20, 40);
    REQUIRE(bgs.size() == 1);
    // 90 > 40 -> factor 3: 40 x 90 -> 13 x 30.
    CHECK(bgs[0].shape() == Shape{3, 13, 30});
    CHECK(bgs[0].dtype() == DType::float32);
    // Alternating 0 / 1 columns averaged over 3 x 3 boxes: 1/3 or 2/3.
    for (float v : values(bgs[0])) REQUIRE((std::abs(v - 1.0f / 3) < 1e-6f || std::abs(v - 2.0f / 3) < 1e-6f));
    // Without the big one, nothing is usable.
    std::filesystem::remove_all(dir.path / "sub");
    CHECK_THAT(testing::error_of([&] { load_backgrounds(dir.path.string(), 20, 40); }),
               Contains("no usable image") && Contains("2 image files"));
  }
}

TEST_CASE("SynthFaces option and index errors", "[data][synth_faces]") {
  SynthFaceOptions o;
  o.scale_min = 1.2;
  CHECK_THAT(testing::error_of([&] { SynthFaces(1, 0, o); }), Contains("scale_min"));
  o = {};
  o.max_yaw_deg = -1;
  CHECK_THAT(testing::error_of([&] { SynthFaces(1, 0, o); }), Contains("max_yaw_deg"));
  o = {};
  o.backgrounds = {full({1, 20, 20}, 0.5)};
  CHECK_THAT(testing::error_of([&] { SynthFaces(1, 0, o); }), Contains("backgrounds[0]") && Contains("[1, 20, 20]"));
  o = {};
  o.backgrounds = {zeros({3, 20, 20}, TensorOptions{}.with_dtype(DType::uint8))};
  CHECK_THAT(testing::error_of([&] { SynthFaces(1, 0, o); }), Contains("must be float"));
  const SynthFaces faces(3, 0);
  CHECK_THAT(testing::error_of([&] { faces.get(3); }), Contains("SynthFaces::get: index 3 out of range [0, 3)"));
  CHECK_THAT(testing::error_of([&] { faces.get(-1); }), Contains("out of range"));
}

TEST_CASE("synth face landmark names and preview PNG", "[data][synth_faces][viz]") {
  const auto& names = synth_face_landmark_names();
  CHECK(std::string(names[kSynthFaceLeftEye]) == "left_eye");
  CHECK(std::string(names[kSynthFaceRightEye]) == "right_eye");
  CHECK(std::string(names[2]) == "nose_tip");
  testing::TempDir dir("cvg_synth_preview");
  const std::string path = dir.file("faces.png");
  SynthFaceOptions o;
  write_synth_face_preview(path, 1, 6, o);
  // 6 faces: 3 columns x 2 rows of 48 px faces zoomed 3x (144 px), 2 px padding.
  const Tensor png = io::read_image(path);
  CHECK(png.shape() == Shape{2 * 144 + 3 * 2, 3 * 144 + 4 * 2, 3});
  o.rgb = false;
  o.size = 32;  // zoom 4 -> 128 px cells
  write_synth_face_preview(path, 1, 1, o);
  CHECK(io::read_image(path).shape() == Shape{128 + 4, 128 + 4, 3});
}
