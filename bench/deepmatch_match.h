#pragma once
// The whole `cvg-deepmatch match` pipeline on one pair (models/deepmatch/matching.h: HOG
// descriptors of both images, Q_0 both ways, decoding, reciprocal verification, densification),
// shared by the CPU and CUDA benchmarks: rows "<dev>/deep_matching_match/<W>x<H>x<R0>x<L>"
// (numbers only after the op: bench/compare_torch.py reads the shape as integers).
// This is the "match time per pair" of issue 7. The pair is a uniform random image and the same
// image moved 3 px right and 2 px down: the time does not depend on the content (every reference
// point scores every offset of its window), only the readout's loops do, and little.
#include <cstdint>
#include <memory>
#include <string>

#include "core/rng.h"
#include "kernels/view.h"
#include "models/deepmatch/matching.h"
#include "models/deepmatch/model.h"

namespace cvg::bench {

struct DmMatchCase {
  int64_t width, height, radius, levels;
};

// Built by appending (GCC 12 warns falsely on literal + string).
inline std::string dm_match_name(const char* device, const DmMatchCase& c) {
  std::string s = device;
  s += "/deep_matching_match/";
  const int64_t parts[] = {c.width, c.height, c.radius, c.levels};
  for (int i = 0; i < 4; ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(parts[i]);
  }
  return s;
}

struct DmMatchSetup {
  std::shared_ptr<deepmatch::DeepMatchNet> net;
  Tensor img0, img1;  // 1 x H x W, on the CPU (match_pair moves them, as the app does)
};

inline DmMatchSetup dm_match_setup(const DmMatchCase& c, Device device) {
  manual_seed(9);
  deepmatch::DmGeometry geo;
  geo.radius = c.radius, geo.levels = c.levels;
  DmMatchSetup s;
  s.net = std::make_shared<deepmatch::DeepMatchNet>(deepmatch::DescriptorKind::hog, geo);
  s.net->to(device);
  s.net->eval();
  const Tensor big = rand({1, c.height + 2, c.width + 3});
  s.img0 = narrow(narrow(big, 1, 2, c.height), 2, 3, c.width).contiguous();
  s.img1 = narrow(narrow(big, 1, 0, c.height), 2, 0, c.width).contiguous();
  return s;
}

// A budget that holds every case in one block (the app's default is 1 GB; L = 6 needs one
// block per pair anyway, docs/deepmatch.md "Chunking and memory").
inline constexpr int64_t kDmMatchMaxBytes = int64_t{16} << 30;

}  // namespace cvg::bench
