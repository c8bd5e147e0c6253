// The added tokens and special-token names of tokenizer_config.json, added_tokens.json and
// special_tokens_map.json, and the choice of files for a model folder.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "losa/errors.hpp"
#include "tokenizer_spec.hpp"

namespace losa::runtime {
namespace {

bool is_directory(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::string join(const std::string& dir, const char* name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

/// A token id written as a JSON key ("151643"): digits only, within TokenId.
TokenId parse_id_key(const std::string& key, const std::string& path, const std::string& where) {
  const bool digits =
      !key.empty() && key.size() <= 10 &&
      std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
  const long long value = digits ? std::atoll(key.c_str()) : -1;
  if (value < 0 || value > std::numeric_limits<TokenId>::max()) {
    throw FileError(path, "'" + where + "' has key '" + key + "', which is not a token id");
  }
  return static_cast<TokenId>(value);
}

/// A special-token field: a name, a {"content": name} object, or a list of those.
void collect_names(const Json& value, std::vector<std::string>& names) {
  if (value.is_string()) {
    names.push_back(value.get<std::string>());
  } else if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    names.push_back(value["content"].get<std::string>());
  } else if (value.is_array()) {
    for (const Json& item : value) collect_names(item, names);
  }
}

std::optional<std::string> single_name(const Json& config, const char* key) {
  std::vector<std::string> names;
  if (config.contains(key)) collect_names(config[key], names);
  if (names.empty()) return std::nullopt;
  return names.front();
}

}  // namespace

AddedToken parse_added_token(const Json& entry, TokenId id, const std::string& path,
                             const std::string& where) {
  AddedToken token;
  token.id = id;
  const Json& content = json_member(entry, "content", path, where);
  if (!content.is_string() || content.get<std::string>().empty()) {
    throw FileError(path, "'" + where + ".content' must be a non-empty string");
  }
  token.content = content.get<std::string>();
  token.special = json_bool(entry, "special", false, path, where);
  token.normalized = json_bool(entry, "normalized", !token.special, path, where);
  token.lstrip = json_bool(entry, "lstrip", false, path, where);
  token.rstrip = json_bool(entry, "rstrip", false, path, where);
  token.single_word = json_bool(entry, "single_word", false, path, where);
  return token;
}

SpecialTokenNames read_special_token_names(const std::string& model_dir) {
  std::string path = join(model_dir, "tokenizer_config.json");
  if (!is_file(path)) path = join(model_dir, "special_tokens_map.json");
  SpecialTokenNames names;
  if (!is_file(path)) return names;
  const Json config = read_json_file(path);
  if (!config.is_object()) throw FileError(path, "must hold a JSON object");
  // transformers marks these special whatever added_tokens_decoder says (SDAR's "<|MASK|>").
  for (const char* key :
       {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
        "additional_special_tokens", "extra_special_tokens"}) {
    if (config.contains(key)) collect_names(config[key], names.all);
  }
  names.eos = single_name(config, "eos_token");
  names.mask = single_name(config, "mask_token");
  return names;
}

void read_config_added_tokens(const std::string& model_dir, TokenizerSpec& spec) {
  const std::string config_path = join(model_dir, "tokenizer_config.json");
  if (is_file(config_path)) {
    const Json config = read_json_file(config_path);
    const auto decoder = config.find("added_tokens_decoder");
    if (config.is_object() && decoder != config.end()) {
      if (!decoder->is_object()) {
        throw FileError(config_path, "'added_tokens_decoder' must be a JSON object");
      }
      for (const auto& [key, entry] : decoder->items()) {
        const std::string where = "added_tokens_decoder." + key;
        spec.added.push_back(
            parse_added_token(entry, parse_id_key(key, config_path, where), config_path, where));
      }
      spec.added_path = config_path;
      spec.source += ", " + config_path;
      return;
    }
  }
  // The older layout: added_tokens.json maps each added token to its id, without flags.
  const std::string legacy_path = join(model_dir, "added_tokens.json");
  if (!is_file(legacy_path)) return;
  const Json legacy = read_json_file(legacy_path);
  if (!legacy.is_object()) throw FileError(legacy_path, "must map token texts to ids");
  const SpecialTokenNames names = read_special_token_names(model_dir);
  for (const auto& [content, id] : legacy.items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 ||
        id.get<long long>() > std::numeric_limits<TokenId>::max() || content.empty()) {
      throw FileError(legacy_path,
                      "entry '" + content + "' must map a non-empty text to a token id");
    }
    AddedToken token;
    token.id = static_cast<TokenId>(id.get<long long>());
    token.content = content;
    token.special = std::find(names.all.begin(), names.all.end(), content) != names.all.end();
    token.normalized = !token.special;  // Hugging Face's default for a token without flags
    spec.added.push_back(token);
  }
  spec.added_path = legacy_path;
  spec.source += ", " + legacy_path;
}

TokenizerSpec read_tokenizer_spec(const std::string& model_dir) {
  const auto bad_folder = [&](const std::string& reason) {
    return ArgumentError("Tokenizer::load", "model_dir", reason + ": '" + model_dir + "'");
  };
  if (model_dir.empty() || !is_directory(model_dir)) throw bad_folder("is not a folder");
  TokenizerSpec spec;
  const std::string tokenizer_json = join(model_dir, "tokenizer.json");
  const std::string vocab = join(model_dir, "vocab.json");
  const std::string merges = join(model_dir, "merges.txt");
  if (is_file(tokenizer_json)) {
    read_tokenizer_json(tokenizer_json, spec);
  } else {
    if (!is_file(vocab) && !is_file(merges)) {
      throw bad_folder("has no tokenizer files (tokenizer.json, or vocab.json + merges.txt)");
    }
    if (!is_file(vocab)) throw bad_folder("has merges.txt but no vocab.json");
    if (!is_file(merges)) throw bad_folder("has vocab.json but no merges.txt");
    read_vocab_and_merges(vocab, merges, spec);
    read_config_added_tokens(model_dir, spec);
  }
  spec.names = read_special_token_names(model_dir);
  return spec;
}

}  // namespace losa::runtime
