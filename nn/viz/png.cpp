#include "nn/viz/png.h"

#include <stb_image_write.h>

#include <limits>

#include "core/serialization.h"
#include "nn/io/image.h"

namespace cvg::viz {

Tensor to_hwc_u8(const Tensor& image) {
  CVG_CHECK(image.defined(), "to_hwc_u8: image is undefined");
  Tensor hwc;
  if (image.dtype() == DType::uint8) {
    CVG_CHECK(image.dim() == 2 || image.dim() == 3, "to_hwc_u8: a uint8 image must be [H, W] or [H, W, C], "
              "got shape ", image.shape());
    hwc = image.dim() == 2 ? make_view(image, {image.size(0), image.size(1), 1},
                                       {image.strides()[0], image.strides()[1], 1}, image.offset())
                           : image;
    hwc = hwc.detach().to(kCPU).contiguous();
  } else if (is_floating(image.dtype())) {
    hwc = io::chw_float_to_hwc(image);
  } else {
    fail("to_hwc_u8: images must be uint8 (HWC) or float (CHW), got ", dtype_name(image.dtype()));
  }
  const int64_t c = hwc.size(2);
  CVG_CHECK(c == 1 || c == 3 || c == 4, "to_hwc_u8: images need 1, 3 or 4 channels, got shape ",
            image.shape(), " (", c, " channels)");
  return hwc;
}

std::vector<uint8_t> encode_png(const Tensor& image) {
  const Tensor hwc = to_hwc_u8(image);
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  CVG_CHECK(h > 0 && w > 0, "encode_png: cannot encode an empty ", h, "x", w, " image");
  CVG_CHECK(h * w * c < std::numeric_limits<int>::max(), "encode_png: image too large (", h, "x", w, ")");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int ok = stbi_write_png_to_func(sink, &out, static_cast<int>(w), static_cast<int>(h),
                                        static_cast<int>(c), hwc.data<uint8_t>(), static_cast<int>(w * c));
  CVG_CHECK(ok != 0, "encode_png: stb_image_write failed for a ", h, "x", w, "x", c, " image");
  return out;
}

std::vector<uint8_t> encode_jpeg(const Tensor& image, int quality) {
  CVG_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in 1..100, got ", quality);
  const Tensor hwc = to_hwc_u8(image);
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  CVG_CHECK(c != 4, "encode_jpeg: JPEG has no alpha channel; drop it first");
  CVG_CHECK(h > 0 && w > 0 && h < 65536 && w < 65536, "encode_jpeg: cannot encode a ", h, "x", w, " image");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int ok = stbi_write_jpg_to_func(sink, &out, static_cast<int>(w), static_cast<int>(h),
                                        static_cast<int>(c), hwc.data<uint8_t>(), quality);
  CVG_CHECK(ok != 0, "encode_jpeg: stb_image_write failed for a ", h, "x", w, "x", c, " image");
  return out;
}

void write_jpeg(const std::string& path, const Tensor& image, int quality) {
  const std::vector<uint8_t> jpg = encode_jpeg(image, quality);
  write_file_atomic(path, jpg.data(), jpg.size());
}

void write_png(const std::string& path, const Tensor& image) {
  const std::vector<uint8_t> png = encode_png(image);
  write_file_atomic(path, png.data(), png.size());
}

}  // namespace cvg::viz
