#include "nn/io/npy.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>

namespace cvg::io {

namespace {

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// ---- the .npy header: a small Python-literal parser --------------------------------------------

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& src) : s_(text), src_(src) {}

  void parse(std::string& descr, bool& fortran, Shape& shape) {
    std::set<std::string> seen;
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') { ++i_; break; }
      const std::string key = string_literal();
      if (!seen.insert(key).second) bad("key '" + key + "' appears twice");
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() == '[') bad("structured dtypes (a list 'descr') are not supported");
        descr = string_literal();
      } else if (key == "fortran_order") {
        fortran = boolean();
      } else if (key == "shape") {
        shape = tuple();
      } else {
        bad("unexpected key '" + key + "' (expected descr, fortran_order and shape)");
      }
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      skip_ws();
      if (peek() == '}') { ++i_; break; }
      bad("expected ',' or '}'");
    }
    for (const char* k : {"descr", "fortran_order", "shape"})
      if (!seen.count(k)) bad(std::string("missing key '") + k + "'");
    skip_ws();
    if (i_ != s_.size()) bad("unexpected text after the closing '}'");
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail("read_npy: ", src_, ": malformed header at character ", i_, ": ", what, " (header: ", s_, ")");
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string_literal() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t start = ++i_;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') bad("escapes in strings are not supported");
      ++i_;
    }
    if (i_ >= s_.size()) bad("unterminated string");
    return s_.substr(start, i_++ - start);
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) { i_ += 4; return true; }
    if (s_.compare(i_, 5, "False") == 0) { i_ += 5; return false; }
    bad("expected True or False");
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    for (;;) {
      skip_ws();
      if (peek() == ')') { ++i_; break; }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("shape entries must be non-negative integers");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("shape entry too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') { ++i_; continue; }
      skip_ws();
      if (peek() == ')') { ++i_; break; }
      bad("expected ',' or ')' in shape");
    }
    return shape;
  }

  const std::string& s_;
  const std::string& src_;
  size_t i_ = 0;
};

struct NpyType {
  const char* code;  // kind + size, e.g. "f4"
  DType dtype;
};
constexpr NpyType kNpyTypes[] = {{"f4", DType::float32}, {"f8", DType::float64}, {"i4", DType::int32},
                                 {"i8", DType::int64},   {"u1", DType::uint8},   {"b1", DType::bool_}};

DType npy_dtype(const std::string& descr, const std::string& src) {
  if (descr.size() < 2) fail("read_npy: ", src, ": malformed descr '", descr, "'");
  const char order = descr[0];
  const std::string code = descr.substr(1);
  for (const auto& t : kNpyTypes) {
    if (code != t.code) continue;
    const bool one_byte = dtype_size(t.dtype) == 1;
    if (order == '>' && !one_byte)
      fail("read_npy: ", src, ": big-endian data ('", descr, "') is not supported; convert it with "
           "arr.astype(arr.dtype.newbyteorder('<')) before saving");
    if (order == '<' || (one_byte && (order == '|' || order == '>' || order == '=')))
      return t.dtype;
    fail("read_npy: ", src, ": unsupported byte order in descr '", descr, "'");
  }
  fail("read_npy: ", src, ": unsupported dtype '", descr,
       "' (supported: <f4, <f8, <i4, <i8, |u1, |b1)");
}

std::string npy_descr(DType dt) {
  switch (dt) {
    case DType::float32: return "<f4";
    case DType::float64: return "<f8";
    case DType::int32: return "<i4";
    case DType::int64: return "<i8";
    case DType::uint8: return "|u1";
    case DType::bool_: return "|b1";
  }
  fail("write_npy: unknown dtype");
}

// ---- zip ---------------------------------------------------------------------------------------

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;

struct ZipMember {
  std::string name;
  uint16_t flags, method;
  uint32_t crc;
  uint64_t comp_size, size, local_offset;
};

