#pragma once
// Tensors on disk in the safetensors format (https://github.com/huggingface/safetensors), so that
// Python's `safetensors` and PyTorch read what cvgrad writes and the other way round.
//
// Layout of a file:
//   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
//   bytes [8, 8 + N)    a JSON object (UTF-8):
//                         { "__metadata__": {"key": "value", ...},            (optional)
//                           "<name>": {"dtype": "F32", "shape": [2, 3],
//                                      "data_offsets": [begin, end]}, ... }
//                       padded with trailing spaces so that the data starts 8-byte aligned
//   bytes [8 + N, end)  the data section: each tensor's elements, row-major, little-endian;
//                       data_offsets are relative to the start of this section
// dtypes: F32, F64, I32, I64, U8, BOOL (one byte, 0 or 1). Other safetensors dtypes (F16, BF16,
// I8, ...) have no cvgrad counterpart and are rejected when read.
//
// Writing sorts tensors by element size (largest first), then by name, so every tensor starts at
// a multiple of its element size; the write is atomic (a temporary file in the same folder,
// fsync, rename), so a crash leaves either the old file or the new one, never half of one.
//
// Reading validates the whole file before building any tensor: header length against the file
// size, the JSON, every dtype and shape, that each byte range is in bounds and matches
// numel * element size, and that the ranges tile the data section exactly (no gaps, no overlaps,
// nothing after the last one); duplicate names are rejected. Any problem raises cvg::Error naming
// the file and the problem. Loaded tensors live on the CPU.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg {

using TensorMap = std::map<std::string, Tensor>;
using MetadataMap = std::map<std::string, std::string>;

struct SafetensorsFile {
  std::string source;  // the path (or label) it was read from, used in error messages
  TensorMap tensors;
  MetadataMap metadata;

  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  // The tensor called `name`; throws naming the file and listing what it holds when absent.
  const Tensor& at(const std::string& name) const;
};

// Serialises to bytes (the exact file content). Tensors may live on any device and have any
// strides; they are copied to contiguous CPU memory. Names must be non-empty and not
// "__metadata__".
std::vector<uint8_t> safetensors_bytes(const TensorMap& tensors, const MetadataMap& metadata = {});
// Parses bytes produced by any safetensors writer; `source` names them in error messages.
SafetensorsFile parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& source);

// Atomic file versions of the two above.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const MetadataMap& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);

// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
// folder. Shared by every writer that must not leave half a file behind (checkpoints, PNGs).
void write_file_atomic(const std::string& path, const void* data, size_t size);
// The whole content of a file; throws naming the file when it cannot be opened or read.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace cvg
