#include "provider_manager.hpp"

#include <algorithm>
#include <limits>

#include "log.hpp"
#include "provider_schema.hpp"

namespace bedrock_engine {

namespace {

// A failure while resolving one dependency, worded as DependencyFinder words it.
struct DependencyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// DependencyFinder's pattern: identifier(:digits)?(@locator)?
struct ProviderSpec {
  std::string ident, id, locator;
  bool has_locator = false;
};
bool parse_provider_spec(const std::string& spec, ProviderSpec& out) {
  size_t at = spec.find('@');
  std::string head = spec.substr(0, at);
  if (at != std::string::npos) {
    out.has_locator = true;
    out.locator = spec.substr(at + 1);
    if (out.locator.empty()) return false;
  }
  size_t colon = head.find(':');
  out.ident = head.substr(0, colon);
  if (colon != std::string::npos) {
    out.id = head.substr(colon + 1);
    if (!all_digits(out.id)) return false;
  }
  return is_identifier(out.ident);
}

}  // namespace

ProviderManager::ProviderManager(Environment env) : env_(std::move(env)) {}

ProviderEntry* ProviderManager::find(uint16_t provider_id) const {
  for (const auto& e : entries_)
    if (e->provider_id == provider_id) return e.get();
  return nullptr;
}

uint16_t ProviderManager::available_id() const {
  for (uint32_t i = 0; i < std::numeric_limits<uint16_t>::max() - 1u; ++i) {
    auto id = static_cast<uint16_t>(i);
    if (id != env_.bedrock_provider_id && !find(id)) return id;
  }
  return 0;
}

json ProviderManager::resolve_provider(const DependencySpec& dep, const std::string& spec) const {
  const std::string& type = dep.type;
  auto by_name = [&](const std::string& name) -> const ProviderEntry* {
    for (const auto& e : entries_)
      if (e->name == name) return e.get();
    return nullptr;
  };
  auto by_id = [&](const std::string& ptype, uint16_t id) -> const ProviderEntry* {
    for (const auto& e : entries_)
      if (e->type == ptype && e->provider_id == id) return e.get();
    return nullptr;
  };
  ProviderSpec ps;
  if (!parse_provider_spec(spec, ps))
    throw DependencyError("Ill-formated dependency specification \"" + spec + "\"");
  if (!ps.has_locator) {  // local provider: "name" or "type:id"
    if (ps.id.empty()) {
      const ProviderEntry* p = by_name(ps.ident);
      if (!p) throw DependencyError("Could not find provider with spec \"" + ps.ident + "\"");
      if (p->type != type)
        throw DependencyError("Invalid type " + p->type + " for dependency \"" + ps.ident +
                              "\" (expected " + type + ")");
      return p->name;
    }
    auto id = static_cast<uint16_t>(std::stoul(ps.id));
    const ProviderEntry* p = by_id(type, id);
    if (!p)
      throw DependencyError("Could not find provider with spec \"" + type + ":" +
                            std::to_string(id) + "\"");
    return p->name;
  }
  std::string ident = ps.ident, id_str = ps.id, locator = ps.locator;
  if (!id_str.empty() && ident != type)
    throw DependencyError("Invalid provider type in \"" + spec + "\" (expected " + type + ")");
  bool local = locator == "local" || (!env_.self_address.empty() && locator == env_.self_address) ||
               (all_digits(locator) && std::stoi(locator) == env_.rank);
  if (!local)
    throw DependencyError("bedrock-engine does not resolve provider dependencies on other "
                          "processes (\"" + spec + "\"); deliberate difference, see "
                          "native/README.md: use the Spack-built bedrock");
  const ProviderEntry* p = nullptr;
  if (id_str.empty()) {
    p = by_name(ident);
    if (!p) throw DependencyError("Could not find provider with spec \"" + ident + "\"");
  } else {
    auto id = static_cast<uint16_t>(std::stoul(id_str));
    p = by_id(type, id);
    if (!p)
      throw DependencyError("Could not find local provider of type " + type + " with id " +
                            std::to_string(id));
  }
  if (p->type != type)
    throw DependencyError("Invalid type " + type + " for provider handle to provider of type " +
                          p->type);
  std::string self = env_.self_address.empty() ? "local" : env_.self_address;
  return type + ":" + std::to_string(p->provider_id) + "@" + self;
}

json ProviderManager::resolve(const DependencySpec& dep, const json& spec) const {
  const json& abt = env_.margo["argobots"];
  if (spec.is_string()) {
    std::string s = spec.get<std::string>();
    log(LogLevel::trace, "DependencyFinder search for " + s + " of type " + dep.type);
    if (dep.type == "pool") {
      for (const auto& p : abt["pools"])
        if (p["name"] == s) return s;
      throw DependencyError("Could not find pool with name \"" + s + "\"");
    }
    if (dep.type == "xstream") {
      for (const auto& x : abt["xstreams"])
        if (x["name"] == s) return s;
      throw DependencyError("Could not find xstream with name \"" + s + "\"");
    }
    if (dep.type == "margo") {
      if (!all_digits(s))
        throw DependencyError("Invalid margo instance specification \"" + s +
                              "\" (expected integer index)");
      if (std::stoul(s) >= 1)
        throw DependencyError("Could not find margo instance at index " + s);
      return s;
    }
    return resolve_provider(dep, s);
  }
  // by index (nlohmann's get<size_t>: a negative index wraps like in Bedrock)
  auto index = spec.get<size_t>();
  log(LogLevel::trace, "DependencyFinder search dependency of type " + dep.type + " at index " +
                           std::to_string(index));
  if (dep.type == "pool") {
    if (index >= abt["pools"].size())
      throw DependencyError("Could not find pool at index " + std::to_string(index));
    return abt["pools"][index]["name"];
  }
  if (dep.type == "xstream") {
    if (index >= abt["xstreams"].size())
      throw DependencyError("Could not find xstream at index \"" + std::to_string(index) + "\"");
    return abt["xstreams"][index]["name"];
  }
  if (dep.type == "margo") {
    if (index >= 1)
      throw DependencyError("Could not find margo instance at index " + std::to_string(index));
    return std::to_string(index);
  }
  throw DependencyError("Only pools, xstreams, and margo instances can be referenced by index");
}

void ProviderManager::add(const json& d, size_t index, const Create* create) {
  const std::string path = index_path("providers", index);
  std::string schema = provider_schema_error(d);
  if (!schema.empty()) throw ConfigError(schema, path);

  const std::string type = d["type"].get<std::string>();
  const std::string name = d["name"].get<std::string>();
  long long engine = d.value("engine", 0LL);
  if (engine >= 1)
    throw ConfigError("Invalid engine index " + std::to_string(engine) +
                          " (only 1 engines available)",
                      key_path(path, "engine"));
  auto provider_id = static_cast<uint16_t>(d.value("provider_id", 65535LL));
  if (provider_id == env_.bedrock_provider_id)
    throw ConfigError("Bedrock already uses provider ID " + std::to_string(provider_id),
                      key_path(path, "provider_id"));

  // ModuleManager::getDependencies: the type must be registered by a loaded library.
  if (!env_.loaded_types.count(type))
    throw ConfigError("Could not find registration function for module \"" + type + "\"",
                      key_path(path, "type"));
  const CatalogueEntry* entry = catalogue_entry(type);

  auto e = std::make_unique<ProviderEntry>();
  e->name = name;
  e->type = type;
  e->entry = entry;
  e->tags = d.value("tags", json::array());
  e->config = d.value("config", json::object());
  const json deps = d.value("dependencies", json::object());
  for (const auto& dep : entry->dependencies) {
    log(LogLevel::trace, "Resolving dependency " + dep.name);
    std::string dpath = key_path(key_path(path, "dependencies"), dep.name);
    try {
      if (!deps.contains(dep.name)) {
        if (dep.required)
          throw DependencyError("Missing dependency \"" + dep.name + "\" of type \"" + dep.type +
                                "\" in provider configuration");
        continue;
      }
      json value = deps[dep.name];
      if (!dep.array) {
        if (value.is_array() && value.size() == 1) value = value[0];
        if (value.is_array())
          throw DependencyError("[json.exception.type_error.302] type must be number, but is "
                                "array");
        e->dependencies[dep.name] = resolve(dep, value);
      } else {
        if (value.is_string() || value.is_number_unsigned()) value = json::array({value});
        if (!value.is_array())
          throw DependencyError("Dependency \"" + dep.name + "\" should be an array");
        e->dependencies[dep.name] = json::array();
        for (const auto& v : value) e->dependencies[dep.name].push_back(resolve(dep, v));
      }
    } catch (const std::exception& ex) {  // DependencyError, or nlohmann's conversions
      throw ConfigError("While resolving dependency \"" + dep.name + "\" (type \"" + dep.type +
                            "\"): " + ex.what(),
                        deps.contains(dep.name) ? dpath : key_path(path, "dependencies"));
    }
  }
  for (auto it = deps.begin(); it != deps.end(); ++it)
    if (!e->dependencies.contains(it.key()) && !entry->open_dependencies)
      log(LogLevel::debug, "provider \"" + name + "\": dependency \"" + it.key() +
                               "\" is not declared by the " + type +
                               " module: dropped, as Bedrock does");

  for (const auto& other : entries_)
    if (other->name == name)
      throw ConfigError("Name \"" + name + "\" already used by another provider",
                        key_path(path, "name"));
  if (provider_id == std::numeric_limits<uint16_t>::max()) provider_id = available_id();
  if (find(provider_id))
    throw ConfigError("Another provider already uses provider ID " + std::to_string(provider_id),
                      key_path(path, "provider_id"));
  e->provider_id = provider_id;
  e->pool_name = e->dependencies.contains("pool") ? e->dependencies["pool"].get<std::string>()
                                                  : env_.margo["rpc_pool"].get<std::string>();
  if (env_.find_pool) e->pool = env_.find_pool(e->pool_name);

  if (create) {
    const std::string prefix = "While creating provider \"" + name + "\" of type \"" + type +
                               "\" (ModuleManager::createComponent): ";
    if (!entry->engine_implemented)
      throw ConfigError(prefix + "bedrock-engine does not implement provider type \"" + type +
                            "\" (deliberate difference, see native/README.md): " +
                            entry->raw["engine"]["note"].get<std::string>(),
                        key_path(path, "type"));
    ComponentArgs args;
    args.name = name;
    args.type = type;
    args.provider_id = provider_id;
    args.config = e->config;
    args.pool = e->pool;
    args.path = path;
    args.entry = entry;
    try {
      e->component = (*create)(args);
    } catch (const ConfigError& ex) {
      throw ConfigError(prefix + ex.message(), ex.path().empty() ? key_path(path, "config")
                                                                  : ex.path());
    } catch (const std::exception& ex) {
      throw ConfigError(prefix + ex.what(), key_path(path, "config"));
    }
  }
  log(LogLevel::trace, "Registered provider " + name + " of type " + type +
                           " with provider id " + std::to_string(provider_id));
  entries_.push_back(std::move(e));
}

json ProviderManager::config() const {
  json out = json::array();
  for (const auto& e : entries_)
    out.push_back({{"name", e->name},
                   {"type", e->type},
                   {"provider_id", e->provider_id},
                   {"engine", 0},
                   {"config", e->component ? e->component->config()
                                           : reported_config(*e->entry, e->config)},
                   {"tags", e->tags},
                   {"dependencies", e->dependencies}});
  return out;
}

}  // namespace bedrock_engine
