// Safetensors round trips, the byte layout checked by an independent reader, and every kind of
// corrupt file the loader must reject with a clear cvg::Error (never a crash).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <random>

#include <nlohmann/json.hpp>

#include "core/serialization.h"
#include "kernels/view.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// A file from a header text and a data section, with a correct length prefix.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// from_vector converts to opts.dtype (float32 unless told): keep the element type of the data.
template <typename T>
Tensor vec(const std::vector<T>& v, const Shape& shape) {
  return from_vector<T>(v, shape, TensorOptions{}.with_dtype(dtype_of<T>()));
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  return a.to(DType::float64).to_vector<double>() == b.to(DType::float64).to_vector<double>();
}

TensorMap sample_tensors() {
  TensorMap m;
  m["f32"] = tensor({1.5, -2.25, 3.0, 1e-7, -0.0, 65504.0}, {2, 3}, TensorOptions{}.with_dtype(DType::float32));
  m["f64"] = tensor({3.141592653589793, -1e300, 2.5e-310}, {3}, TensorOptions{}.with_dtype(DType::float64));
  m["i32"] = vec<int32_t>({-2147483647 - 1, 0, 7, 2147483647}, {2, 2});
  m["i64"] = vec<int64_t>({-(int64_t(1) << 62), 5, int64_t(1) << 40}, {3, 1});
  m["u8"] = vec<uint8_t>({0, 1, 128, 255}, {4});
  m["bool"] = vec<bool>({true, false, true}, {3});
  m["scalar"] = scalar_tensor(42.0, TensorOptions{}.with_dtype(DType::float64));
  m["empty"] = Tensor::empty({0, 3});
  m["empty_i64"] = Tensor::empty({4, 0, 2}, TensorOptions{}.with_dtype(DType::int64));
  return m;
}

// Little-endian decoding written out by hand, independent of the library's memcpy.
uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

TEST_CASE("safetensors round trip of every dtype, 0-d and empty tensors", "[serialization]") {
  TempDir dir;
  const TensorMap in = sample_tensors();
  const MetadataMap meta{{"app", "test"}, {"config", "{\"lr\": 0.1}"}, {"unicode", "caf\xc3\xa9"}};
  save_safetensors(dir.file("a.safetensors"), in, meta);
  const SafetensorsFile f = load_safetensors(dir.file("a.safetensors"));
  REQUIRE(f.tensors.size() == in.size());
  CHECK(f.at("i64").dtype() == DType::int64);
  CHECK(f.at("bool").dtype() == DType::bool_);
  CHECK(f.at("u8").dtype() == DType::uint8);
  CHECK(f.at("i64").to_vector<int64_t>()[0] == -(int64_t(1) << 62));
  for (const auto& [name, t] : in) {
    INFO(name);
    REQUIRE(f.contains(name));
    CHECK(same_tensor(f.at(name), t));
    CHECK(f.at(name).device().is_cpu());
  }
  CHECK(f.metadata == meta);
  CHECK(f.at("scalar").dim() == 0);
  CHECK(f.at("empty").shape() == Shape{0, 3});

  // Signed zero and subnormals survive bit for bit.
  const std::vector<float> f32 = f.at("f32").to_vector<float>();
  CHECK(std::signbit(f32[4]));
  CHECK(f.at("f64").to_vector<double>()[2] == 2.5e-310);

  // Saving over the file replaces it and leaves no temporary file behind.
  save_safetensors(dir.file("a.safetensors"), {{"only", ones({2})}});
  CHECK(load_safetensors(dir.file("a.safetensors")).tensors.size() == 1);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) { (void)e; ++files; }
  CHECK(files == 1);
}

