// Yokan (mochi-yokan 0.10.0) as a Bedrock component: one database (optional: a provider with
// no "database" has none), its buffer cache setting, and put/get/erase/list. Config handling
// follows https://github.com/mochi-hpc/mochi-yokan/blob/9b7c08b74f7dfe9c30b3b318e73e84ca2bda6772/
// src/server/provider.cpp; the reported config adds Yokan's defaults (component catalogue).
#include "client.hpp"
#include "component.hpp"
#include "log.hpp"
#include "wire.hpp"
#include "yokan_backend.hpp"

namespace bedrock_engine {

#ifndef BEDROCK_ENGINE_HAVE_ROCKSDB
std::unique_ptr<YokanBackend> make_yokan_rocksdb(const json&) {
  throw ComponentError("yokan database type \"rocksdb\" needs librocksdb, which this "
                       "bedrock-engine was built without (install librocksdb-dev and rebuild)");
}
#endif

namespace {

[[noreturn]] void invalid(const std::string& where, const std::string& why) {
  log(LogLevel::error, "[yokan] " + where + ": " + why);
  throw ComponentError("Invalid configuration");
}

class YokanComponent : public Component {
 public:
  explicit YokanComponent(ComponentArgs& args) : entry_(*args.entry) {
    json cfg = args.config.is_object() ? args.config : json::object();
    if (cfg.contains("database") && !cfg["database"].is_object())
      invalid("yk_provider_register", "\"database\" field in configuration is not an object");
    if (!cfg.contains("buffer_cache")) cfg["buffer_cache"] = {{"type", "lru"}};
    const json& cache = cfg["buffer_cache"];
    if (!cache.is_object())
      invalid("yk_provider_register", "\"buffer_cache\" field in configuration is not an object");
    if (!cache.contains("type")) invalid("yk_provider_register", "\"buffer_cache\" needs a \"type\" field");
    if (!cache["type"].is_string())
      invalid("yk_provider_register", "\"type\" field in \"buffer_cache\" should be a string");
    std::string ctype = cache["type"].get<std::string>();
    if (ctype != "dummy" && ctype != "keep_all" && ctype != "lru")
      invalid("yk_provider_register", "Invalid buffer_cache type \"" + ctype + "\"");
    if (cfg.contains("database")) open_database(cfg["database"]);
    config_ = reported_config(entry_, cfg);
  }

  json config() const override { return config_; }

  std::string handle(uint32_t rpc, std::string_view payload) override {
    Reader r(payload);
    switch (rpc) {
      case rpc_yokan_put: {
        std::string_view key = r.bytes();
        std::string_view value = r.bytes();
        r.expect_end();
        db().put(key, value);
        return {};
      }
      case rpc_yokan_get: {
        std::string_view key = r.bytes();
        r.expect_end();
        auto v = db().get(key);
        if (!v) throw RpcError(status_not_found, "key not found");
        return *v;
      }
      case rpc_yokan_erase: {
        std::string_view key = r.bytes();
        r.expect_end();
        if (!db().erase(key)) throw RpcError(status_not_found, "key not found");
        return {};
      }
      case rpc_yokan_list: {
        std::string_view prefix = r.bytes();
        uint32_t max = r.u32();
        r.expect_end();
        Writer w;
        auto keys = db().list(prefix, max, kMaxPayload - 64);
        w.u32(static_cast<uint32_t>(keys.size()));
        for (const auto& k : keys) w.bytes(k);
        return w.take();
      }
      default:
        throw RpcError(status_no_rpc, "yokan provider has no RPC " + std::to_string(rpc));
    }
  }

 private:
  void open_database(const json& database) {
    if (!database.contains("type") || !database["type"].is_string())
      invalid("open_database_from_config:782", "\"type\" field not found in database "
                                              "configuration");
    std::string type = database["type"].get<std::string>();
    const json empty = json::object();
    const json& config = database.contains("config") ? database["config"] : empty;
    const json& choices = entry_.raw["choices"][0]["values"];
    if (!choices.contains(type))
      invalid("open_database_from_config:792", "could not find backend of type \"" + type + "\"");
    if (!choices[type]["engine"].get<bool>())
      throw ComponentError("yokan database type \"" + type + "\" is not implemented by "
                           "bedrock-engine (built-in: map, rocksdb; deliberate difference, see "
                           "native/README.md); use the Spack-built bedrock with mochi-yokan");
    db_ = type == "rocksdb" ? make_yokan_rocksdb(config) : make_yokan_map(config);
  }

  YokanBackend& db() {
    if (!db_) throw RpcError(status_error, "this yokan provider has no database");
    return *db_;
  }

  const CatalogueEntry& entry_;
  json config_;
  std::unique_ptr<YokanBackend> db_;
};

}  // namespace

std::unique_ptr<Component> make_yokan(ComponentArgs& args) {
  return std::make_unique<YokanComponent>(args);
}

}  // namespace bedrock_engine