// Bounds-checked reads from the archive; every failure names the archive.
struct Reader {
  const std::vector<uint8_t>& b;
  const std::string& src;
  uint64_t get(uint64_t at, int n, const char* what) const {
    if (at > b.size() || b.size() - at < static_cast<uint64_t>(n))
      fail("read_npz: ", src, ": ", what, " at byte ", at, " lies outside the file (", b.size(),
           " bytes; truncated?)");
    return le(b.data() + at, n);
  }
  void need(uint64_t at, uint64_t n, const char* what) const {
    if (at > b.size() || b.size() - at < n)
      fail("read_npz: ", src, ": ", what, " [", at, ", ", at, " + ", n, ") lies outside the file (",
           b.size(), " bytes; truncated?)");
  }
};

std::vector<ZipMember> central_directory(const Reader& r) {
  const auto& b = r.b;
  if (b.size() < 22) fail("read_npz: ", r.src, ": ", b.size(), " bytes, too short for a zip archive");
  // The end record is the last 22 bytes plus a comment of up to 65535 bytes.
  int64_t eocd = -1;
  const int64_t lowest = std::max<int64_t>(0, static_cast<int64_t>(b.size()) - 22 - 65535);
  for (int64_t i = static_cast<int64_t>(b.size()) - 22; i >= lowest; --i)
    if (le(b.data() + i, 4) == kEndSig && static_cast<uint64_t>(i) + 22 + le(b.data() + i + 20, 2) == b.size()) {
      eocd = i;
      break;
    }
  if (eocd < 0) fail("read_npz: ", r.src, ": no zip end-of-central-directory record (not a zip/npz file, or truncated)");
  uint64_t count = r.get(eocd + 10, 2, "entry count");
  uint64_t cd_size = r.get(eocd + 12, 4, "directory size");
  uint64_t cd_offset = r.get(eocd + 16, 4, "directory offset");
  if (r.get(eocd + 4, 2, "disk number") != 0 || r.get(eocd + 6, 2, "disk number") != 0)
    fail("read_npz: ", r.src, ": multi-disk zip archives are not supported");
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (eocd < 20 || r.get(eocd - 20, 4, "zip64 locator") != kZip64LocatorSig)
      fail("read_npz: ", r.src, ": zip64 fields without a zip64 locator");
    const uint64_t z = r.get(eocd - 20 + 8, 8, "zip64 end record offset");
    if (r.get(z, 4, "zip64 end record") != kZip64EndSig)
      fail("read_npz: ", r.src, ": bad zip64 end-of-central-directory signature");
    count = r.get(z + 32, 8, "zip64 entry count");
    cd_size = r.get(z + 40, 8, "zip64 directory size");
    cd_offset = r.get(z + 48, 8, "zip64 directory offset");
  }
  r.need(cd_offset, cd_size, "central directory");

  std::vector<ZipMember> members;
  uint64_t p = cd_offset;
  for (uint64_t k = 0; k < count; ++k) {
    if (r.get(p, 4, "central directory entry") != kCentralSig)
      fail("read_npz: ", r.src, ": bad central directory entry ", k, " (wrong signature)");
    ZipMember m;
    m.flags = static_cast<uint16_t>(r.get(p + 8, 2, "flags"));
    m.method = static_cast<uint16_t>(r.get(p + 10, 2, "method"));
    m.crc = static_cast<uint32_t>(r.get(p + 16, 4, "crc"));
    m.comp_size = r.get(p + 20, 4, "compressed size");
    m.size = r.get(p + 24, 4, "size");
    const uint64_t name_len = r.get(p + 28, 2, "name length");
    const uint64_t extra_len = r.get(p + 30, 2, "extra length");
    const uint64_t comment_len = r.get(p + 32, 2, "comment length");
    m.local_offset = r.get(p + 42, 4, "local header offset");
    r.need(p + 46, name_len + extra_len + comment_len, "central directory entry");
    m.name.assign(reinterpret_cast<const char*>(r.b.data() + p + 46), name_len);
    // ZIP64 extra field: the 64-bit values of whichever fields hold 0xFFFFFFFF, in this order.
    uint64_t e = p + 46 + name_len;
    const uint64_t e_end = e + extra_len;
    while (e + 4 <= e_end) {
      const uint64_t id = r.get(e, 2, "extra field"), len = r.get(e + 2, 2, "extra field");
      if (e + 4 + len > e_end) fail("read_npz: ", r.src, ": extra field of '", m.name, "' overruns its entry");
      if (id == 0x0001) {
        uint64_t q = e + 4;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (q + 8 > e + 4 + len) fail("read_npz: ", r.src, ": short zip64 extra field for '", m.name, "'");
          field = r.get(q, 8, "zip64 field");
          q += 8;
        };
        take(m.size);
        take(m.comp_size);
        take(m.local_offset);
      }
      e += 4 + len;
    }
    members.push_back(m);
    p += 46 + name_len + extra_len + comment_len;
    if (p > cd_offset + cd_size) fail("read_npz: ", r.src, ": central directory overruns its stated size");
  }
  return members;
}

