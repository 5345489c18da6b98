// Bedrock's ProviderManager: providers are checked and created one after the other, in array
// order, with the checks in Bedrock 0.16.1's order (ProviderManager.cpp,
// DependencyFinder.cpp): the provider schema, the engine index, Bedrock's own provider id, the
// dependencies the module declares (the others are dropped), the name, the id (65535 or
// absent: the lowest free one), then the component itself. Used by the server (creating the
// components) and by load_config (checking only).
#pragma once
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "component.hpp"
#include "config.hpp"

namespace bedrock_engine {

struct ProviderEntry {
  std::string name, type;
  uint16_t provider_id = 0;
  json tags = json::array();
  json dependencies = json::object();  // as reported: declared keys only, resolved names
  std::string pool_name;
  Pool* pool = nullptr;
  const CatalogueEntry* entry = nullptr;
  json config;                          // as given
  std::unique_ptr<Component> component; // null when only checked
};

class ProviderManager {
 public:
  struct Environment {
    json margo;                              // the effective margo section
    uint16_t bedrock_provider_id = 0;
    std::set<std::string> loaded_types;      // registered by the loaded libraries
    std::string self_address;                // "" when not running
    int rank = 0;
    std::function<Pool*(const std::string&)> find_pool;  // null when only checking
  };
  using Create = std::function<std::unique_ptr<Component>(ComponentArgs&)>;

  explicit ProviderManager(Environment env);

  // Checks (and, with `create`, creates) the provider described at providers[index]. Throws
  // ConfigError with Bedrock's message.
  void add(const json& description, size_t index, const Create* create);

  const std::vector<std::unique_ptr<ProviderEntry>>& entries() const { return entries_; }
  ProviderEntry* find(uint16_t provider_id) const;
  // The "providers" section as bedrock-query reports it.
  json config() const;

 private:
  json resolve(const DependencySpec& dep, const json& spec) const;
  json resolve_provider(const DependencySpec& dep, const std::string& spec) const;
  uint16_t available_id() const;

  Environment env_;
  std::vector<std::unique_ptr<ProviderEntry>> entries_;
};

}  // namespace bedrock_engine
