#include "models/landmarks/data.h"

#include <filesystem>

#include "core/autograd.h"
#include "kernels/unary.h"
#include "kernels/view.h"
#include "nn/data/synth_faces.h"
#include "nn/data/transforms.h"
#include "nn/io/idx.h"
#include "nn/io/image.h"
#include "nn/io/mnist_json.h"

namespace cvg::landmarks {

namespace fs = std::filesystem;

namespace {

// Seeds of the synthetic train and test faces: distinct Philox keys, so no face repeats.
constexpr uint64_t kTestSeedSalt = 0x9e3779b97f4a7c15ull;

std::vector<Tensor> backgrounds_under(const std::string& data_dir) {
  std::vector<Tensor> all;
  for (const char* sub : {"opencv", "skimage"}) {
    const fs::path dir = fs::path(data_dir) / sub;
    if (!fs::is_directory(dir)) continue;
    for (Tensor& t : data::load_backgrounds(dir.string())) all.push_back(std::move(t));
  }
  return all;
}

// Rows [begin, end) of a stack of C x h x w images resized to S x S, as a TensorDataset.
std::shared_ptr<const data::Dataset> resized_rows(const std::vector<Tensor>& images, size_t begin,
                                                  size_t end, int64_t size) {
  std::vector<Tensor> rows;
  for (size_t i = begin; i < end; ++i) rows.push_back(data::resize_bilinear(images[i], size, size));
  CVG_CHECK(!rows.empty(), "landmarks data: an empty split");
  return std::make_shared<data::TensorDataset>(data::stack_rows(rows, "input"));
}

// 28 x 28 uint8 rows of one class as 1 x 28 x 28 float images in [0, 1].
std::vector<Tensor> class_rows(const Tensor& images, const Tensor& labels, int64_t cls, int64_t limit) {
  const Tensor imgs = images.to(DType::float32) * (1.0 / 255.0);
  const std::vector<int64_t> ys = labels.to(DType::int64).to_vector<int64_t>();
  std::vector<Tensor> out;
  for (size_t i = 0; i < ys.size() && static_cast<int64_t>(out.size()) < limit; ++i)
    if (ys[i] == cls) out.push_back(reshape(data::row(imgs, static_cast<int64_t>(i)), {1, 28, 28}));
  return out;
}

int64_t parse_class(const std::string& source, const std::string& value) {
  try {
    size_t used = 0;
    const int64_t c = std::stoll(value, &used);
    if (used == value.size() && c >= 0 && c <= 9) return c;
  } catch (const std::exception&) {
  }
  fail("--data ", source, ": expected a class 0-9 after ':', got '", value, "'");
}

std::string need_file(const fs::path& p) {
  CVG_CHECK(fs::exists(p), "landmarks data: ", p.string(), " is missing; run scripts/fetch-data");
  return p.string();
}

}  // namespace

LandmarkData open_landmark_data(const DataSpec& spec) {
  CVG_CHECK(spec.size >= 8 && spec.train_count >= 1 && spec.test_count >= 1,
            "landmarks data: need size >= 8 and positive counts, got size=", spec.size,
            " train=", spec.train_count, " test=", spec.test_count);
  NoGradGuard no_grad;
  LandmarkData d;
  const std::string& src = spec.source;
  const size_t colon = src.find(':');
  const std::string kind = src.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : src.substr(colon + 1);

  if (kind == "synth") {
    CVG_CHECK(colon == std::string::npos, "--data: synth takes no argument, got '", src, "'");
    data::SynthFaceOptions o;
    o.size = spec.size;
    o.scale_max = spec.face_scale;
    o.scale_min = 0.8 * spec.face_scale;
    o.backgrounds = backgrounds_under(spec.data_dir);
    d.train = std::make_shared<data::SynthFaces>(spec.train_count, spec.seed, o);
    d.test = std::make_shared<data::SynthFaces>(spec.test_count, spec.seed ^ kTestSeedSalt, o);
    d.channels = 3;
    d.labelled = true;
    d.description = str_cat("synthetic faces (", spec.train_count, " train, ", spec.test_count,
                            " test, ", o.backgrounds.empty() ? "procedural" : "real-photo",
                            " backgrounds)");
    return d;
  }
  if (kind == "folder") {
    CVG_CHECK(!arg.empty() && fs::is_directory(arg), "--data folder:PATH: '", arg,
              "' is not a folder");
    std::vector<Tensor> images;
    for (const std::string& f : io::list_image_files(arg)) {
      if (static_cast<int64_t>(images.size()) >= spec.train_count + spec.test_count) break;
      images.push_back(io::read_image_chw(f, 3));
    }
    CVG_CHECK(images.size() >= 2, "--data folder:", arg, ": needs at least 2 images, found ",
              images.size());
    const size_t split = images.size() - std::max<size_t>(1, images.size() / 10);
    d.train = resized_rows(images, 0, split, spec.size);
    d.test = resized_rows(images, split, images.size(), spec.size);
    d.channels = 3;
    d.description = str_cat(images.size(), " images from ", arg);
    return d;
  }
  if (kind == "fashion-mnist") {
    const int64_t cls = parse_class(kind, arg);
    const fs::path dir = fs::path(spec.data_dir) / "fashion-mnist";
    const auto train = class_rows(io::read_idx(need_file(dir / "train-images-idx3-ubyte.gz")),
                                  io::read_idx(need_file(dir / "train-labels-idx1-ubyte.gz")), cls,
                                  spec.train_count);
    const auto test = class_rows(io::read_idx(need_file(dir / "t10k-images-idx3-ubyte.gz")),
                                 io::read_idx(need_file(dir / "t10k-labels-idx1-ubyte.gz")), cls,
                                 spec.test_count);
    d.train = resized_rows(train, 0, train.size(), spec.size);
    d.test = resized_rows(test, 0, test.size(), spec.size);
    d.channels = 1;
    d.description = str_cat("Fashion-MNIST class ", cls, " (", train.size(), " train, ",
                            test.size(), " test)");
    return d;
  }
  if (kind == "mnist") {
    const int64_t cls = parse_class(kind, arg);
    const fs::path file = fs::path(spec.data_dir) / "mnist-json" / (std::to_string(cls) + ".json");
    const Tensor digits = io::read_mnist_json_digit(need_file(file));  // float [N, 28, 28] in [0, 1]
    std::vector<Tensor> rows;
    for (int64_t i = 0; i < digits.size(0) && i < spec.train_count + spec.test_count; ++i)
      rows.push_back(reshape(data::row(digits, i), {1, 28, 28}));
    CVG_CHECK(rows.size() >= 2, "--data mnist:", cls, ": fewer than 2 digits");
    const size_t split = rows.size() - std::max<size_t>(1, rows.size() / 10);
    d.train = resized_rows(rows, 0, split, spec.size);
    d.test = resized_rows(rows, split, rows.size(), spec.size);
    d.channels = 1;
    d.description = str_cat("MNIST digit ", cls, " (", split, " train, ", rows.size() - split, " test)");
    return d;
  }
  fail("--data: unknown source '", src,
       "'; expected synth, folder:PATH, fashion-mnist:CLASS or mnist:DIGIT");
}

}  // namespace cvg::landmarks
