#pragma once
// Image files through stb_image: PNG, JPEG, BMP, PGM/PPM (binary), also TGA, GIF (first frame),
// PSD and HDR as stb decodes them. 16-bit PNGs are reduced to 8 bits.
//
// Two layouts, as in the rest of cvgrad:
//   uint8 HWC  : [H, W, C], values 0..255, the layout of the file (read_image)
//   float CHW  : [C, H, W], values in [0, 1], the layout models take (read_image_chw)
// `channels` picks the result: 1 (grayscale; stb converts colour with its integer luma
// approximation of 0.299 R + 0.587 G + 0.114 B), 3 (RGB; gray is replicated), or 0 (as stored,
// with any alpha channel dropped: gray and gray+alpha give 1, RGB and RGBA give 3).
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::io {

Tensor read_image(const std::string& path, int channels = 0);      // uint8 [H, W, C]
Tensor read_image_chw(const std::string& path, int channels = 0);  // float32 [C, H, W]
// Decodes an image held in memory; `source` names it in error messages.
Tensor decode_image(const std::vector<uint8_t>& bytes, const std::string& source, int channels = 0);

// Layout conversions. hwc_to_chw_float: uint8 [H, W, C] (or [H, W]) -> float32 [C, H, W] / 255.
// chw_float_to_hwc: float [C, H, W] (or [H, W]) -> uint8 [H, W, C], clamped to [0, 1] and
// rounded to the nearest of the 256 levels.
Tensor hwc_to_chw_float(const Tensor& hwc);
Tensor chw_float_to_hwc(const Tensor& chw);

// The image files directly inside `dir` (.png .jpg .jpeg .bmp .pgm .ppm .pnm .tga, any case),
// sorted by name so that the order never depends on the filesystem.
std::vector<std::string> list_image_files(const std::string& dir);
// Every image of list_image_files(dir) as uint8 HWC; all are converted to `channels`.
std::vector<Tensor> read_image_folder(const std::string& dir, int channels = 0);

}  // namespace cvg::io
