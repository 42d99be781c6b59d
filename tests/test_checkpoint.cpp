// Checkpoints (nn/checkpoint.h): round trips of model, optimizer, step, generator and metadata;
// every kind of broken or mismatched file gives a cvg::Error naming the file and the tensor and
// leaves the model untouched; random corruption never crashes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/serialization.h"
#include "kernels/loss.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "tests/support/test_utils.h"

using namespace cvg;
using namespace cvg::testing;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<nn::Sequential> mlp(int64_t hidden = 4) {
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(3, hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(hidden, 2)});
}

// A couple of Adam steps so that the optimizer has state to save.
void train(nn::Module& model, nn::Optimizer& opt, int steps) {
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    const Tensor x = randn({5, 3});
    mse_loss(model.forward(x), zeros({5, 2})).backward();
    opt.step();
  }
}

bool equal_state(const nn::StateDict& a, const nn::StateDict& b) {
  if (a.size() != b.size()) return false;
  for (auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second.dtype() != t.dtype() || it->second.shape() != t.shape())
      return false;
    if (max_abs_diff(t.to(DType::float64), it->second.to(DType::float64)) != 0) return false;
  }
  return true;
}

nn::StateDict snapshot(const nn::Module& m) {
  nn::StateDict out;
  for (auto& [k, t] : m.state_dict()) out[k] = t.clone();
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) { return read_file_bytes(path); }
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Rewrites a checkpoint with `edit` applied to its tensors (keeping its metadata).
template <typename Edit>
std::string edited(const TempDir& dir, const std::string& src, const std::string& name, Edit edit) {
  SafetensorsFile f = load_safetensors(src);
  edit(f.tensors, f.metadata);
  const std::string path = dir.file(name);
  save_safetensors(path, f.tensors, f.metadata);
  return path;
}

// A saved checkpoint of an MLP trained for 3 Adam steps.
struct Saved {
  TempDir dir;
  std::string path = dir.file("ckpt.safetensors");
  std::shared_ptr<nn::Sequential> model;
  Saved() {
    manual_seed(11);
    model = mlp();
    nn::Adam opt(model->parameters(), nn::AdamOptions{.lr = 0.01});
    train(*model, opt, 3);
    nn::save_checkpoint(path, *model, &opt, 3, {.app = "test", .config = "{}", .commit = "", .extra = {}});
  }
};

// Loads `path` into a fresh MLP with Adam and expects an Error mentioning every part of
// `parts`; the model must be unchanged afterwards.
void expect_rejected(const std::string& path, const std::vector<std::string>& parts,
                     int64_t hidden = 4) {
  manual_seed(99);
  auto model = mlp(hidden);
  nn::Adam opt(model->parameters(), nn::AdamOptions{});
  const nn::StateDict before = snapshot(*model);
  const Generator gen_before = global_generator();
  try {
    nn::load_checkpoint(path, *model, &opt);
    FAIL("load_checkpoint accepted " << path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    for (const std::string& p : parts) CHECK_THAT(msg, Contains(p));
  }
  CHECK(equal_state(before, model->state_dict()));
  CHECK(opt.steps() == 0);
  CHECK(global_generator().seed == gen_before.seed);
  CHECK(global_generator().offset == gen_before.offset);
}

}  // namespace

TEST_CASE("checkpoint: model, optimizer, step, generator and metadata round trip", "[nn][checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("run.safetensors");
  manual_seed(5);
  auto model = mlp();
  nn::Adam opt(model->parameters(), nn::AdamOptions{.lr = 0.02});
  train(*model, opt, 4);
  global_generator().seed = 0xfedcba9876543210ull;  // above INT64_MAX: stored as a bit pattern
  global_generator().offset = 123456789;
  nn::save_checkpoint(path, *model, &opt, 4,
                      {.app = "cvg-test", .config = R"({"lr": 0.02})", .commit = "abc123",
                       .extra = {{"note", "hello"}}});

  // A fresh model and optimizer, and a generator somewhere else.
  manual_seed(77);
  auto fresh = mlp();
  nn::Adam fresh_opt(fresh->parameters(), nn::AdamOptions{.lr = 0.5});
  CHECK_FALSE(equal_state(model->state_dict(), fresh->state_dict()));
  const nn::CheckpointInfo info = nn::load_checkpoint(path, *fresh, &fresh_opt);

  CHECK(equal_state(model->state_dict(), fresh->state_dict()));
  CHECK(equal_state(opt.state_dict(), fresh_opt.state_dict()));
  CHECK(fresh_opt.steps() == 4);
  CHECK(fresh_opt.lr() == 0.02);
  CHECK(info.step == 4);
  CHECK(info.path == path);
  CHECK(global_generator().seed == 0xfedcba9876543210ull);
  CHECK(global_generator().offset == 123456789);
  CHECK(info.meta.app == "cvg-test");
  CHECK(info.meta.config == R"({"lr": 0.02})");
  CHECK(info.meta.commit == "abc123");
  CHECK(info.meta.extra.at("note") == "hello");

  // The layout other readers see: plain safetensors with the documented names.
  const SafetensorsFile raw = load_safetensors(path);
  for (const char* name : {"model/0.weight", "model/0.bias", "model/2.weight", "model/2.bias",
                           "optim/step", "optim/lr", "optim/0.exp_avg", "optim/3.exp_avg_sq",
                           "train/step", "rng/seed", "rng/offset"})
    CHECK(raw.contains(name));
  CHECK(raw.metadata.at("format") == nn::kCheckpointFormat);
  CHECK(raw.metadata.at("step") == "4");
  CHECK(raw.metadata.at("optim.num_params") == "4");

  // read_checkpoint_info needs no model.
  const nn::CheckpointInfo only = nn::read_checkpoint_info(path);
  CHECK(only.step == 4);
  CHECK(only.rng.offset == 123456789);
  CHECK(only.meta.commit == "abc123");
}

