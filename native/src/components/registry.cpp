// The provider types bedrock-engine implements: one line each.
#include "component.hpp"

namespace bedrock_engine {

const std::map<std::string, ComponentFactory>& component_factories() {
  static const std::map<std::string, ComponentFactory> factories = {
      {"flock", make_flock},
      {"yokan", make_yokan},
      {"abt_io", make_abt_io},
      {"warabi", make_warabi},
  };
  return factories;
}

}  // namespace bedrock_engine
