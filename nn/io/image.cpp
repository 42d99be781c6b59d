#include "nn/io/image.h"

#include <stb_image.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/serialization.h"

namespace cvg::io {

namespace fs = std::filesystem;

Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& src, int channels) {
  CVG_CHECK(channels == 0 || channels == 1 || channels == 3,
            "read_image: channels must be 0 (as stored), 1 or 3, got ", channels);
  if (bytes.empty()) fail("read_image: '", src, "' is empty");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    fail("read_image: '", src, "' is larger than 2 GiB");
  int w = 0, h = 0, stored = 0;
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &stored))
    fail("read_image: '", src, "': cannot decode: not a supported image (PNG, JPEG, BMP, PGM/PPM, "
         "TGA, GIF, PSD, HDR) or a corrupt file (stb_image: ", stbi_failure_reason(), ")");
  // Alpha is dropped: ask stb for the colour channels only.
  const int want = channels != 0 ? channels : (stored <= 2 ? 1 : 3);
  unsigned char* pixels = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w,
                                                &h, &stored, want);
  if (!pixels) fail("read_image: '", src, "': cannot decode: corrupt or truncated file (stb_image: ",
                    stbi_failure_reason(), ")");
  Tensor out = Tensor::empty({h, w, want}, TensorOptions{}.with_dtype(DType::uint8));
  std::memcpy(out.data<uint8_t>(), pixels, static_cast<size_t>(h) * w * want);
  stbi_image_free(pixels);
  return out;
}

Tensor read_image(const std::string& path, int channels) {
  return decode_image(read_file_bytes(path), path, channels);
}

Tensor read_image_chw(const std::string& path, int channels) {
  return hwc_to_chw_float(read_image(path, channels));
}

Tensor hwc_to_chw_float(const Tensor& hwc_in) {
  CVG_CHECK(hwc_in.dtype() == DType::uint8, "hwc_to_chw_float: expected a uint8 image, got ",
            dtype_name(hwc_in.dtype()));
  CVG_CHECK(hwc_in.dim() == 2 || hwc_in.dim() == 3,
            "hwc_to_chw_float: expected [H, W] or [H, W, C], got shape ", hwc_in.shape());
  const Tensor hwc = hwc_in.to(kCPU).contiguous();
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.dim() == 3 ? hwc.size(2) : 1;
  Tensor out = Tensor::empty({c, h, w});
  const uint8_t* in = hwc.data<uint8_t>();
  float* o = out.data<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) o[(k * h + y) * w + x] = in[(y * w + x) * c + k] / 255.0f;
  return out;
}

Tensor chw_float_to_hwc(const Tensor& chw_in) {
  CVG_CHECK(is_floating(chw_in.dtype()), "chw_float_to_hwc: expected a float image, got ",
            dtype_name(chw_in.dtype()));
  CVG_CHECK(chw_in.dim() == 2 || chw_in.dim() == 3,
            "chw_float_to_hwc: expected [H, W] or [C, H, W], got shape ", chw_in.shape());
  const Tensor chw = chw_in.detach().to(kCPU).to(DType::float64).contiguous();
  const int64_t c = chw.dim() == 3 ? chw.size(0) : 1, h = chw.size(-2), w = chw.size(-1);
  Tensor out = Tensor::empty({h, w, c}, TensorOptions{}.with_dtype(DType::uint8));
  const double* in = chw.data<double>();
  uint8_t* o = out.data<uint8_t>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double v = in[(k * h + y) * w + x];
        // NaN maps to 0 (the comparison below is false for it).
        const double clamped = v > 0.0 ? std::min(v, 1.0) : 0.0;
        o[(y * w + x) * c + k] = static_cast<uint8_t>(std::lround(clamped * 255.0));
      }
  return out;
}

std::vector<std::string> list_image_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("list_image_files: '", dir, "' is not a folder");
  static const char* exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".tga"};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (std::find(std::begin(exts), std::end(exts), ext) != std::end(exts)) files.push_back(e.path().string());
  }
  if (ec) fail("list_image_files: cannot list '", dir, "': ", ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Tensor> read_image_folder(const std::string& dir, int channels) {
  std::vector<Tensor> images;
  for (const std::string& f : list_image_files(dir)) images.push_back(read_image(f, channels));
  return images;
}

}  // namespace cvg::io
