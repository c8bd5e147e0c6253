#pragma once
// Reading the JSON files of a model folder with errors that name the file and the entry.
#include <nlohmann/json.hpp>
#include <string>

namespace losa::runtime {

using Json = nlohmann::json;

/// Whether `path` names a regular file.
bool is_file(const std::string& path);

/// The bytes of `path`; FileError when it cannot be read.
std::string read_file(const std::string& path);

/// The JSON document in `path`; FileError with the parser's position when it is malformed.
Json read_json_file(const std::string& path);

/// `object[key]` where `where` names `object` inside the file ("model", "added_tokens[3]");
/// FileError when `object` is not an object or lacks `key`.
const Json& json_member(const Json& object, const char* key, const std::string& path,
                        const std::string& where);

/// `object[key]` as a bool, `fallback` when absent or null; FileError for another type.
bool json_bool(const Json& object, const char* key, bool fallback, const std::string& path,
               const std::string& where);

/// `object[key]` as a string, "" when absent or null; FileError for another type.
std::string json_string(const Json& object, const char* key, const std::string& path,
                        const std::string& where);

}  // namespace losa::runtime
