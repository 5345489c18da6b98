// A built-in Bedrock component (a provider type this engine implements), what it gets from the
// server, and the registry of the types it implements (components/registry.cpp). Adding one:
// its entry in share/components.json (engine.implemented: true), its file under components/,
// one line in the registry; tests/test_components.py checks the registry matches the
// catalogue.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue.hpp"
#include "engine_settings.hpp"

namespace bedrock_engine {

class Pool;
class Xstream;

// What the server offers its components.
class ComponentHost {
 public:
  virtual ~ComponentHost() = default;
  virtual std::string self_address() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // MPI_Allgather of one string per rank; nullptr if this engine is not part of an MPI job.
  virtual const std::function<std::vector<std::string>(const std::string&)>* allgather()
      const = 0;
  virtual const EngineSettings& settings() const = 0;
  // An execution stream owned by a component (abt_io's urings), serving `pool`, placed like
  // the next Argobots ES would be; it runs until the server finalizes.
  virtual Xstream* start_component_xstream(const std::string& name, Pool* pool) = 0;
};

struct ComponentArgs {
  std::string name;
  std::string type;
  uint16_t provider_id = 0;
  json config;               // as given (after "__if__" filtering)
  Pool* pool = nullptr;      // its "pool" dependency, else the handler (rpc) pool
  std::string path;          // "providers[i]", for messages
  const CatalogueEntry* entry = nullptr;
  ComponentHost* host = nullptr;
};

// A component's refusal, worded as the real module words it; Bedrock wraps it as
// 'While creating provider "x" of type "t" (ModuleManager::createComponent): <what()>'.
struct ComponentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Component {
 public:
  virtual ~Component() = default;
  // The config the real module reports (bedrock-query's "providers[i].config").
  virtual json config() const = 0;
  // Executes an RPC (on the provider's pool); returns the response payload. Throws RpcError
  // (status) or DecodeError (bad request).
  virtual std::string handle(uint32_t rpc_id, std::string_view payload) = 0;
  // Threads the component started (reported under bedrock_engine.threads).
  virtual std::vector<Xstream*> threads() const { return {}; }
};

using ComponentFactory = std::function<std::unique_ptr<Component>(ComponentArgs&)>;

// type -> factory, for every type this engine implements.
const std::map<std::string, ComponentFactory>& component_factories();

// The factories (components/*.cpp).
std::unique_ptr<Component> make_flock(ComponentArgs& args);
std::unique_ptr<Component> make_yokan(ComponentArgs& args);
std::unique_ptr<Component> make_abt_io(ComponentArgs& args);
std::unique_ptr<Component> make_warabi(ComponentArgs& args);

}  // namespace bedrock_engine
