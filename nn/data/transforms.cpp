#include "nn/data/transforms.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace cvg::data {

// ---- random numbers -----------------------------------------------------------------------------

uint64_t derive_key(uint64_t a, uint64_t b) {
  const Philox4 r = philox4x32_10(a, b);
  return (static_cast<uint64_t>(r.w[1]) << 32) | r.w[0];
}

SampleRng::SampleRng(uint64_t seed, uint64_t epoch, uint64_t index)
    : key_(derive_key(derive_key(seed, epoch), index)) {}

double SampleRng::uniform() { return philox_uniform<double>(key_, counter_++); }
double SampleRng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
int64_t SampleRng::randint(int64_t lo, int64_t hi) {
  CVG_CHECK(hi > lo, "SampleRng::randint: empty range [", lo, ", ", hi, ")");
  return philox_randint(key_, counter_++, lo, hi);
}
bool SampleRng::bernoulli(double p) { return uniform() < p; }

// ---- image plumbing -------------------------------------------------------------------------------

namespace {

// An image as [C, H, W]; 2-D images are one channel and keep their rank in results.
struct Img {
  Tensor t;  // contiguous CPU
  int64_t c, h, w;
  bool two_d;
};

Img as_image(const Tensor& image, const char* op) {
  CVG_CHECK(image.defined(), op, ": image is undefined");
  CVG_CHECK(is_floating(image.dtype()), op, ": expected a float image (see io::hwc_to_chw_float), got ",
            dtype_name(image.dtype()));
  CVG_CHECK(image.dim() == 2 || image.dim() == 3, op, ": expected an image [C, H, W] or [H, W], got shape ",
            image.shape());
  Img im;
  im.t = image.detach().to(kCPU).contiguous();
  im.two_d = image.dim() == 2;
  im.c = im.two_d ? 1 : image.size(0);
  im.h = image.size(-2);
  im.w = image.size(-1);
  return im;
}

Tensor new_image(const Img& im, int64_t c, int64_t h, int64_t w) {
  const Shape shape = im.two_d ? Shape{h, w} : Shape{c, h, w};
  return Tensor::empty(shape, TensorOptions{}.with_dtype(im.t.dtype()));
}

// Calls fn(in, out) with typed pointers for the image's float type.
template <typename Fn>
void with_pointers(const Img& im, Tensor& out, const char* op, Fn&& fn) {
  dispatch_floating(im.t.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    fn(im.t.data<T>(), out.data<T>());
  });
}

double clamp01(double v) { return std::min(1.0, std::max(0.0, v)); }

// Luma of pixel p of a 1- or 3-channel image.
template <typename T>
double luma(const T* in, int64_t c, int64_t plane, int64_t p) {
  if (c == 1) return in[p];
  return 0.299 * in[p] + 0.587 * in[plane + p] + 0.114 * in[2 * plane + p];
}

void check_luma_channels(const Img& im, const char* op) {
  CVG_CHECK(im.c == 1 || im.c == 3, op, ": needs a 1- or 3-channel image, got ", im.c, " channels");
}

}  // namespace

// ---- deterministic cores ----------------------------------------------------------------------------

