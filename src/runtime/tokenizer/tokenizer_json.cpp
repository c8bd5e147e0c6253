// tokenizer.json (Hugging Face `tokenizers`' format): the parts of its pipeline that Qwen2/Qwen3
// use. Anything else is refused by name rather than tokenized differently.
#include <limits>

#include "losa/errors.hpp"
#include "tokenizer_spec.hpp"

namespace losa::runtime {
namespace {

[[noreturn]] void unsupported(const std::string& path, const std::string& where,
                              const Json& value) {
  std::string shown = value.dump();
  if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
  throw FileError(path, "'" + where + "' is " + shown +
                            ", which losa does not implement (it implements the Qwen2/Qwen3 "
                            "pipeline: NFC, Split regex + ByteLevel, BPE, ByteLevel decoder)");
}

std::string type_of(const Json& object, const std::string& path, const std::string& where) {
  return json_string(object, "type", path, where);
}

void read_normalizer(const Json& normalizer, const std::string& path, TokenizerSpec& spec) {
  spec.normalization = Normalization::kNone;
  if (normalizer.is_null()) return;
  const std::string type = type_of(normalizer, path, "normalizer");
  if (type == "NFC") {
    spec.normalization = Normalization::kNFC;
    return;
  }
  if (type == "Sequence") {
    const Json& parts = json_member(normalizer, "normalizers", path, "normalizer");
    if (parts.is_array() && parts.empty()) return;
    if (parts.is_array() && parts.size() == 1 &&
        type_of(parts[0], path, "normalizer.normalizers[0]") == "NFC") {
      spec.normalization = Normalization::kNFC;
      return;
    }
  }
  unsupported(path, "normalizer", normalizer);
}

/// Sequence[Split(Regex, Isolated), ByteLevel(add_prefix_space = false, use_regex = false)].
void read_pre_tokenizer(const Json& pre, const std::string& path, TokenizerSpec& spec) {
  if (pre.is_null() || type_of(pre, path, "pre_tokenizer") != "Sequence") {
    unsupported(path, "pre_tokenizer", pre);
  }
  const Json& parts = json_member(pre, "pretokenizers", path, "pre_tokenizer");
  if (!parts.is_array() || parts.size() != 2) unsupported(path, "pre_tokenizer", pre);
  const Json& split = parts[0];
  const std::string split_where = "pre_tokenizer.pretokenizers[0]";
  const Json& pattern = json_member(split, "pattern", path, split_where);
  if (type_of(split, path, split_where) != "Split" || !pattern.is_object() ||
      !pattern.contains("Regex") || !pattern["Regex"].is_string() ||
      json_string(split, "behavior", path, split_where) != "Isolated" ||
      json_bool(split, "invert", false, path, split_where)) {
    unsupported(path, split_where, split);
  }
  spec.split_pattern = pattern["Regex"].get<std::string>();
  const Json& byte_level = parts[1];
  const std::string byte_where = "pre_tokenizer.pretokenizers[1]";
  if (type_of(byte_level, path, byte_where) != "ByteLevel" ||
      json_bool(byte_level, "add_prefix_space", false, path, byte_where) ||
      json_bool(byte_level, "use_regex", true, path, byte_where)) {
    unsupported(path, byte_where, byte_level);
  }
}

void read_model(const Json& model, const std::string& path, TokenizerSpec& spec) {
  const std::string type = type_of(model, path, "model");
  if (!type.empty() && type != "BPE") unsupported(path, "model.type", model["type"]);
  if (json_bool(model, "byte_fallback", false, path, "model")) {
    unsupported(path, "model.byte_fallback", model["byte_fallback"]);
  }
  if (json_bool(model, "ignore_merges", false, path, "model")) {
    unsupported(path, "model.ignore_merges", model["ignore_merges"]);
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!json_string(model, affix, path, "model").empty()) {
      unsupported(path, std::string("model.") + affix, model[affix]);
    }
  }
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    unsupported(path, "model.dropout", model["dropout"]);
  }
  read_vocab_object(json_member(model, "vocab", path, "model"), path, "model.vocab", spec);
  const Json& merges = json_member(model, "merges", path, "model");
  if (!merges.is_array()) throw FileError(path, "'model.merges' must be a list");
  spec.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    TokenizerSpec::MergeLine merge;
    merge.where = "model.merges[" + std::to_string(i) + "]";
    const Json& entry = merges[i];
    // Two layouts: ["left", "right"] (tokenizers >= 0.20) and "left right" (older files).
    bool ok = false;
    if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      merge.left = entry[0].get<std::string>();
      merge.right = entry[1].get<std::string>();
      ok = !merge.left.empty() && !merge.right.empty();
    } else if (entry.is_string()) {
      ok = parse_merge_text(entry.get<std::string>(), merge);
    }
    if (!ok) {
      throw FileError(path, "'" + merge.where + "' must be [left, right] or \"left right\", got " +
                                entry.dump());
    }
    spec.merges.push_back(std::move(merge));
  }
  spec.merges_path = path;
}

}  // namespace

void read_tokenizer_json(const std::string& path, TokenizerSpec& spec) {
  const Json doc = read_json_file(path);
  if (!doc.is_object()) throw FileError(path, "must hold a JSON object");
  read_model(json_member(doc, "model", path, "(top level)"), path, spec);
  read_normalizer(doc.value("normalizer", Json()), path, spec);
  read_pre_tokenizer(doc.value("pre_tokenizer", Json()), path, spec);
  const Json decoder = doc.value("decoder", Json());
  if (decoder.is_null() || type_of(decoder, path, "decoder") != "ByteLevel") {
    unsupported(path, "decoder", decoder);
  }
  const Json added = doc.value("added_tokens", Json::array());
  if (!added.is_array()) throw FileError(path, "'added_tokens' must be a list");
  for (std::size_t i = 0; i < added.size(); ++i) {
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    const Json& id = json_member(added[i], "id", path, where);
    if (!id.is_number_integer() || id.get<long long>() < 0 ||
        id.get<long long>() > std::numeric_limits<TokenId>::max()) {
      throw FileError(path, "'" + where + ".id' must be a non-negative integer, got " + id.dump());
    }
    spec.added.push_back(
        parse_added_token(added[i], static_cast<TokenId>(id.get<long long>()), path, where));
  }
  spec.added_path = path;
  spec.source = path;
}

}  // namespace losa::runtime
