#include "engine_settings.hpp"

namespace bedrock_engine {

namespace {
const char* kSection = "bedrock_engine";
}

EngineSettings read_engine_settings(const json& section) {
  EngineSettings s;
  if (section.is_null()) return s;
  if (!section.is_object())
    throw ConfigError("\"bedrock_engine\" (bedrock-engine's own settings) should be an object",
                      kSection);
  for (auto it = section.begin(); it != section.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    std::string path = key_path(kSection, key);
    if (key == "test_rpcs") {
      if (!v.is_array())
        throw ConfigError("\"test_rpcs\" should be an array of names (forward_ping, abt_io)",
                          path);
      for (size_t i = 0; i < v.size(); ++i) {
        std::string name = v[i].is_string() ? v[i].get<std::string>() : "";
        if (name == "forward_ping") s.forward_ping = true;
        else if (name == "abt_io") s.abt_io_files = true;
        else
          throw ConfigError("unknown test RPC " + v[i].dump() + " (bedrock-engine has "
                            "forward_ping and abt_io)", index_path(path, i));
      }
    } else if (key == "abt_io_directory") {
      if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>()[0] != '/')
        throw ConfigError("\"abt_io_directory\" should be an absolute directory path", path);
      s.abt_io_directory = v.get<std::string>();
    } else if (key == "flock_max_members") {
      if (!is_int(v) || v.get<long long>() < 1 || v.get<long long>() > 1000000)
        throw ConfigError("\"flock_max_members\" should be an integer between 1 and 1000000",
                          path);
      s.flock_max_members = static_cast<size_t>(v.get<long long>());
    } else if (key == "version" || key == "pid" || key == "rank" || key == "size" ||
               key == "xstreams" || key == "threads" || key == "settings") {
      // what a running config reports here: ignored when it is fed back
    } else {
      throw ConfigError("unknown bedrock-engine setting \"" + key +
                            "\" (known: test_rpcs, abt_io_directory, flock_max_members)",
                        path);
    }
  }
  if (s.abt_io_files && s.abt_io_directory.empty())
    throw ConfigError("the abt_io test RPCs need \"abt_io_directory\": remote file I/O stays "
                      "beneath it", key_path(kSection, "test_rpcs"));
  return s;
}

json EngineSettings::to_json() const {
  json rpcs = json::array();
  if (forward_ping) rpcs.push_back("forward_ping");
  if (abt_io_files) rpcs.push_back("abt_io");
  json out = {{"test_rpcs", rpcs}, {"flock_max_members", flock_max_members}};
  if (!abt_io_directory.empty()) out["abt_io_directory"] = abt_io_directory;
  return out;
}

}  // namespace bedrock_engine
