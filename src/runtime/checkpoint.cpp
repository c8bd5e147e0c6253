// A Hugging Face model folder -> Weights: the index, the shards, every tensor by name and shape.
#include <map>
#include <set>
#include <sys/stat.h>

#include "assemble_weights.hpp"
#include "json_fields.hpp"
#include "losa/errors.hpp"
#include "losa/runtime/weights.hpp"
#include "safetensors.hpp"

namespace losa::runtime {
namespace {

using detail::json;
using detail::SafetensorsEntry;
using detail::SafetensorsFile;

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Where each tensor lives: the files, and for each name its file and entry.
struct TensorSource {
  std::string file;
  const SafetensorsEntry* entry = nullptr;
};

struct OpenCheckpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, TensorSource> tensors;
  std::string index_file;  // empty for a single model.safetensors
  std::map<std::string, std::string> index;  // name -> shard path, from the index
};

// Opens the shards that model.safetensors.index.json names and checks that the index and the
// shards agree tensor by tensor.
void open_sharded(const std::string& folder, OpenCheckpoint& ck) {
  const json doc = detail::parse_json(read_text_file(ck.index_file), ck.index_file, "the index");
  const detail::JsonFields f(doc, ck.index_file);
  const json& map = f.at("weight_map");
  if (!map.is_object()) f.fail("weight_map", "must be an object {tensor: shard file}");
  std::map<std::string, std::string> first_tensor_of;  // shard -> a tensor it should hold
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it.value().is_string())
      throw CheckpointError(ck.index_file, it.key(), "its shard must be a file name string");
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard[0] == '/' || shard.find("..") != std::string::npos)
      throw CheckpointError(ck.index_file, it.key(),
                            "shard '" + shard + "' must be a file name inside the folder");
    ck.index[it.key()] = folder + "/" + shard;
    first_tensor_of.emplace(folder + "/" + shard, it.key());
  }
  for (const auto& [shard, tensor] : first_tensor_of) {
    if (!file_exists(shard))
      throw CheckpointError(shard, tensor,
                            "shard named by model.safetensors.index.json is missing");
    ck.files.push_back(std::make_unique<SafetensorsFile>(shard));
    for (const auto& [name, entry] : ck.files.back()->tensors()) {
      auto listed = ck.index.find(name);
      if (listed == ck.index.end())
        throw CheckpointError(shard, name, "unexpected tensor: not listed in the index");
      if (listed->second != shard)
        throw CheckpointError(shard, name, "the index places this tensor in " + listed->second);
      ck.tensors[name] = {shard, &entry};
    }
  }
  for (const auto& [name, shard] : ck.index)
    if (!ck.tensors.count(name))
      throw CheckpointError(shard, name, "missing: the index places it in this shard");
}

TensorView take(const OpenCheckpoint& ck, const std::string& fallback_file, const std::string& name,
                const std::vector<int64_t>& shape) {
  auto it = ck.tensors.find(name);
  if (it == ck.tensors.end()) {
    auto listed = ck.index.find(name);
    throw CheckpointError(listed != ck.index.end() ? listed->second : fallback_file, name,
                          "missing tensor (expected shape " + shape_string(shape) + ")");
  }
  const SafetensorsEntry& e = *it->second.entry;
  if (e.shape != shape)
    throw CheckpointError(it->second.file, name,
                          "shape " + shape_string(e.shape) + " but the config needs " +
                              shape_string(shape));
  return TensorView{name, e.dtype, e.shape, e.data};
}

}  // namespace

Weights load_checkpoint(const std::string& folder) {
  Weights w;
  w.config = load_model_config(folder);
  w.source = "checkpoint " + folder;
  auto ck = std::make_shared<OpenCheckpoint>();
  const std::string single = folder + "/model.safetensors";
  ck->index_file = folder + "/model.safetensors.index.json";
  std::string fallback_file = ck->index_file;
  if (file_exists(ck->index_file)) {
    open_sharded(folder, *ck);
  } else if (file_exists(single)) {
    ck->index_file.clear();
    fallback_file = single;
    ck->files.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& [name, entry] : ck->files.back()->tensors()) ck->tensors[name] = {single, &entry};
  } else {
    throw CheckpointError(folder, "", "has neither model.safetensors nor model.safetensors.index.json");
  }

  // Every expected tensor by name and shape; anything else in the files is an error.
  std::set<std::string> used;
  std::map<std::string, TensorView> views;
  for (const auto& [name, shape] : expected_tensors(w.config)) {
    views[name] = take(*ck, fallback_file, name, shape);
    used.insert(name);
  }
  const ModelConfig& c = w.config;
  if (c.tie_word_embeddings && ck->tensors.count("lm_head.weight")) {  // checked, then unused
    take(*ck, fallback_file, "lm_head.weight", {c.vocab_size, c.hidden_size});
    used.insert("lm_head.weight");
  }
  for (const auto& [name, source] : ck->tensors)
    if (!used.count(name))
      throw CheckpointError(source.file, name, "unexpected tensor: the config has no place for it");

  detail::assign_roles(w, views);
  w.storage = ck;
  return w;
}

}  // namespace losa::runtime
