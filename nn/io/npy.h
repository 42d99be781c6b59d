#pragma once
// NumPy's .npy and .npz files (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
//
// .npy: the magic "\x93NUMPY", a major and minor version byte, the header length (uint16 LE for
// version 1, uint32 LE for versions 2 and 3), then the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and a newline, then the raw elements.
// Supported: little-endian (or byte-order-free) f4, f8, i4, i8, u1, b1 in C order, which map to
// float32, float64, int32, int64, uint8, bool. Fortran order, big-endian data, other dtypes and
// structured dtypes are rejected with an error saying so, as are truncated or oversized data.
//
// .npz: a zip archive whose members are "<name>.npy" files, stored or deflated (np.savez and
// np.savez_compressed). The reader parses the zip central directory itself (ZIP64 included, as
// NumPy writes ZIP64 local headers), inflates deflated members with zlib, and checks each
// member's size and CRC-32. Keys are the member names without ".npy".
#include <string>
#include <vector>

#include "core/serialization.h"
#include "core/tensor.h"

namespace cvg::io {

Tensor read_npy(const std::string& path);
// `source` names the bytes in error messages.
Tensor parse_npy(const std::vector<uint8_t>& bytes, const std::string& source);

TensorMap read_npz(const std::string& path);
TensorMap parse_npz(const std::vector<uint8_t>& bytes, const std::string& source);

// Writes a version 1.0 .npy file (any device or strides; written as contiguous CPU data), so
// that results can be inspected from Python with np.load. Atomic, like every writer here.
std::vector<uint8_t> npy_bytes(const Tensor& t);
void write_npy(const std::string& path, const Tensor& t);

}  // namespace cvg::io
