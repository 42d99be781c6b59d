#include "nn/io/mnist_json.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/serialization.h"

namespace cvg::io {

Tensor read_mnist_json_digit(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    fail("read_mnist_json: '", path, "' is not valid JSON: ", e.what());
  }
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array())
    fail("read_mnist_json: '", path, "' must be an object with a \"data\" array");
  const nlohmann::json& data = doc["data"];
  const int64_t per_image = kMnistSide * kMnistSide;
  const int64_t n = static_cast<int64_t>(data.size());
  if (n == 0 || n % per_image != 0)
    fail("read_mnist_json: '", path, "': \"data\" has ", n, " values, not a positive multiple of ",
         per_image, " (28x28 images)");
  Tensor out = Tensor::empty({n / per_image, kMnistSide, kMnistSide});
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const nlohmann::json& v = data[static_cast<size_t>(i)];
    if (!v.is_number())
      fail("read_mnist_json: '", path, "': value ", i, " is not a number: ", v.dump());
    const double x = v.get<double>();
    if (!(x >= 0.0 && x <= 1.0))
      fail("read_mnist_json: '", path, "': value ", i, " is ", x, ", outside [0, 1]");
    o[i] = static_cast<float>(x);
  }
  return out;
}

MnistJson read_mnist_json(const std::string& dir) {
  std::vector<Tensor> per_digit;
  int64_t total = 0;
  for (int d = 0; d < 10; ++d) {
    const std::string path = (std::filesystem::path(dir) / (std::to_string(d) + ".json")).string();
    per_digit.push_back(read_mnist_json_digit(path));
    total += per_digit.back().size(0);
  }
  MnistJson out;
  out.images = Tensor::empty({total, kMnistSide, kMnistSide});
  out.labels = Tensor::empty({total}, TensorOptions{}.with_dtype(DType::int64));
  float* img = out.images.data<float>();
  int64_t* lab = out.labels.data<int64_t>();
  int64_t row = 0;
  for (int d = 0; d < 10; ++d) {
    const Tensor& t = per_digit[d];
    std::memcpy(img + row * kMnistSide * kMnistSide, t.data<float>(), t.numel() * sizeof(float));
    for (int64_t i = 0; i < t.size(0); ++i) lab[row + i] = d;
    row += t.size(0);
  }
  return out;
}

}  // namespace cvg::io