TEST_CASE("safetensors writes views as their logical content", "[serialization]") {
  const Tensor t = transpose(reshape(arange(0, 6), {2, 3}), 0, 1);  // [3, 2], not contiguous
  REQUIRE_FALSE(t.is_contiguous());
  const SafetensorsFile f = parse_safetensors(safetensors_bytes({{"t", t}}), "mem");
  CHECK(f.at("t").shape() == Shape{3, 2});
  CHECK(f.at("t").to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("safetensors layout read back by an independent reader", "[serialization]") {
  const TensorMap in = sample_tensors();
  const std::vector<uint8_t> bytes = safetensors_bytes(in, {{"k", "v"}});
  REQUIRE(bytes.size() >= 8);
  const uint64_t n = le(bytes.data(), 8);
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);  // data section aligned
  const std::string text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  const nlohmann::json h = nlohmann::json::parse(text);
  CHECK(h["__metadata__"]["k"] == "v");
  const uint8_t* data = bytes.data() + 8 + n;
  const uint64_t data_size = bytes.size() - 8 - n;

  uint64_t covered = 0;
  for (const auto& [name, t] : in) {
    INFO(name);
    const auto& e = h.at(name);
    const uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
    REQUIRE(end <= data_size);
    covered += end - b;
    CHECK(e["shape"].get<std::vector<int64_t>>() == t.shape());
    const std::string dt = e["dtype"];
    const std::vector<double> want = t.to(DType::float64).to_vector<double>();
    std::vector<double> got;
    int esize = 0;
    if (dt == "F32") {
      esize = 4;
      for (uint64_t o = b; o < end; o += 4) {
        const uint32_t bits = static_cast<uint32_t>(le(data + o, 4));
        float v;
        std::memcpy(&v, &bits, 4);
        got.push_back(v);
      }
    } else if (dt == "F64") {
      esize = 8;
      for (uint64_t o = b; o < end; o += 8) {
        const uint64_t bits = le(data + o, 8);
        double v;
        std::memcpy(&v, &bits, 8);
        got.push_back(v);
      }
    } else if (dt == "I32") {
      esize = 4;
      for (uint64_t o = b; o < end; o += 4) got.push_back(static_cast<int32_t>(le(data + o, 4)));
    } else if (dt == "I64") {
      esize = 8;
      for (uint64_t o = b; o < end; o += 8) got.push_back(static_cast<double>(static_cast<int64_t>(le(data + o, 8))));
    } else if (dt == "U8" || dt == "BOOL") {
      esize = 1;
      for (uint64_t o = b; o < end; ++o) got.push_back(data[o]);
    } else {
      FAIL("unexpected dtype " << dt);
    }
    CHECK(b % esize == 0);  // each tensor aligned to its element size
    CHECK(got == want);
  }
  CHECK(covered == data_size);
  CHECK(h["f32"]["dtype"] == "F32");
  CHECK(h["bool"]["dtype"] == "BOOL");
  CHECK(h["u8"]["dtype"] == "U8");
  CHECK(h["scalar"]["shape"].empty());
}

TEST_CASE("safetensors reads a file written by hand", "[serialization]") {
  // Two int32 values 1 and -1, and a u8 after them; key order in the header is irrelevant.
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]},)"
      R"("a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"x":"y"}}   )";
  const std::vector<uint8_t> data{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 200};
  const SafetensorsFile f = parse_safetensors(make_file(header, data), "hand");
  CHECK(f.at("a").to_vector<int32_t>() == std::vector<int32_t>{1, -1});
  CHECK(f.at("b").to_vector<uint8_t>() == std::vector<uint8_t>{200});
  CHECK(f.metadata.at("x") == "y");
}