std::vector<uint8_t> extract(const Reader& r, const ZipMember& m) {
  const std::string where = r.src + ": member '" + m.name + "'";
  if (m.flags & 1) fail("read_npz: ", where, " is encrypted");
  if (r.get(m.local_offset, 4, "local header") != kLocalSig)
    fail("read_npz: ", where, ": bad local header signature");
  const uint64_t name_len = r.get(m.local_offset + 26, 2, "local name length");
  const uint64_t extra_len = r.get(m.local_offset + 28, 2, "local extra length");
  const uint64_t start = m.local_offset + 30 + name_len + extra_len;
  r.need(start, m.comp_size, "compressed data");
  const uint8_t* in = r.b.data() + start;

  std::vector<uint8_t> out;
  if (m.method == 0) {
    if (m.comp_size != m.size) fail("read_npz: ", where, ": stored member with different sizes");
    out.assign(in, in + m.size);
  } else if (m.method == 8) {
    // Deflate cannot expand by more than about 1032:1; a larger claim is corruption, and
    // checking it first avoids allocating what a bad size field asks for.
    if (m.size / 1032 > m.comp_size + 1)
      fail("read_npz: ", where, ": uncompressed size ", m.size, " is impossible for ", m.comp_size,
           " compressed bytes");
    out.resize(m.size);
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("read_npz: zlib inflateInit2 failed");
    uint64_t in_left = m.comp_size, out_left = m.size;
    zs.next_in = const_cast<Bytef*>(in);
    zs.next_out = out.data();
    int rc = Z_OK;
    while (rc == Z_OK) {
      const uInt in_chunk = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
      const uInt out_chunk = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
      zs.avail_in = in_chunk;
      zs.avail_out = out_chunk;
      rc = inflate(&zs, Z_NO_FLUSH);
      in_left -= in_chunk - zs.avail_in;
      out_left -= out_chunk - zs.avail_out;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_left != 0)
      fail("read_npz: ", where, ": corrupt deflate data (",
           rc == Z_STREAM_END ? "ends early" : (zs.msg ? zs.msg : "inflate failed"), ")");
  } else {
    fail("read_npz: ", where, ": unsupported compression method ", m.method, " (only stored and deflate)");
  }
  const uint32_t crc = static_cast<uint32_t>(crc32_z(crc32(0, nullptr, 0), out.data(), out.size()));
  if (crc != m.crc) fail("read_npz: ", where, ": CRC-32 mismatch (corrupt data)");
  return out;
}

}  // namespace

