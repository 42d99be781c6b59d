#pragma once
// PNG (and JPEG) output through stb_image_write. Images are accepted in the two layouts of nn/io/image.h,
// told apart by dtype:
//   uint8            [H, W] or [H, W, C], C in {1, 3, 4}, values 0..255
//   float32/float64  [H, W] or [C, H, W], C in {1, 3, 4}, values in [0, 1] (clamped, rounded)
// Files are written atomically (temporary file, rename), so a viewer never sees half a PNG.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::viz {

// Any accepted image as uint8 [H, W, C] (C = 1, 3 or 4), contiguous on the CPU.
Tensor to_hwc_u8(const Tensor& image);
std::vector<uint8_t> encode_png(const Tensor& image);
void write_png(const std::string& path, const Tensor& image);
// Baseline JPEG (lossy; quality 1..100) for photographs where PNGs get large. No alpha.
std::vector<uint8_t> encode_jpeg(const Tensor& image, int quality = 90);
void write_jpeg(const std::string& path, const Tensor& image, int quality = 90);

}  // namespace cvg::viz
