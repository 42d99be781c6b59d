#include "nn/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <zlib.h>

#include "core/error.h"

namespace cvg::nn {

namespace {

const char* const kStepKey = "train/step";
const char* const kSeedKey = "rng/seed";
const char* const kOffsetKey = "rng/offset";
const std::set<std::string> kReservedPrefixes = {"train", "rng"};
const std::set<std::string> kReservedMeta = {"format", "app", "config", "commit", "step"};

Tensor int64_scalar(int64_t v) {
  return from_vector<int64_t>({v}, {}, TensorOptions{}.with_dtype(DType::int64));
}

// safetensors has no unsigned 64-bit type: keep the bit pattern in an int64.
int64_t as_signed(uint64_t v) {
  int64_t s;
  std::memcpy(&s, &v, sizeof s);
  return s;
}
uint64_t as_unsigned(int64_t v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

void check_prefixes(const CheckpointState& state, const char* op) {
  std::set<std::string> seen;
  auto check = [&](const std::string& p) {
    CVG_CHECK(!p.empty() && p.find('/') == std::string::npos, op, ": prefix '", p,
              "' must be non-empty and contain no '/'");
    CVG_CHECK(!kReservedPrefixes.count(p), op, ": prefix '", p, "' is reserved");
    CVG_CHECK(seen.insert(p).second, op, ": prefix '", p, "' is used twice");
  };
  for (auto& [p, m] : state.modules) {
    check(p);
    CVG_CHECK(m != nullptr, op, ": module '", p, "' is null");
  }
  for (auto& [p, o] : state.optimizers) {
    check(p);
    CVG_CHECK(o != nullptr, op, ": optimizer '", p, "' is null");
  }
}

// The 0-d int64 tensor `name`, with errors naming the file.
int64_t read_int64_scalar(const SafetensorsFile& f, const std::string& name) {
  auto it = f.tensors.find(name);
  CVG_CHECK(it != f.tensors.end(), "checkpoint ", f.source, ": missing tensor '", name, "'");
  const Tensor& t = it->second;
  CVG_CHECK(t.dtype() == DType::int64 && t.dim() == 0, "checkpoint ", f.source, ": tensor '", name,
            "' must be an int64 scalar, got ", dtype_name(t.dtype()), " ", t.shape());
  return t.item<int64_t>();
}

// Checks that `t` (tensor `key` of the file) has the dtype and shape that `expected` has.
void check_like(const SafetensorsFile& f, const std::string& key, const Tensor& t,
                const Tensor& expected, const char* what) {
  CVG_CHECK(t.dtype() == expected.dtype(), "checkpoint ", f.source, ": tensor '", key, "' has dtype ",
            dtype_name(t.dtype()), " but the ", what, " expects ", dtype_name(expected.dtype()));
  CVG_CHECK(t.shape() == expected.shape(), "checkpoint ", f.source, ": tensor '", key, "' has shape ",
            t.shape(), " but the ", what, " expects ", expected.shape());
}

// Every tensor of the file whose name starts with "<prefix>/", keyed by the rest of the name.
std::map<std::string, Tensor> under(const SafetensorsFile& f, const std::string& prefix) {
  std::map<std::string, Tensor> out;
  const std::string p = prefix + "/";
  for (auto& [name, t] : f.tensors)
    if (name.compare(0, p.size(), p) == 0) out[name.substr(p.size())] = t;
  return out;
}

// Builds the module's state from the file, checking names, dtypes and shapes.
StateDict module_state(const SafetensorsFile& f, const std::string& prefix, const Module& m) {
  const StateDict expected = m.state_dict();
  const std::map<std::string, Tensor> found = under(f, prefix);
  StateDict out;
  for (auto& [name, want] : expected) {
    const std::string key = prefix + "/" + name;
    auto it = found.find(name);
    CVG_CHECK(it != found.end(), "checkpoint ", f.source, ": missing tensor '", key, "' (",
              dtype_name(want.dtype()), " ", want.shape(), ")");
    check_like(f, key, it->second, want, "model");
    out[name] = it->second;
  }
  for (auto& [name, _] : found)
    CVG_CHECK(expected.count(name), "checkpoint ", f.source, ": unexpected tensor '", prefix, "/",
              name, "' (the module has no such parameter or buffer)");
  return out;
}

// Builds the optimizer's state from the file, checking every entry against the parameters.
StateDict optimizer_state(const SafetensorsFile& f, const std::string& prefix, const Optimizer& o) {
  const std::map<std::string, Tensor> found = under(f, prefix);
  CVG_CHECK(!found.empty(), "checkpoint ", f.source, ": holds no optimizer state under '", prefix,
            "/'");
  const std::vector<Tensor>& params = o.params();
  auto n = f.metadata.find(prefix + ".num_params");
  CVG_CHECK(n != f.metadata.end() && n->second == std::to_string(params.size()), "checkpoint ",
            f.source, ": optimizer '", prefix, "' was saved with ",
            (n == f.metadata.end() ? std::string("an unknown number of") : n->second),
            " parameters, this one has ", params.size());
  StateDict out;
  out["step"] = int64_scalar(read_int64_scalar(f, prefix + "/step"));
  const std::string lr_key = prefix + "/lr";
  auto lr = found.find("lr");
  CVG_CHECK(lr != found.end(), "checkpoint ", f.source, ": missing tensor '", lr_key, "'");
  CVG_CHECK(lr->second.dtype() == DType::float64 && lr->second.dim() == 0, "checkpoint ", f.source,
            ": tensor '", lr_key, "' must be a float64 scalar, got ", dtype_name(lr->second.dtype()),
            " ", lr->second.shape());
  out["lr"] = lr->second;
  // Per parameter, the names of its state tensors: all parameters that have state must have the
  // same set (each optimizer creates all of its per-parameter state on the first update), which
  // catches a file that lost, say, "3.exp_avg_sq" while keeping "3.exp_avg".
  std::map<size_t, std::set<std::string>> names;
  for (auto& [key, t] : found) {
    if (key == "step" || key == "lr") continue;
    const size_t dot = key.find('.');
    const std::string index = key.substr(0, dot);
    const bool numeric = dot != std::string::npos && dot > 0 && dot + 1 < key.size() &&
                         index.find_first_not_of("0123456789") == std::string::npos &&
                         index.size() <= 9;
    CVG_CHECK(numeric, "checkpoint ", f.source, ": unexpected tensor '", prefix, "/", key,
              "' (optimizer state is named '<parameter index>.<state>')");
    const size_t i = std::stoul(index);
    CVG_CHECK(i < params.size(), "checkpoint ", f.source, ": tensor '", prefix, "/", key,
              "' names parameter ", i, " but the optimizer has ", params.size());
    check_like(f, prefix + "/" + key, t, params[i], "optimizer's parameter");
    names[i].insert(key.substr(dot + 1));
    out[key] = t;
  }
  for (auto& [i, set] : names) {
    const auto& first = names.begin()->second;
    for (const std::string& s : first)
      CVG_CHECK(set.count(s), "checkpoint ", f.source, ": missing tensor '", prefix, "/", i, ".", s,
                "' (parameter ", names.begin()->first, " has '", s, "')");
    for (const std::string& s : set)
      CVG_CHECK(first.count(s), "checkpoint ", f.source, ": missing tensor '", prefix, "/",
                names.begin()->first, ".", s, "' (parameter ", i, " has '", s, "')");
  }
  return out;
}

CheckpointInfo info_of(const SafetensorsFile& f) {
  auto format = f.metadata.find("format");
  CVG_CHECK(format != f.metadata.end(), "checkpoint ", f.source,
            ": not a cvgrad checkpoint (its metadata has no 'format')");
  CVG_CHECK(format->second == kCheckpointFormat, "checkpoint ", f.source, ": format '",
            format->second, "' is not the supported '", kCheckpointFormat, "'");
  CheckpointInfo info;
  info.path = f.source;
  info.step = read_int64_scalar(f, kStepKey);
  CVG_CHECK(info.step >= 0, "checkpoint ", f.source, ": negative step ", info.step);
  info.rng.seed = as_unsigned(read_int64_scalar(f, kSeedKey));
  info.rng.offset = as_unsigned(read_int64_scalar(f, kOffsetKey));
  for (auto& [k, v] : f.metadata) {
    if (k == "app") info.meta.app = v;
    else if (k == "config") info.meta.config = v;
    else if (k == "commit") info.meta.commit = v;
    else if (k != "format" && k != "step") info.meta.extra[k] = v;
  }
  for (auto& [name, _] : f.tensors) info.tensor_names.push_back(name);
  return info;
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointState& state, int64_t step,
                     const CheckpointMeta& meta) {
  check_prefixes(state, "save_checkpoint");
  CVG_CHECK(step >= 0, "save_checkpoint: step must be >= 0, got ", step);
  TensorMap tensors;
  MetadataMap metadata = meta.extra;
  for (auto& [k, _] : meta.extra)
    CVG_CHECK(!kReservedMeta.count(k), "save_checkpoint: metadata key '", k, "' is reserved");
  for (auto& [prefix, m] : state.modules)
    for (auto& [name, t] : m->state_dict()) tensors[prefix + "/" + name] = t;
  for (auto& [prefix, o] : state.optimizers) {
    for (auto& [key, t] : o->state_dict()) tensors[prefix + "/" + key] = t;
    const std::string k = prefix + ".num_params";
    CVG_CHECK(!metadata.count(k), "save_checkpoint: metadata key '", k, "' is reserved");
    metadata[k] = std::to_string(o->params().size());
  }
  tensors[kStepKey] = int64_scalar(step);
  const Generator& g = global_generator();
  tensors[kSeedKey] = int64_scalar(as_signed(g.seed));
  tensors[kOffsetKey] = int64_scalar(as_signed(g.offset));
  metadata["format"] = kCheckpointFormat;
  metadata["app"] = meta.app;
  metadata["config"] = meta.config;
  metadata["commit"] = meta.commit;
  metadata["step"] = std::to_string(step);
  save_safetensors(path, tensors, metadata);
}

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     int64_t step, const CheckpointMeta& meta) {
  // Saving only reads: state_dict() is const, so the casts only fit the shared CheckpointState.
  CheckpointState state;
  state.modules.emplace_back("model", const_cast<Module*>(&model));
  if (optimizer) state.optimizers.emplace_back("optim", const_cast<Optimizer*>(optimizer));
  save_checkpoint(path, state, step, meta);
}

CheckpointInfo load_checkpoint(const std::string& path, const CheckpointState& state,
                               bool restore_rng) {
  check_prefixes(state, "load_checkpoint");
  const SafetensorsFile f = load_safetensors(path);
  const CheckpointInfo info = info_of(f);
  // Validate everything first so that a bad file changes nothing.
  std::vector<StateDict> module_states, optimizer_states;
  for (auto& [prefix, m] : state.modules) module_states.push_back(module_state(f, prefix, *m));
  for (auto& [prefix, o] : state.optimizers)
    optimizer_states.push_back(optimizer_state(f, prefix, *o));
  for (size_t i = 0; i < state.modules.size(); ++i)
    state.modules[i].second->load_state_dict(module_states[i], /*strict=*/true);
  for (size_t i = 0; i < state.optimizers.size(); ++i)
    state.optimizers[i].second->load_state_dict(optimizer_states[i]);
  if (restore_rng) global_generator() = info.rng;
  return info;
}

CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer,
                               bool restore_rng) {
  CheckpointState state;
  state.modules.emplace_back("model", &model);
  if (optimizer) state.optimizers.emplace_back("optim", optimizer);
  return load_checkpoint(path, state, restore_rng);
}

std::string checkpoint_id(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CVG_CHECK(in, "checkpoint: cannot read ", path);
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(in.gcount()));
  }
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
  return hex;
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  return info_of(load_safetensors(path));
}

}  // namespace cvg::nn