Tensor crop(const Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width,
            int64_t padding, double fill) {
  const Img im = as_image(image, "crop");
  CVG_CHECK(height > 0 && width > 0 && padding >= 0, "crop: size must be positive and padding "
            "non-negative, got ", height, "x", width, " padding ", padding);
  CVG_CHECK(top >= 0 && left >= 0 && top + height <= im.h + 2 * padding &&
                left + width <= im.w + 2 * padding,
            "crop: window ", height, "x", width, " at (", top, ", ", left, ") does not fit the ",
            im.h, "x", im.w, " image padded by ", padding);
  Tensor out = new_image(im, im.c, height, width);
  with_pointers(im, out, "crop", [&](const auto* in, auto* o) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    for (int64_t k = 0; k < im.c; ++k)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x) {
          const int64_t sy = top + y - padding, sx = left + x - padding;
          const bool inside = sy >= 0 && sy < im.h && sx >= 0 && sx < im.w;
          o[(k * height + y) * width + x] = inside ? in[(k * im.h + sy) * im.w + sx] : static_cast<T>(fill);
        }
  });
  return out;
}

Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width) {
  const Img im = as_image(image, "resize");
  CVG_CHECK(height > 0 && width > 0, "resize: output size must be positive, got ", height, "x", width);
  CVG_CHECK(im.h > 0 && im.w > 0, "resize: cannot resize an empty ", im.h, "x", im.w, " image");
  Tensor out = new_image(im, im.c, height, width);
  // Source coordinate of output pixel i: (i + 0.5) * in / out - 0.5, clamped to the image.
  auto taps = [](int64_t i, int64_t in, int64_t outn, int64_t& i0, int64_t& i1, double& f) {
    const double s = std::max(0.0, (i + 0.5) * static_cast<double>(in) / outn - 0.5);
    i0 = std::min<int64_t>(static_cast<int64_t>(s), in - 1);
    i1 = std::min<int64_t>(i0 + 1, in - 1);
    f = s - i0;
    if (i0 == in - 1) f = 0.0;
  };
  with_pointers(im, out, "resize", [&](const auto* in, auto* o) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    for (int64_t y = 0; y < height; ++y) {
      int64_t y0, y1;
      double fy;
      taps(y, im.h, height, y0, y1, fy);
      for (int64_t x = 0; x < width; ++x) {
        int64_t x0, x1;
        double fx;
        taps(x, im.w, width, x0, x1, fx);
        for (int64_t k = 0; k < im.c; ++k) {
          const auto* p = in + k * im.h * im.w;
          const double top = (1 - fx) * p[y0 * im.w + x0] + fx * p[y0 * im.w + x1];
          const double bot = (1 - fx) * p[y1 * im.w + x0] + fx * p[y1 * im.w + x1];
          o[(k * height + y) * width + x] = static_cast<T>((1 - fy) * top + fy * bot);
        }
      }
    }
  });
  return out;
}

Tensor hflip(const Tensor& image) {
  const Img im = as_image(image, "hflip");
  Tensor out = new_image(im, im.c, im.h, im.w);
  with_pointers(im, out, "hflip", [&](const auto* in, auto* o) {
    for (int64_t r = 0; r < im.c * im.h; ++r)
      for (int64_t x = 0; x < im.w; ++x) o[r * im.w + x] = in[r * im.w + (im.w - 1 - x)];
  });
  return out;
}

Tensor adjust_brightness(const Tensor& image, double factor) {
  const Img im = as_image(image, "adjust_brightness");
  CVG_CHECK(factor >= 0, "adjust_brightness: factor must be non-negative, got ", factor);
  Tensor out = new_image(im, im.c, im.h, im.w);
  with_pointers(im, out, "adjust_brightness", [&](const auto* in, auto* o) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    for (int64_t i = 0; i < im.t.numel(); ++i) o[i] = static_cast<T>(clamp01(in[i] * factor));
  });
  return out;
}

Tensor adjust_contrast(const Tensor& image, double factor) {
  const Img im = as_image(image, "adjust_contrast");
  check_luma_channels(im, "adjust_contrast");
  CVG_CHECK(factor >= 0, "adjust_contrast: factor must be non-negative, got ", factor);
  Tensor out = new_image(im, im.c, im.h, im.w);
  with_pointers(im, out, "adjust_contrast", [&](const auto* in, auto* o) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    const int64_t plane = im.h * im.w;
    double sum = 0;
    for (int64_t p = 0; p < plane; ++p) sum += luma(in, im.c, plane, p);
    const double mean = plane ? sum / plane : 0.0;
    for (int64_t i = 0; i < im.t.numel(); ++i)
      o[i] = static_cast<T>(clamp01(mean + factor * (in[i] - mean)));
  });
  return out;
}

Tensor adjust_saturation(const Tensor& image, double factor) {
  const Img im = as_image(image, "adjust_saturation");
  check_luma_channels(im, "adjust_saturation");
  CVG_CHECK(factor >= 0, "adjust_saturation: factor must be non-negative, got ", factor);
  Tensor out = new_image(im, im.c, im.h, im.w);
  with_pointers(im, out, "adjust_saturation", [&](const auto* in, auto* o) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
    const int64_t plane = im.h * im.w;
    for (int64_t p = 0; p < plane; ++p) {
      const double g = luma(in, im.c, plane, p);
      for (int64_t k = 0; k < im.c; ++k)
        o[k * plane + p] = static_cast<T>(clamp01(g + factor * (in[k * plane + p] - g)));
    }
  });
  return out;
}

// ---- transforms -----------------------------------------------------------------------------------