Tensor parse_npy(const std::vector<uint8_t>& b, const std::string& src) {
  static const uint8_t magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (b.size() < 10 || std::memcmp(b.data(), magic, 6) != 0)
    fail("read_npy: ", src, ": missing the \\x93NUMPY magic (not a .npy file)");
  const int major = b[6];
  uint64_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = le(b.data() + 8, 2);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) fail("read_npy: ", src, ": truncated header");
    header_len = le(b.data() + 8, 4);
    start = 12;
  } else {
    fail("read_npy: ", src, ": unsupported format version ", major, ".", int(b[7]));
  }
  if (header_len > b.size() - start)
    fail("read_npy: ", src, ": header length ", header_len, " runs past the end of the file (",
         b.size(), " bytes; truncated?)");
  const std::string header(reinterpret_cast<const char*>(b.data() + start), header_len);
  std::string descr;
  bool fortran = false;
  Shape shape;
  HeaderParser(header, src).parse(descr, fortran, shape);
  const DType dt = npy_dtype(descr, src);
  if (fortran)
    fail("read_npy: ", src, ": fortran_order arrays are not supported; save with "
         "np.ascontiguousarray(arr)");
  if (shape.size() > static_cast<size_t>(kMaxDims))
    fail("read_npy: ", src, ": ", shape.size(), " dims; cvgrad supports at most ", kMaxDims);

  const uint64_t have = b.size() - start - header_len;
  const uint64_t esize = dtype_size(dt);
  uint64_t numel = 1;
  bool too_big = false;
  for (int64_t s : shape) {
    if (s != 0 && numel > have / static_cast<uint64_t>(s)) too_big = true;
    numel = too_big ? numel : numel * s;
  }
  for (int64_t s : shape)
    if (s == 0) { numel = 0; too_big = false; }
  if (too_big || numel * esize != have)
    fail("read_npy: ", src, ": shape ", shape, " of ", descr, " needs ",
         too_big ? std::string("more than ") + std::to_string(have) : std::to_string(numel * esize),
         " bytes of data but the file has ", have, too_big || numel * esize > have ? " (truncated?)" : " (trailing bytes)");

  Tensor t = Tensor::empty(shape, TensorOptions{}.with_dtype(dt));
  const uint8_t* data = b.data() + start + header_len;
  if (dt == DType::bool_)
    for (uint64_t i = 0; i < have; ++i)
      if (data[i] > 1) fail("read_npy: ", src, ": bool element ", i, " is ", int(data[i]), " (must be 0 or 1)");
  if (have) std::memcpy(t.raw_data(), data, have);
  return t;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file_bytes(path), path); }

TensorMap parse_npz(const std::vector<uint8_t>& bytes, const std::string& src) {
  const Reader r{bytes, src};
  TensorMap out;
  for (const ZipMember& m : central_directory(r)) {
    if (m.name.size() < 5 || m.name.compare(m.name.size() - 4, 4, ".npy") != 0)
      fail("read_npz: ", src, ": member '", m.name, "' is not a .npy array");
    const std::string key = m.name.substr(0, m.name.size() - 4);
    if (out.count(key)) fail("read_npz: ", src, ": member '", m.name, "' appears twice");
    out.emplace(key, parse_npy(extract(r, m), src + ":" + m.name));
  }
  return out;
}

TensorMap read_npz(const std::string& path) { return parse_npz(read_file_bytes(path), path); }

std::vector<uint8_t> npy_bytes(const Tensor& t_in) {
  const Tensor t = t_in.detach().to(kCPU).contiguous();
  std::string header = "{'descr': '" + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (int64_t s : t.shape()) header += std::to_string(s) + ", ";
  if (t.dim() > 0) header.resize(header.size() - 2);
  if (t.dim() == 1) header += ",";
  header += "), }";
  // NumPy pads so that the data starts at a multiple of 64 bytes, ending the header with '\n'.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  CVG_CHECK(header.size() <= 0xFFFF, "write_npy: header too long for format 1.0");
  const size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
  std::vector<uint8_t> out(10 + header.size() + nbytes);
  const uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              static_cast<uint8_t>(header.size() & 0xFF),
                              static_cast<uint8_t>(header.size() >> 8)};
  std::memcpy(out.data(), prefix, 10);
  std::memcpy(out.data() + 10, header.data(), header.size());
  if (nbytes) std::memcpy(out.data() + 10 + header.size(), t.raw_data(), nbytes);
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  const std::vector<uint8_t> b = npy_bytes(t);
  write_file_atomic(path, b.data(), b.size());
}

}  // namespace cvg::io
