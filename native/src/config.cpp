#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "catalogue.hpp"
#include "condition.hpp"
#include "engine_settings.hpp"
#include "log.hpp"
#include "margo_config.hpp"
#include "provider_manager.hpp"

namespace bedrock_engine {

ConfigError::ConfigError(const std::string& message, const std::string& path,
                         std::vector<std::string> error_lines)
    : std::runtime_error(path.empty() ? message : message + " (in \"" + path + "\")"),
      message_(message),
      path_(path),
      error_lines_(std::move(error_lines)) {}

std::string json_type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "int";
    case json::value_t::number_float: return "double";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "unknown";
  }
}

std::string index_path(const std::string& base, size_t i) {
  return base + "[" + std::to_string(i) + "]";
}
std::string key_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}
bool is_int(const json& v) { return v.is_number_integer() || v.is_number_unsigned(); }

json parse_config_text(const std::string& text) {
  log(LogLevel::trace, "Parsing JSON configuration");
  if (text.empty()) return json::object();
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw ConfigError(e.what(), "");
  }
}

namespace {

// expandJson of mochi-bedrock 0.16.1's JsonUtil.hpp, step for step.
void expand_into(const json& input, json& output) {
  for (auto it = input.begin(); it != input.end(); ++it) {
    std::istringstream key_stream(it.key());
    std::string segment;
    json* current = &output;
    while (std::getline(key_stream, segment, '.')) {
      if (!key_stream.eof()) {
        if (current->find(segment) == current->end() || !(*current)[segment].is_object())
          (*current)[segment] = json::object();
        current = &(*current)[segment];
      } else if (it.value().is_object()) {
        expand_into(it.value(), (*current)[segment]);
      } else {
        (*current)[segment] = it.value();
      }
    }
  }
}

// Bedrock's "bedrock" section: {pool (a name), provider_id (an unsigned 16-bit value:
// larger ones wrap, as nlohmann's value<uint16_t> converts), dependency_resolution_timeout}.
json prepare_bedrock_section(const json& cfg, const json& margo) {
  log(LogLevel::trace, "Reading Bedrock config");
  json bedrock = cfg.contains("bedrock") ? cfg["bedrock"] : json::object();
  if (!bedrock.is_object())
    throw ConfigError("Invalid entry type for \"bedrock\" (expected object)", "bedrock");
  json out = {{"pool", margo["rpc_pool"]}, {"provider_id", 0}};
  try {
    (void)bedrock.value("dependency_resolution_timeout", 30.0);
    out["provider_id"] = bedrock.value("provider_id", static_cast<uint16_t>(0));
  } catch (const json::exception& e) {
    throw ConfigError(e.what(), "bedrock");
  }
  if (bedrock.contains("pool")) {
    const json& ref = bedrock["pool"];
    if (!ref.is_string())
      throw ConfigError("Invalid type in Bedrock's \"pool\" entry", "bedrock.pool");
    std::string name = ref.get<std::string>();
    const json& pools = margo["argobots"]["pools"];
    if (std::none_of(pools.begin(), pools.end(), [&](const json& p) { return p["name"] == name; }))
      throw ConfigError("Could not find pool with name \"" + name + "\"", "bedrock.pool");
    out["pool"] = name;
  }
  return out;
}

// A library file that exists (a path, or a name found where the dynamic loader looks).
bool library_found(const std::string& lib) {
  auto exists = [](const std::string& p) { return access(p.c_str(), F_OK) == 0; };
  if (lib.find('/') != std::string::npos) return exists(lib);
  std::vector<std::string> dirs;
  if (const char* ld = std::getenv("LD_LIBRARY_PATH")) {
    std::stringstream ss(ld);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  for (const char* d : {"/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib",
                        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"})
    dirs.push_back(d);
  return std::any_of(dirs.begin(), dirs.end(),
                     [&](const std::string& d) { return exists(d + "/" + lib); });
}

// ModuleManager::loadModulesFromJSON: an array of strings, each loaded once. bedrock-engine
// "loads" the modules of the component catalogue (built in) and refuses other libraries.
json prepare_libraries(const json& cfg) {
  log(LogLevel::trace, "Initialize ModuleContext");
  json out = json::array();
  if (!cfg.contains("libraries") || cfg["libraries"].is_null()) return out;
  const json& libs = cfg["libraries"];
  if (!libs.is_array()) throw ConfigError("\"libraries\" field needs to be an array", "libraries");
  for (size_t i = 0; i < libs.size(); ++i)
    if (!libs[i].is_string())
      throw ConfigError("Module library should be a string", index_path("libraries", i));
  for (size_t i = 0; i < libs.size(); ++i) {
    std::string lib = libs[i].get<std::string>();
    if (std::find(out.begin(), out.end(), json(lib)) != out.end()) continue;
    log(LogLevel::trace, "Loading module(s) from library " + lib);
    bool known = !catalogue_entries_by_library(lib).empty();
    bool path_missing = lib.find('/') != std::string::npos && !library_found(lib);
    if (!known || path_missing) {
      if (!path_missing && library_found(lib))
        throw ConfigError("Could not dlopen library " + lib + ": bedrock-engine does not load "
                              "module libraries outside its component catalogue (deliberate "
                              "difference, see native/README.md); use the Spack-built bedrock",
                          index_path("libraries", i));
      throw ConfigError("Could not dlopen library " + lib + ": " + lib +
                            ": cannot open shared object file: No such file or directory",
                        index_path("libraries", i));
    }
    out.push_back(lib);
  }
  return out;
}

void strip_placement_requests(json& margo) {
  for (auto& x : margo["argobots"]["xstreams"]) x.erase(kPlacementKey);
}

}  // namespace

json expand_dotted_keys(const json& in) {
  if (in.is_null()) return json::object();
  if (!in.is_object())
    throw ConfigError("[json.exception.invalid_iterator.207] cannot use key() for non-object "
                      "iterators", "");
  json out = json::object();
  expand_into(in, out);
  return out;
}

std::vector<std::string> builtin_modules_of_library(const std::string& library) {
  std::vector<std::string> out;
  for (const CatalogueEntry* e : catalogue_entries_by_library(library)) out.push_back(e->type);
  return out;
}

json prepare_config(const json& input, const ConfigContext& ctx,
                    std::vector<std::string>* warnings, PrepareOptions options) {
  json cfg = filter_if(expand_dotted_keys(input), ctx);
  json out = json::object();
  EngineSettings settings = read_engine_settings(cfg.value("bedrock_engine", json()));

  log(LogLevel::trace, "Initializing MargoManager");
  json margo_in = cfg.contains("margo") ? cfg["margo"] : json();
  if (margo_in.is_array()) {
    if (margo_in.size() != 1)
      throw ConfigError("bedrock-engine runs a single Margo engine (got " +
                            std::to_string(margo_in.size()) +
                            " in the \"margo\" array; deliberate difference, see "
                            "native/README.md): use the Spack-built bedrock for several",
                        "margo");
    margo_in = margo_in[0];
  }
  out["margo"] = prepare_margo(margo_in, warnings);
  log(LogLevel::trace, "MargoManager initialized");
  out["bedrock"] = prepare_bedrock_section(cfg, out["margo"]);
  out["libraries"] = prepare_libraries(cfg);
  out["bedrock_engine"] = {{"settings", settings.to_json()}};

  json providers = cfg.contains("providers") ? cfg["providers"] : json();
  if (!options.dry_providers) {
    out["providers"] = providers;
    return out;
  }
  strip_placement_requests(out["margo"]);
  out["providers"] = json::array();
  if (providers.is_null()) return out;
  if (!providers.is_array())
    throw ConfigError("Invalid JSON configuration passed to "
                      "ProviderManager::addProviderListFromJSON (should be an array)",
                      "providers");
  ProviderManager::Environment env;
  env.margo = out["margo"];
  env.bedrock_provider_id = out["bedrock"]["provider_id"].get<uint16_t>();
  for (const auto& lib : out["libraries"])
    for (const auto& type : builtin_modules_of_library(lib)) env.loaded_types.insert(type);
  env.rank = ctx.rank;
  ProviderManager manager(env);
  for (size_t i = 0; i < providers.size(); ++i) manager.add(providers[i], i, nullptr);
  out["providers"] = manager.config();
  return out;
}

json load_config(const std::string& text, const ConfigContext& ctx,
                 std::vector<std::string>* warnings, PrepareOptions options) {
  return prepare_config(parse_config_text(text), ctx, warnings, options);
}

}  // namespace bedrock_engine
