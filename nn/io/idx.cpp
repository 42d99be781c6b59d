#include "nn/io/idx.h"

#include <zlib.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>

namespace cvg::io {

namespace {

// The decompressed content of a gzip file, or the content of a plain one (gzread passes
// non-gzip data through unchanged).
std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("read_idx: cannot open '", path, "': ", errno ? std::strerror(errno) : "gzopen failed");
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    const int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      fail("read_idx: '", path, "': corrupt or truncated gzip data (", msg, ")");
    }
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(f);
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

Tensor read_idx(const std::string& path) {
  const std::vector<uint8_t> b = read_maybe_gzip(path);
  if (b.size() < 4) fail("read_idx: '", path, "': ", b.size(), " bytes, too short for the IDX magic");
  if (b[0] != 0 || b[1] != 0)
    fail("read_idx: '", path, "': bad magic (first two bytes must be zero; not an IDX file)");
  const uint8_t type = b[2];
  const int ndim = b[3];
  int esize = 0;
  DType dtype = DType::uint8;
  switch (type) {
    case 0x08: esize = 1; dtype = DType::uint8; break;
    case 0x09: esize = 1; dtype = DType::int32; break;
    case 0x0B: esize = 2; dtype = DType::int32; break;
    case 0x0C: esize = 4; dtype = DType::int32; break;
    case 0x0D: esize = 4; dtype = DType::float32; break;
    case 0x0E: esize = 8; dtype = DType::float64; break;
    default:
      fail("read_idx: '", path, "': unknown element type code 0x", std::hex, int(type),
           " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  }
  if (ndim < 1 || ndim > kMaxDims)
    fail("read_idx: '", path, "': ", ndim, " dims in the header (must be 1..", kMaxDims, ")");
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (b.size() < header)
    fail("read_idx: '", path, "': truncated header (", b.size(), " bytes, need ", header, ")");
  Shape shape;
  for (int d = 0; d < ndim; ++d) shape.push_back(be32(b.data() + 4 + 4 * d));
  // Each size is below 2^32, so the product could overflow; clamp it once it exceeds what the
  // file can hold (a zero size anywhere makes the product zero whatever the others are).
  const uint64_t have = b.size() - header;
  const uint64_t cap = have / esize + 1;
  uint64_t numel = 1;
  bool zero = false;
  for (int64_t s : shape) {
    zero = zero || s == 0;
    numel = std::min<uint64_t>(numel * static_cast<uint64_t>(s), cap);
  }
  if (zero) numel = 0;
  if (numel * esize != have)
    fail("read_idx: '", path, "': header promises shape ", shape, " (",
         numel >= cap ? std::string("more than ") + std::to_string(have) : std::to_string(numel * esize),
         " bytes of data) but the file has ", have, " bytes after the header (",
         numel * esize > have ? "truncated" : "extra bytes at the end", ")");

  Tensor t = Tensor::empty(shape, TensorOptions{}.with_dtype(dtype));
  const uint8_t* p = b.data() + header;
  const int64_t n = static_cast<int64_t>(numel);
  switch (type) {
    case 0x08: std::memcpy(t.data<uint8_t>(), p, n); break;
    case 0x09: {
      int32_t* o = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<int8_t>(p[i]);
      break;
    }
    case 0x0B: {
      int32_t* o = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<int16_t>((uint16_t(p[2 * i]) << 8) | p[2 * i + 1]);
      break;
    }
    case 0x0C: {
      int32_t* o = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<int32_t>(be32(p + 4 * i));
      break;
    }
    case 0x0D: {
      float* o = t.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = be32(p + 4 * i);
        std::memcpy(&o[i], &bits, 4);
      }
      break;
    }
    case 0x0E: {
      double* o = t.data<double>();
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t bits = (uint64_t(be32(p + 8 * i)) << 32) | be32(p + 8 * i + 4);
        std::memcpy(&o[i], &bits, 8);
      }
      break;
    }
  }
  return t;
}

}  // namespace cvg::io
