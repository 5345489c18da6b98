// Bedrock 0.16 / Margo 0.24 configuration semantics: parsing, dotted-key expansion, "__if__"
// filtering (condition.hpp), the margo section (margo_config.hpp), the bedrock section and the
// libraries, in the order the real daemon reads them, giving the effective ("running")
// configuration that bedrock-query reports. Providers are checked and created by
// provider_manager.hpp.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace bedrock_engine {

using json = nlohmann::json;

// An invalid configuration. message() is the Bedrock/Margo wording, path() the JSON path of the
// offending element (e.g. "margo.argobots.xstreams[1]"); what() combines both. error_lines()
// are the lines the real daemon logs at [error] before its [critical] line (Margo's message and
// its "^ in ..." pointer), logged by the server when it fails.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& message, const std::string& path,
              std::vector<std::string> error_lines = {});
  const std::string& message() const { return message_; }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& error_lines() const { return error_lines_; }

 private:
  std::string message_;
  std::string path_;
  std::vector<std::string> error_lines_;
};

// Values visible to "__if__" expressions ($MPI_COMM_WORLD.rank / .size), and what Argobots'
// default pinning starts from (the process's CPUs when it initializes; argobots.hpp).
struct ConfigContext {
  int rank = 0;
  int size = 1;
};

// Parses JSON text (empty text means {}); throws ConfigError with nlohmann's message on syntax
// errors, as Bedrock does.
json parse_config_text(const std::string& text);

// "a.b": v  ->  {"a": {"b": v}}, recursively into objects (not arrays), exactly as Bedrock's
// expandSimplifiedJSON (which cannot read a top-level array: ConfigError with its message).
json expand_dotted_keys(const json& in);

// The component types a module library (as in "libraries", possibly a path) registers,
// according to the catalogue; empty if the catalogue has none.
std::vector<std::string> builtin_modules_of_library(const std::string& library);

struct PrepareOptions {
  // Check and plan the providers too, without creating them (load_config); the server creates
  // them itself, in order, with the same checks (provider_manager.hpp).
  bool dry_providers = true;
};

// The effective configuration: "margo" fully expanded (pools, xstreams, progress_pool,
// rpc_pool by name, defaults filled, default pinning predicted), "bedrock" {pool,
// provider_id}, "libraries", "providers" (dry: planned and reported as the modules would;
// otherwise the descriptions as given) and "bedrock_engine" (this engine's own settings).
// Non-fatal findings are appended to warnings.
json prepare_config(const json& input, const ConfigContext& ctx,
                    std::vector<std::string>* warnings, PrepareOptions options = {});

// Full pipeline from text.
json load_config(const std::string& text, const ConfigContext& ctx,
                 std::vector<std::string>* warnings, PrepareOptions options = {});

// Name of a JSON type as json-c reports it (Margo's messages use these).
std::string json_type_name(const json& v);

// Helpers shared by the configuration steps.
std::string index_path(const std::string& base, size_t i);
std::string key_path(const std::string& base, const std::string& key);
bool is_int(const json& v);

}  // namespace bedrock_engine