TEST_CASE("safetensors rejects corrupt files with clear errors", "[serialization]") {
  TempDir dir;
  const std::string path = dir.file("c.safetensors");
  save_safetensors(path, {{"w", ones({4})}, {"b", zeros({2}, TensorOptions{}.with_dtype(DType::int64))}});
  const std::vector<uint8_t> good = read_file_bytes(path);
  REQUIRE_NOTHROW(load_safetensors(path));

  auto load_bytes = [&](const std::vector<uint8_t>& b) {
    write_bytes(path, b);
    return load_safetensors(path);
  };

  SECTION("missing file") {
    REQUIRE_THROWS_WITH(load_safetensors(dir.file("nope.safetensors")),
                        Contains("nope.safetensors") && Contains("cannot open"));
  }
  SECTION("truncated in the data") {
    std::vector<uint8_t> b(good.begin(), good.end() - 1);
    REQUIRE_THROWS_WITH(load_bytes(b), Contains("c.safetensors") && Contains("run past the end"));
  }
  SECTION("truncated in the length prefix") {
    REQUIRE_THROWS_WITH(load_bytes({good.begin(), good.begin() + 5}),
                        Contains("c.safetensors") && Contains("too short"));
  }
  SECTION("truncated in the header") {
    REQUIRE_THROWS_WITH(load_bytes({good.begin(), good.begin() + 20}),
                        Contains("c.safetensors") && Contains("runs past the end of the file"));
  }
  SECTION("empty file") {
    REQUIRE_THROWS_WITH(load_bytes({}), Contains("too short"));
  }
  SECTION("garbage header") {
    REQUIRE_THROWS_WITH(load_bytes(make_file("{\"w\": [1, 2,,}", {})),
                        Contains("c.safetensors") && Contains("not valid JSON"));
    REQUIRE_THROWS_WITH(load_bytes(make_file("GARBAGE!", {})), Contains("does not start with '{'"));
    REQUIRE_THROWS_WITH(load_bytes(make_file("{\"w\": 3}", {})), Contains("must be an object"));
  }
  SECTION("header length beyond the file") {
    std::vector<uint8_t> b = good;
    b[0] = 0xff;
    b[1] = 0xff;
    REQUIRE_THROWS_WITH(load_bytes(b), Contains("header length") && Contains("past the end"));
    b[7] = 0x7f;
    REQUIRE_THROWS_WITH(load_bytes(b), Contains("exceeds"));
  }
  SECTION("wrong dtype string") {
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("c.safetensors") && Contains("'w'") && Contains("unknown dtype \"F33\""));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("F16 is valid safetensors but not supported"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("dtype must be a string"));
  }
  SECTION("shape and offsets disagree") {
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("'w'") && Contains("needs 8 bytes") && Contains("span 4"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("non-negative integer"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("non-negative integer"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(
            R"({"w":{"dtype":"F64","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", {0, 0, 0, 0})),
        Contains("more than 2^64"));
    REQUIRE_THROWS_WITH(load_bytes(make_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", {0, 0, 0, 0})),
                        Contains("no \"shape\""));
  }
  SECTION("out-of-range, overlapping and uncovered byte ranges") {
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", {0, 0, 0, 0})),
        Contains("run past the end of the data section"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[3,2]}})", {0, 0, 0, 0})),
        Contains("begin > end"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                             R"("v":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", {0, 0, 0, 0})),
        Contains("'w'") && Contains("'v'") && Contains("overlap"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", {0, 0, 0, 0})),
        Contains("belong to no tensor"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", {0, 0, 0, 0})),
        Contains("trailing garbage"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0]}})", {0, 0})),
        Contains("data_offsets must be [begin, end]"));
  }
  SECTION("duplicate names") {
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", {0, 0})),
        Contains("'w' twice"));
  }
  SECTION("bad metadata and bool bytes") {
    REQUIRE_THROWS_WITH(load_bytes(make_file(R"({"__metadata__":{"a":1}})", {})),
                        Contains("must be a string"));
    REQUIRE_THROWS_WITH(
        load_bytes(make_file(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", {1, 7})),
        Contains("'m' is BOOL but byte 1 is 7"));
  }
  SECTION("deeply nested header values and long quoted values") {
    // A 100k-deep array (a 200 KB header) used to overflow the stack (SIGSEGV) in the json::dump
    // quoting it in the error; nesting is now bounded at 64 levels (the root object is level 0).
    const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    const auto long_message = [](const std::function<void()>& f) {
      try {
        f();
      } catch (const Error& e) {
        return std::string(e.what()).size() > 400;
      }
      return true;  // no error at all is as wrong as a long one
    };
    CHECK_THROWS_WITH(load_bytes(make_file("{\"a\":" + nested(100000) + "}", {})),
                        Contains("c.safetensors") && Contains("deeper than 64 levels"));
    CHECK_THROWS_WITH(load_bytes(make_file("{\"__metadata__\":{\"k\":" + nested(100000) + "}}", {})),
                        Contains("deeper than 64 levels"));
    CHECK_THROWS_WITH(load_bytes(make_file("{\"a\":" + nested(64) + "}", {})),
                        Contains("deeper than 64 levels"));
    // 63 levels parse; the entry is then refused, its value quoted only up to 80 characters.
    CHECK_THROWS_WITH(load_bytes(make_file("{\"a\":" + nested(63) + "}", {})),
                        Contains("header entry must be an object, got [[[[") && Contains("... (126 chars)"));
    // Long strings from the header (a value, a dtype, a tensor name) are clipped too.
    const std::string big(100000, 'x');
    CHECK_FALSE(long_message([&] {
      load_bytes(make_file(R"({"w":{"dtype":"F32","shape":")" + big + R"(","data_offsets":[0,4]}})", {0, 0, 0, 0}));
    }));
    CHECK_FALSE(long_message([&] {
      load_bytes(make_file(R"({"w":{"dtype":")" + big + R"(","shape":[1],"data_offsets":[0,4]}})", {0, 0, 0, 0}));
    }));
    CHECK_FALSE(long_message([&] {
      load_bytes(make_file(R"({")" + big + R"(":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", {0, 0, 0, 0}));
    }));
    CHECK_FALSE(long_message([&] { load_bytes(make_file(R"({"__metadata__":{")" + big + R"(":1}})", {})); }));
  }
  SECTION("missing tensor on lookup") {
    const SafetensorsFile f = load_safetensors(path);
    REQUIRE_THROWS_WITH(f.at("bias"), Contains("c.safetensors") && Contains("no tensor named 'bias'") &&
                                          Contains("b, w"));
  }
}

TEST_CASE("safetensors: every single-byte corruption of the header is an Error or a valid file",
          "[serialization]") {
  // Flipping any byte of the length prefix or header must never crash or read out of bounds.
  const std::vector<uint8_t> good =
      safetensors_bytes({{"a", ones({3})}, {"b", zeros({2, 2}, TensorOptions{}.with_dtype(DType::uint8))}},
                        {{"k", "v"}});
  const uint64_t n = le(good.data(), 8);
  for (size_t i = 0; i < 8 + n; ++i) {
    for (uint8_t x : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      std::vector<uint8_t> b = good;
      b[i] ^= x;
      try {
        const SafetensorsFile f = parse_safetensors(b, "fuzz");
        for (const auto& [name, t] : f.tensors) CHECK(t.numel() >= 0);
      } catch (const Error&) {
      }
    }
  }
}

TEST_CASE("safetensors checked by python3 when available", "[serialization]") {
  // An optional third reader: Python's struct + json (standard library only). Skipped when no
  // python3 is on PATH; the independent C++ reader above is the required check.
  if (std::system("python3 -c 'import json, struct' >/dev/null 2>&1") != 0) {
    WARN("python3 not found: skipping the Python cross-check");
    return;
  }
  TempDir dir;
  save_safetensors(dir.file("p.safetensors"),
                   {{"x", tensor({1.25, -2.0, 3.5}, {3})}, {"n", vec<int64_t>({7, -9}, {2})}});
  const std::string script = dir.file("check.py");
  std::ofstream(script) << "import json, struct, sys\n"
                           "b = open(sys.argv[1], 'rb').read()\n"
                           "n = struct.unpack('<Q', b[:8])[0]\n"
                           "h = json.loads(b[8:8 + n])\n"
                           "d = b[8 + n:]\n"
                           "def get(k, f):\n"
                           "    s, e = h[k]['data_offsets']\n"
                           "    return list(struct.unpack('<%d%s' % ((e - s) // struct.calcsize(f), f), d[s:e]))\n"
                           "assert h['x']['dtype'] == 'F32' and h['x']['shape'] == [3]\n"
                           "assert get('x', 'f') == [1.25, -2.0, 3.5], get('x', 'f')\n"
                           "assert h['n']['dtype'] == 'I64' and get('n', 'q') == [7, -9]\n";
  const std::string cmd = "python3 '" + script + "' '" + dir.file("p.safetensors") + "'";
  CHECK(std::system(cmd.c_str()) == 0);
}