ExampleTransform on_input(Transform t) {
  return [t = std::move(t)](Example ex, SampleRng& rng) {
    ex.input = t(ex.input, rng);
    return ex;
  };
}

Transform compose(std::vector<Transform> transforms) {
  return [ts = std::move(transforms)](const Tensor& image, SampleRng& rng) {
    Tensor x = image;
    for (const Transform& t : ts) x = t(x, rng);
    return x;
  };
}

Transform random_crop(int64_t height, int64_t width, int64_t padding, double fill) {
  CVG_CHECK(height > 0 && width > 0 && padding >= 0, "random_crop: size must be positive and padding "
            "non-negative, got ", height, "x", width, " padding ", padding);
  return [=](const Tensor& image, SampleRng& rng) {
    const int64_t h = image.size(-2) + 2 * padding, w = image.size(-1) + 2 * padding;
    CVG_CHECK(height <= h && width <= w, "random_crop: crop ", height, "x", width,
              " is larger than the padded image ", h, "x", w);
    const int64_t top = rng.randint(0, h - height + 1);
    const int64_t left = rng.randint(0, w - width + 1);
    return crop(image, top, left, height, width, padding, fill);
  };
}

Transform center_crop(int64_t height, int64_t width) {
  return [=](const Tensor& image, SampleRng&) {
    const int64_t h = image.size(-2), w = image.size(-1);
    CVG_CHECK(height <= h && width <= w, "center_crop: crop ", height, "x", width,
              " is larger than the image ", h, "x", w);
    return crop(image, (h - height) / 2, (w - width) / 2, height, width);
  };
}

Transform resize(int64_t height, int64_t width) {
  CVG_CHECK(height > 0 && width > 0, "resize: output size must be positive, got ", height, "x", width);
  return [=](const Tensor& image, SampleRng&) { return resize_bilinear(image, height, width); };
}

Transform random_horizontal_flip(double p) {
  CVG_CHECK(p >= 0 && p <= 1, "random_horizontal_flip: p must be in [0, 1], got ", p);
  return [=](const Tensor& image, SampleRng& rng) {
    return rng.bernoulli(p) ? hflip(image) : image;
  };
}

Transform color_jitter(double brightness, double contrast, double saturation) {
  CVG_CHECK(brightness >= 0 && contrast >= 0 && saturation >= 0,
            "color_jitter: strengths must be non-negative, got ", brightness, ", ", contrast, ", ",
            saturation);
  return [=](const Tensor& image, SampleRng& rng) {
    // Three draws always, in this order, whether or not a strength is zero.
    const double fb = rng.uniform(std::max(0.0, 1 - brightness), 1 + brightness);
    const double fc = rng.uniform(std::max(0.0, 1 - contrast), 1 + contrast);
    const double fs = rng.uniform(std::max(0.0, 1 - saturation), 1 + saturation);
    Tensor x = image;
    if (brightness > 0) x = adjust_brightness(x, fb);
    if (contrast > 0) x = adjust_contrast(x, fc);
    if (saturation > 0) x = adjust_saturation(x, fs);
    return x;
  };
}

Transform normalize(std::vector<double> mean, std::vector<double> std) {
  CVG_CHECK(!mean.empty() && mean.size() == std.size(), "normalize: mean and std must be non-empty and "
            "of equal length, got ", mean.size(), " and ", std.size());
  for (double s : std) CVG_CHECK(s > 0, "normalize: every std must be positive, got ", s);
  return [mean = std::move(mean), stdv = std::move(std)](const Tensor& image, SampleRng&) {
    const Img im = as_image(image, "normalize");
    const size_t n = mean.size();
    CVG_CHECK(n == 1 || static_cast<int64_t>(n) == im.c, "normalize: ", n, " means for an image with ",
              im.c, " channels");
    Tensor out = new_image(im, im.c, im.h, im.w);
    with_pointers(im, out, "normalize", [&](const auto* in, auto* o) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(o)>>;
      const int64_t plane = im.h * im.w;
      for (int64_t k = 0; k < im.c; ++k) {
        const double m = mean[n == 1 ? 0 : k], s = stdv[n == 1 ? 0 : k];
        for (int64_t p = 0; p < plane; ++p) o[k * plane + p] = static_cast<T>((in[k * plane + p] - m) / s);
      }
    });
    return out;
  };
}

}  // namespace cvg::data
