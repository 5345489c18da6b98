// The component catalogue (share/components.json), compiled into the engine: per provider type
// its module library, the dependency keys its module declares, what the real module reports as
// its running config, and whether this engine implements it. The Python side reads the same
// file (bedrock_deploy.components); tests/test_components.py checks both agree.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bedrock_engine {

using json = nlohmann::json;

struct DependencySpec {
  std::string name;
  std::string type;  // "pool", "xstream", "margo" or a provider type
  bool required = false;
  bool array = false;
};

struct CatalogueEntry {
  std::string type;
  std::string library;
  bool engine_implemented = false;
  bool open_dependencies = false;
  std::vector<DependencySpec> dependencies;
  json raw;  // the whole entry
};

// The catalogue as compiled in (parsed once).
const json& catalogue_json();
// nullptr if the catalogue has no such type; libraries are given by name or path (their file
// name is compared).
const CatalogueEntry* catalogue_entry(const std::string& type);
// The types a module library registers (one library may register several).
std::vector<const CatalogueEntry*> catalogue_entries_by_library(const std::string& library);

// For a config key that selects an implementation ("database.type" of yokan, "group.type" of
// flock): the catalogue's entry for the value, or nullptr (*known = false if the key is absent).
struct ChoiceLookup {
  std::string path;   // "database.type"
  json value;         // the selected value (null if absent)
  const json* entry;  // the catalogue's entry for it, nullptr if unknown or absent
  bool required = false;
};
std::vector<ChoiceLookup> catalogue_choices(const CatalogueEntry& entry, const json& config);

// The config as the real module reports it: the catalogue's reported defaults (and those of
// the selected choices) filled in where the config leaves them out, dropped keys removed.
json reported_config(const CatalogueEntry& entry, const json& config);

}  // namespace bedrock_engine
