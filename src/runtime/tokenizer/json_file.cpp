#include "json_file.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "losa/errors.hpp"

namespace losa::runtime {

bool is_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, "cannot be opened for reading");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw FileError(path, "could not be read");
  return bytes.str();
}

Json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw FileError(path, std::string("is not valid JSON: ") + e.what());
  }
}

const Json& json_member(const Json& object, const char* key, const std::string& path,
                        const std::string& where) {
  if (!object.is_object()) throw FileError(path, "'" + where + "' must be a JSON object");
  const auto it = object.find(key);
  if (it == object.end()) throw FileError(path, "'" + where + "' lacks '" + key + "'");
  return *it;
}

bool json_bool(const Json& object, const char* key, bool fallback, const std::string& path,
               const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    throw FileError(path, "'" + where + "." + key + "' must be true or false, got " + it->dump());
  }
  return it->get<bool>();
}

std::string json_string(const Json& object, const char* key, const std::string& path,
                        const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  if (!it->is_string()) {
    throw FileError(path, "'" + where + "." + key + "' must be a string, got " + it->dump());
  }
  return it->get<std::string>();
}

}  // namespace losa::runtime
