#include "core/serialization.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace cvg {

// The format stores little-endian bytes and we copy memory as is.
static_assert(std::endian::native == std::endian::little,
              "cvgrad's serialization assumes a little-endian host");

namespace {

using json = nlohmann::json;

// Same limit as the reference implementation: a larger header is a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Deepest nesting of arrays and objects accepted in the header (the root object is depth 0).
// A valid header needs 2 (root -> tensor entry -> shape array); the bound keeps json::dump and
// every other recursive walk of the parsed value off a deep stack: a 200 KB header nesting
// arrays 100k deep made the dump for the error message overflow the stack (SIGSEGV).
constexpr int kMaxJsonDepth = 64;
// Longest piece of the header (a value, a key, a tensor name) quoted in an error message: the
// header may be 100 MB, the message should not.
constexpr size_t kMaxQuoted = 80;

std::string clip(const std::string& s) {
  if (s.size() <= kMaxQuoted) return s;
  return s.substr(0, kMaxQuoted) + "... (" + std::to_string(s.size()) + " chars)";
}
// A header value for an error message. The dump is safe (depth bounded when parsing) and at
// most the header's size; only its start is quoted.
std::string clip(const json& v) { return clip(v.dump()); }

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {DType::float32, "F32"}, {DType::float64, "F64"}, {DType::int32, "I32"},
    {DType::int64, "I64"},   {DType::uint8, "U8"},    {DType::bool_, "BOOL"},
};
// Valid safetensors dtypes that cvgrad has no tensor type for: named in the error message so
// that the reader knows the file is fine but not loadable here.
constexpr const char* kForeignDTypes[] = {"F16", "BF16", "F8_E4M3", "F8_E5M2", "I8",
                                          "I16", "U16",  "U32",     "U64"};

const char* safetensors_name(DType dt) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == dt) return d.name;
  fail("safetensors: no safetensors name for dtype ", dtype_name(dt));
}

std::string errno_text() { return std::strerror(errno); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string tensor_list(const TensorMap& tensors) {
  std::string s;
  size_t n = 0;
  for (const auto& [name, t] : tensors) {
    if (n++ == 20) return s + ", ...";
    s += (s.empty() ? "" : ", ") + clip(name);
  }
  return s.empty() ? "(no tensors)" : s;
}

// One tensor's header entry after validation.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

uint64_t get_unsigned(const json& v, const std::string& src, const std::string& what) {
  if (!v.is_number_unsigned())
    fail("safetensors: ", src, ": ", what, " must be a non-negative integer, got ", clip(v));
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const json& info, const std::string& src,
                  uint64_t data_size) {
  const std::string where = src + ": tensor '" + clip(name) + "'";
  if (!info.is_object()) fail("safetensors: ", where, ": header entry must be an object, got ", clip(info));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail("safetensors: ", where, ": header entry has no \"", key, "\"");

  Entry e;
  e.name = name;
  const json& dt = info["dtype"];
  if (!dt.is_string()) fail("safetensors: ", where, ": dtype must be a string, got ", clip(dt));
  const std::string dts = dt.get<std::string>();
  bool found = false;
  for (const auto& d : kDTypeNames)
    if (dts == d.name) { e.dtype = d.dtype; found = true; }
  if (!found) {
    for (const char* f : kForeignDTypes)
      if (dts == f)
        fail("safetensors: ", where, ": dtype ", dts, " is valid safetensors but not supported by "
             "cvgrad (supported: F32, F64, I32, I64, U8, BOOL)");
    fail("safetensors: ", where, ": unknown dtype \"", clip(dts), "\" (supported: F32, F64, I32, I64, U8, BOOL)");
  }

  const json& sh = info["shape"];
  if (!sh.is_array()) fail("safetensors: ", where, ": shape must be an array, got ", clip(sh));
  if (sh.size() > static_cast<size_t>(kMaxDims))
    fail("safetensors: ", where, ": shape has ", sh.size(), " dims; cvgrad supports at most ", kMaxDims);
  uint64_t numel = 1;
  bool overflow = false, zero = false;
  for (const json& d : sh) {
    const uint64_t n = get_unsigned(d, src, "tensor '" + clip(name) + "': every shape entry");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("safetensors: ", where, ": shape entry ", n, " is too large");
    e.shape.push_back(static_cast<int64_t>(n));
    zero = zero || n == 0;
    if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n) overflow = true;
    if (!overflow) numel *= n;
  }
  if (zero) {  // a zero dim wins over any overflow in the others
    numel = 0;
    overflow = false;
  }

  const json& off = info["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail("safetensors: ", where, ": data_offsets must be [begin, end], got ", clip(off));
  e.begin = get_unsigned(off[0], src, "tensor '" + clip(name) + "': data_offsets[0]");
  e.end = get_unsigned(off[1], src, "tensor '" + clip(name) + "': data_offsets[1]");
  if (e.begin > e.end)
    fail("safetensors: ", where, ": data_offsets [", e.begin, ", ", e.end, "] has begin > end");
  if (e.end > data_size)
    fail("safetensors: ", where, ": data_offsets [", e.begin, ", ", e.end,
         "] run past the end of the data section (", data_size, " bytes)");
  const uint64_t esize = dtype_size(e.dtype);
  if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize ||
      numel * esize != e.end - e.begin)
    fail("safetensors: ", where, ": shape ", e.shape, " of ", dts, " needs ",
         overflow ? std::string("more than 2^64") : std::to_string(numel * esize), " bytes but data_offsets [",
         e.begin, ", ", e.end, "] span ", e.end - e.begin);
  return e;
}

}  // namespace

