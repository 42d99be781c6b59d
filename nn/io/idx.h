#pragma once
// IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
//   bytes 0-1   zero
//   byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
//               0x0E float64
//   byte  3     number of dims, 1..8
//   then        one big-endian uint32 size per dim, then the elements, big-endian, row-major
// Files may be gzip-compressed (".gz", read through zlib's gzread, which passes plain files
// through unchanged, so one reader serves both).
//
// Tensor dtypes: uint8 -> uint8; int8, int16, int32 -> int32; float32 -> float32;
// float64 -> float64. The file must hold exactly the elements its header promises; a short or
// longer file, a bad magic, a zero dim count or an unknown type code raises cvg::Error naming the
// file and the problem.
#include <string>

#include "core/tensor.h"

namespace cvg::io {

Tensor read_idx(const std::string& path);

}  // namespace cvg::io