TEST_CASE("checkpoint: model only, without restoring the generator", "[nn][checkpoint]") {
  Saved s;
  manual_seed(3);
  auto fresh = mlp();
  const Generator before = global_generator();
  nn::load_checkpoint(s.path, *fresh, nullptr, /*restore_rng=*/false);  // optim/ entries ignored
  CHECK(equal_state(s.model->state_dict(), fresh->state_dict()));
  CHECK(global_generator().offset == before.offset);
  CHECK(global_generator().seed == before.seed);
}

TEST_CASE("checkpoint: several modules and optimizers under their own prefixes", "[nn][checkpoint]") {
  TempDir dir;
  manual_seed(2);
  auto g = mlp(), d = mlp(6);
  nn::Adam og(g->parameters(), nn::AdamOptions{});
  nn::SGD od(d->parameters(), nn::SgdOptions{.lr = 0.1, .momentum = 0.9});
  train(*g, og, 2);
  train(*d, od, 3);
  nn::CheckpointState state{{{"generator", g.get()}, {"discriminator", d.get()}},
                            {{"optim_g", &og}, {"optim_d", &od}}};
  nn::save_checkpoint(dir.file("gan.safetensors"), state, 7);

  auto g2 = mlp(), d2 = mlp(6);
  nn::Adam og2(g2->parameters(), nn::AdamOptions{});
  nn::SGD od2(d2->parameters(), nn::SgdOptions{.lr = 0.1, .momentum = 0.9});
  nn::CheckpointState state2{{{"generator", g2.get()}, {"discriminator", d2.get()}},
                             {{"optim_g", &og2}, {"optim_d", &od2}}};
  CHECK(nn::load_checkpoint(dir.file("gan.safetensors"), state2).step == 7);
  CHECK(equal_state(g->state_dict(), g2->state_dict()));
  CHECK(equal_state(d->state_dict(), d2->state_dict()));
  CHECK(equal_state(og.state_dict(), og2.state_dict()));
  CHECK(equal_state(od.state_dict(), od2.state_dict()));

  // Swapped prefixes: the shapes differ, so the mix-up is caught.
  nn::CheckpointState swapped{{{"generator", d2.get()}}, {}};
  CHECK_THROWS_WITH(nn::load_checkpoint(dir.file("gan.safetensors"), swapped),
                    Contains("generator/0.bias") && Contains("shape [4]"));
  CHECK_THROWS_WITH(nn::save_checkpoint(dir.file("x"), nn::CheckpointState{{{"rng", g.get()}}, {}}, 0),
                    Contains("reserved"));
  CHECK_THROWS_WITH(nn::save_checkpoint(dir.file("x"), nn::CheckpointState{{{"a/b", g.get()}}, {}}, 0),
                    Contains("'/'"));
}

TEST_CASE("checkpoint: truncated files are rejected, never a crash", "[nn][checkpoint]") {
  Saved s;
  const std::vector<uint8_t> bytes = read_bytes(s.path);
  for (size_t keep : {size_t{0}, size_t{4}, size_t{8}, size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    const std::string path = s.dir.file("truncated.safetensors");
    write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(keep)));
    expect_rejected(path, {path});
  }
}

TEST_CASE("checkpoint: a garbage header is rejected", "[nn][checkpoint]") {
  Saved s;
  std::vector<uint8_t> bytes = read_bytes(s.path);
  // Keep the length prefix, scribble over the JSON.
  const char garbage[] = "{\"model/0.weight\": [not json at all";
  std::copy(garbage, garbage + sizeof garbage - 1, bytes.begin() + 8);
  const std::string path = s.dir.file("garbage.safetensors");
  write_bytes(path, bytes);
  expect_rejected(path, {path});

  // A length prefix far beyond the file.
  bytes = read_bytes(s.path);
  bytes[7] = 0x7f;
  write_bytes(path, bytes);
  expect_rejected(path, {path});
}

