#pragma once
// From Q_0 to matches, flow and scores (the notes' "Readout", section 2, and metrics, section 5).
//
//   decode_matches  one match per reference point p: the offset k maximising Q_0[p, :] (the first
//                   maximum in row-major (ky, kx) order), score Q_0[p, k]; none where the best
//                   score is -inf (or a score is NaN). Only targets inside the second image
//                   (target_w x target_h pixels) compete: S_0 scores targets outside it 0, and
//                   aggregation can make such a score the best. The argmax runs on Q_0's
//                   device. Coordinates are pixel centres (x0, y0) -> (x1, y1).
//   reciprocal      DeepMatching's verification by matching I1 -> I0 as well: a forward match
//                   p -> q is kept when the backward match of the I1 reference point p' nearest
//                   to q lands within stride / 2 (L-inf) of p + (p' - q), i.e. where p would be
//                   if the backward match moved with the rounding of q to the grid.
//   densify         the notes' footnote (nearest-neighbour propagation): pixel x takes the flow
//                   of the highest-scoring match whose p lies within L-inf `radius` of x; where
//                   none does, the flow of the nearest match (Euclidean); ties to the first
//                   match in order, both times; every pixel gets a flow when there is at least
//                   one match. Matches are bucketed in cells, so a pixel looks at a few.
//   metrics         acc@T = fraction of ground-truth pixels whose flow error is <= T pixels
//                   (T = 2, 5, 10), EPE = mean error (the thesis's Table 1: dense after
//                   densification; "matches": at the match positions only).
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/deepmatch/model.h"

namespace cvg::deepmatch {

struct Match {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0, score = 0;
};

// q0: H0 x W0 x K x K (one pair, any device); the second image is target_w x target_h pixels.
// The matches in reference-grid order. The masking runs on blocks of reference rows of at most
// block_bytes of Q_0 (at least one row).
std::vector<Match> decode_matches(const Tensor& q0, const DmGeometry& geo, int64_t target_w, int64_t target_h,
                                  int64_t block_bytes = int64_t{64} << 20);
// forward: matches of I0 -> I1; backward: of I1 -> I0 (decode_matches of the swapped pair,
// whose I1 is w1 x h1 pixels).
std::vector<Match> reciprocal(const std::vector<Match>& forward, const std::vector<Match>& backward,
                              const DmGeometry& geo, int64_t w1, int64_t h1);
// Flow 2 x h x w float32 (dx, dy); zeros when there is no match.
Tensor densify(const std::vector<Match>& matches, int64_t h, int64_t w, double radius);

// Running sums of flow errors.
struct ErrorStats {
  double count = 0, within2 = 0, within5 = 0, within10 = 0, sum = 0;
  void add(double err);
  void merge(const ErrorStats& o);
  double acc(double t) const;  // percent within 2, 5 or 10 pixels
  double epe() const { return count > 0 ? sum / count : 0.0; }
};
// Dense: every pixel with valid != 0 (flow, gt 2 x H x W; valid H x W).
ErrorStats flow_errors(const Tensor& flow, const Tensor& gt, const Tensor& valid);
// At the match positions (rounded to the pixel) that have ground truth.
ErrorStats match_errors(const std::vector<Match>& matches, const Tensor& gt, const Tensor& valid);

// Wall-clock seconds of match_pair's stages, each ended by a device synchronize, so that GPU
// kernels are charged to the stage that queued them.
struct MatchTiming {
  double descriptors = 0;  // both images
  double forward = 0;      // Q_0 of I0 -> I1 and its decoding
  double backward = 0;     // Q_0 of I1 -> I0 and its decoding
  double readout = 0;      // reciprocal verification and densification
  double total() const { return descriptors + forward + backward + readout; }
};

struct MatchResult {
  std::vector<Match> forward;   // one per reference point
  std::vector<Match> verified;  // reciprocal ones
  Tensor flow;                  // 2 x H x W, densified from the verified matches
  MatchTiming timing;
};
// The whole `match` pipeline for one pair of 1 x H x W images: descriptors, Q_0 both ways in
// chunks of at most max_bytes, decoding, verification and densification (radius = stride).
MatchResult match_pair(DeepMatchNet& net, const Tensor& img0, const Tensor& img1, int64_t max_bytes);

// The original DeepMatching tool's format: one "x1 y1 x2 y2 score" line per match.
void write_matches(const std::string& path, const std::vector<Match>& matches);
// Colour-coded flow (hue = direction, saturation = length / max_flow, white = no motion), as a
// uint8 H x W x 3 image; max_flow <= 0 takes the largest length in the field.
Tensor flow_to_color(const Tensor& flow, double max_flow = 0);

}  // namespace cvg::deepmatch
