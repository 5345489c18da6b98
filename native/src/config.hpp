// Bedrock 0.16 / Margo 0.24 configuration semantics: parsing, dotted-key expansion, "__if__"
// filtering, validation with Margo's and Bedrock's own error wording, and expansion into the
// effective ("running") configuration that bedrock-query reports.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace bedrock_engine {

using json = nlohmann::json;

// An invalid configuration. message() is the Bedrock/Margo wording, path() the JSON path of the
// offending element (e.g. "margo.argobots.xstreams[1]"); what() combines both.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& message, const std::string& path);
  const std::string& message() const { return message_; }
  const std::string& path() const { return path_; }

 private:
  std::string message_;
  std::string path_;
};

// Values visible to "__if__" expressions ($MPI_COMM_WORLD.rank / .size).
struct ConfigContext {
  int rank = 0;
  int size = 1;
};

// Parses JSON text (empty text means {}); throws ConfigError on syntax errors.
json parse_config_text(const std::string& text);

// "a.b": v  ->  {"a": {"b": v}}, recursively.
json expand_dotted_keys(const json& in);

// Removes objects whose "__if__" is false (or an expression evaluating to false).
json filter_if(const json& in, const ConfigContext& ctx, const std::string& path = "");

// Evaluates an "__if__" expression: comparisons (==, !=, <, <=, >, >=) of
// $MPI_COMM_WORLD.rank / $MPI_COMM_WORLD.size / integers / true / false, combined with
// &&, ||, ! and parentheses. Throws ConfigError (with path) for anything else.
bool evaluate_condition(const std::string& expr, const ConfigContext& ctx,
                        const std::string& path);

// Maps a module library name (as in "libraries", possibly a path) to a built-in component
// type ("flock", "yokan", "abt_io"); empty string if unknown.
std::string builtin_module_for_library(const std::string& library);

// The effective configuration: "margo" fully expanded (pools, xstreams, progress_pool,
// rpc_pool by name, defaults filled), "libraries", validated "providers" (as given, ids not yet
// assigned), "bedrock" {pool, provider_id}. Non-fatal findings are appended to warnings.
json prepare_config(const json& input, const ConfigContext& ctx,
                    std::vector<std::string>* warnings);

// Full pipeline from text.
json load_config(const std::string& text, const ConfigContext& ctx,
                 std::vector<std::string>* warnings);

// Name of a JSON type as json-c reports it (Margo's messages use these).
std::string json_type_name(const json& v);

}  // namespace bedrock_engine