TEST_CASE("checkpoint: out-of-range data offsets are rejected", "[nn][checkpoint]") {
  Saved s;
  const SafetensorsFile f = load_safetensors(s.path);
  // Rebuild the header with one tensor's end offset pushed past the data section.
  std::vector<uint8_t> bytes = read_bytes(s.path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[i]) << (8 * i);
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  const size_t key = header.find("\"rng/seed\"");
  REQUIRE(key != std::string::npos);
  const size_t offsets = header.find("data_offsets", key);
  const size_t open = header.find('[', offsets), close = header.find(']', offsets);
  const std::string replacement = "[0,99999999]";
  header.replace(open, close - open + 1, replacement);
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(uint64_t(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 8 + static_cast<long>(n), bytes.end());
  const std::string path = s.dir.file("offsets.safetensors");
  write_bytes(path, out);
  expect_rejected(path, {path});
}

TEST_CASE("checkpoint: wrong dtypes are rejected naming the tensor", "[nn][checkpoint]") {
  Saved s;
  // A float64 model's checkpoint loaded into a float32 model.
  TempDir dir;
  manual_seed(4);
  auto wide = mlp();
  wide->to(DType::float64);
  nn::Adam wide_opt(wide->parameters(), nn::AdamOptions{});
  const std::string f64 = dir.file("f64.safetensors");
  nn::save_checkpoint(f64, *wide, &wide_opt, 0);
  expect_rejected(f64, {f64, "model/0.bias", "float64", "float32"});

  // Optimizer state of the wrong dtype.
  const std::string bad_state = edited(s.dir, s.path, "state.safetensors", [](TensorMap& t, MetadataMap&) {
    t["optim/1.exp_avg"] = t["optim/1.exp_avg"].to(DType::float64);
  });
  expect_rejected(bad_state, {bad_state, "optim/1.exp_avg", "float64"});

  // The step must be an int64 scalar.
  const std::string bad_step = edited(s.dir, s.path, "step.safetensors", [](TensorMap& t, MetadataMap&) {
    t["train/step"] = t["train/step"].to(DType::float32);
  });
  expect_rejected(bad_step, {bad_step, "train/step", "int64"});
}

TEST_CASE("checkpoint: missing and unexpected tensors are rejected naming them", "[nn][checkpoint]") {
  Saved s;
  const std::string no_bias = edited(s.dir, s.path, "a.safetensors",
                                     [](TensorMap& t, MetadataMap&) { t.erase("model/2.bias"); });
  expect_rejected(no_bias, {no_bias, "missing tensor 'model/2.bias'"});

  const std::string no_moment = edited(s.dir, s.path, "b.safetensors",
                                       [](TensorMap& t, MetadataMap&) { t.erase("optim/2.exp_avg_sq"); });
  expect_rejected(no_moment, {no_moment, "optim/2.exp_avg_sq"});

  const std::string no_rng = edited(s.dir, s.path, "c.safetensors",
                                    [](TensorMap& t, MetadataMap&) { t.erase("rng/offset"); });
  expect_rejected(no_rng, {no_rng, "missing tensor 'rng/offset'"});

  const std::string no_optim = edited(s.dir, s.path, "d.safetensors", [](TensorMap& t, MetadataMap&) {
    for (auto it = t.begin(); it != t.end();) it = it->first.rfind("optim/", 0) == 0 ? t.erase(it) : std::next(it);
  });
  expect_rejected(no_optim, {no_optim, "no optimizer state"});

  const std::string extra = edited(s.dir, s.path, "e.safetensors", [](TensorMap& t, MetadataMap&) {
    t["model/3.weight"] = zeros({2, 2});
  });
  expect_rejected(extra, {extra, "unexpected tensor 'model/3.weight'"});

  const std::string stray = edited(s.dir, s.path, "f.safetensors", [](TensorMap& t, MetadataMap&) {
    t["optim/9.exp_avg"] = zeros({2, 2});
  });
  expect_rejected(stray, {stray, "optim/9.exp_avg", "parameter 9"});

  const std::string no_format = edited(s.dir, s.path, "g.safetensors",
                                       [](TensorMap&, MetadataMap& m) { m.erase("format"); });
  expect_rejected(no_format, {no_format, "not a cvgrad checkpoint"});
}

TEST_CASE("checkpoint: a model of another shape is rejected naming the tensor", "[nn][checkpoint]") {
  Saved s;
  // Names are checked in sorted order, so the first mismatch reported is model/0.bias.
  expect_rejected(s.path, {s.path, "model/0.bias", "shape [4]", "expects [5]"}, /*hidden=*/5);
}

TEST_CASE("checkpoint: random byte corruption gives an Error or a valid load, never a crash",
          "[nn][checkpoint]") {
  Saved s;
  const std::vector<uint8_t> bytes = read_bytes(s.path);
  std::mt19937 rng(1234);
  const std::string path = s.dir.file("fuzz.safetensors");
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> b = bytes;
    // Mostly the header, where a flipped byte changes structure rather than values.
    const size_t header_end = std::min<size_t>(b.size(), 8 + 600);
    const size_t pos = trial % 4 == 0 ? rng() % b.size() : rng() % header_end;
    b[pos] = static_cast<uint8_t>(b[pos] ^ (1u << (rng() % 8)));
    write_bytes(path, b);
    auto model = mlp();
    nn::Adam opt(model->parameters(), nn::AdamOptions{});
    try {
      nn::load_checkpoint(path, *model, &opt);
    } catch (const Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
}