const Tensor& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end())
    fail("safetensors: ", source, ": no tensor named '", name, "' (the file holds: ",
         tensor_list(tensors), ")");
  return it->second;
}

std::vector<uint8_t> safetensors_bytes(const TensorMap& tensors, const MetadataMap& metadata) {
  // Largest element size first keeps every tensor aligned to its element size.
  std::vector<std::pair<std::string, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    CVG_CHECK(!name.empty(), "safetensors: tensor names must be non-empty");
    CVG_CHECK(name != "__metadata__", "safetensors: '__metadata__' is reserved and cannot name a tensor");
    CVG_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    order.emplace_back(name, t.detach().to(kCPU).contiguous());
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });

  json header = json::object();
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", safetensors_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* data = out.data() + 8 + text.size();
  for (const auto& [name, t] : order) {
    const size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    if (nbytes) std::memcpy(data, t.raw_data(), nbytes);
    data += nbytes;
  }
  return out;
}

SafetensorsFile parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& src) {
  if (bytes.size() < 8)
    fail("safetensors: ", src, ": file is ", bytes.size(),
         " bytes, too short for the 8-byte header length (truncated?)");
  const uint64_t header_len = read_u64_le(bytes.data());
  if (header_len > kMaxHeaderBytes)
    fail("safetensors: ", src, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes,
         "-byte limit (not a safetensors file, or a corrupt length)");
  if (header_len > bytes.size() - 8)
    fail("safetensors: ", src, ": header length ", header_len, " runs past the end of the file (",
         bytes.size(), " bytes; truncated?)");
  const char* text = reinterpret_cast<const char*>(bytes.data() + 8);
  if (header_len == 0 || text[0] != '{')
    fail("safetensors: ", src, ": header does not start with '{' (not a safetensors file?)");

  // nlohmann keeps the last of duplicate keys silently; the parser callback sees every key, so
  // it records duplicates per object (a stack, since objects nest).
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json header;
  try {
    header = json::parse(text, text + header_len,
                         [&](int depth, json::parse_event_t ev, json& parsed) {
                           if ((ev == json::parse_event_t::object_start ||
                                ev == json::parse_event_t::array_start) &&
                               depth >= kMaxJsonDepth)
                             fail("safetensors: ", src, ": header nests arrays/objects deeper than ",
                                  kMaxJsonDepth, " levels (corrupt file?)");
                           if (ev == json::parse_event_t::object_start) keys.emplace_back();
                           else if (ev == json::parse_event_t::object_end) keys.pop_back();
                           else if (ev == json::parse_event_t::key && !keys.empty() &&
                                    !keys.back().insert(parsed.get<std::string>()).second &&
                                    duplicate.empty())
                             duplicate = parsed.get<std::string>();
                           return true;
                         });
  } catch (const json::exception& e) {
    fail("safetensors: ", src, ": header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) fail("safetensors: ", src, ": header must be a JSON object");
  if (!duplicate.empty()) fail("safetensors: ", src, ": header has the key '", clip(duplicate), "' twice");

  SafetensorsFile file;
  file.source = src;
  const uint64_t data_size = bytes.size() - 8 - header_len;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail("safetensors: ", src, ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string())
          fail("safetensors: ", src, ": __metadata__ value for '", clip(k), "' must be a string, got ", clip(v));
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (name.empty()) fail("safetensors: ", src, ": header has a tensor with an empty name");
    entries.push_back(parse_entry(name, info, src, data_size));
  }

  // The byte ranges must tile [0, data_size): sorted by begin, each starts where the last ended.
  std::vector<const Entry*> sorted;
  for (const Entry& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : sorted) {
    if (e->begin < pos)
      fail("safetensors: ", src, ": tensors '", clip(prev->name), "' [", prev->begin, ", ", prev->end,
           ") and '", clip(e->name), "' [", e->begin, ", ", e->end, ") overlap");
    if (e->begin > pos)
      fail("safetensors: ", src, ": bytes [", pos, ", ", e->begin, ") of the data section belong to "
           "no tensor (before '", clip(e->name), "')");
    pos = e->end;
    if (e->end > e->begin || !prev) prev = e;
  }
  if (pos != data_size)
    fail("safetensors: ", src, ": data section has ", data_size, " bytes but the tensors cover only ",
         pos, " (trailing garbage, or a truncated header)");

  const uint8_t* data = bytes.data() + 8 + header_len;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, TensorOptions{}.with_dtype(e.dtype));
    const size_t nbytes = e.end - e.begin;
    if (e.dtype == DType::bool_)
      for (size_t i = 0; i < nbytes; ++i)
        if (data[e.begin + i] > 1)
          fail("safetensors: ", src, ": tensor '", clip(e.name), "' is BOOL but byte ", i, " is ",
               int(data[e.begin + i]), " (must be 0 or 1)");
    if (nbytes) std::memcpy(t.raw_data(), data + e.begin, nbytes);
    file.tensors.emplace(e.name, t);
  }
  return file;
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const MetadataMap& metadata) {
  const std::vector<uint8_t> bytes = safetensors_bytes(tensors, metadata);
  write_file_atomic(path, bytes.data(), bytes.size());
}

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(read_file_bytes(path), path);
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // A hidden name beside the target (same filesystem, so rename is atomic).
  std::string tmp_name = ".";
  tmp_name.append(target.filename().string()).append(".tmp-XXXXXX");
  std::string tmpl = (dir / tmp_name).string();
  const int fd = mkstemp(tmpl.data());
  if (fd < 0) fail("write_file_atomic: cannot create a temporary file in '", dir.string(), "' for '",
                   path, "': ", errno_text());
  auto give_up = [&](const std::string& what) {
    const std::string err = errno_text();
    ::close(fd);
    ::unlink(tmpl.c_str());
    fail("write_file_atomic: ", what, " '", path, "': ", err);
  };
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      give_up("cannot write");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  // mkstemp creates the file 0600; a finished file is as readable as any other.
  if (::fchmod(fd, 0644) != 0) give_up("cannot set permissions of");
  if (::fsync(fd) != 0) give_up("cannot fsync");
  if (::close(fd) != 0) {
    const std::string err = errno_text();
    ::unlink(tmpl.c_str());
    fail("write_file_atomic: cannot close '", path, "': ", err);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const std::string err = errno_text();
    ::unlink(tmpl.c_str());
    fail("write_file_atomic: cannot rename the temporary file onto '", path, "': ", err);
  }
  // The rename itself is durable only once the folder is synced.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open '", path, "': ", errno_text());
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("cannot read '", path, "': not a regular file");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = n < 0 ? errno_text() : "file shrank while reading";
      ::close(fd);
      fail("cannot read '", path, "': ", err);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace cvg
