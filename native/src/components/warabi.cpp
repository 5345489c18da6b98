// Warabi (mochi-warabi) as a Bedrock component, with its "memory" target only: regions of
// bytes held in memory, created, written, read and erased in the provider's pool (RPCs 50-53
// of wire.hpp). Enough for a service such as share/examples/mofka-like.yaml to run on this
// engine (bedrock-deploy rehearse); other targets need the Spack-built bedrock with
// mochi-warabi. Config as Warabi's Bedrock module takes it: {"target": {"type": "memory",
// "config": {}}}, https://github.com/mochi-hpc/mochi-warabi/blob/ced689ef7c0289d59c262a7481f85f8a0a37d6db/src/BedrockModule.cpp.
#include <map>
#include <mutex>

#include "client.hpp"
#include "component.hpp"
#include "wire.hpp"

namespace bedrock_engine {

namespace {

class WarabiComponent : public Component {
 public:
  explicit WarabiComponent(ComponentArgs& args) {
    json cfg = args.config.is_object() ? args.config : json::object();
    json target = cfg.value("target", json{{"type", "memory"}});
    if (!target.is_object() || !target.value("type", json("memory")).is_string())
      throw ComponentError("Invalid \"target\" in Warabi provider configuration");
    std::string type = target.value("type", "memory");
    if (type != "memory")
      throw ComponentError("warabi target type \"" + type + "\" is not available in "
                           "bedrock-engine (built-in: memory); use the Spack-built bedrock "
                           "with mochi-warabi");
    if (!target.contains("config")) target["config"] = json::object();
    cfg["target"] = target;
    config_ = cfg;
  }

  json config() const override { return config_; }

  std::string handle(uint32_t rpc, std::string_view payload) override {
    Reader r(payload);
    Writer w;
    std::lock_guard<std::mutex> lock(mutex_);
    if (rpc == rpc_warabi_create) {
      uint64_t size = r.u64();
      r.expect_end();
      if (size > kMaxPayload) throw RpcError(status_bad_request, "region size too large");
      regions_[++last_id_] = std::string(size, '\0');
      w.u64(last_id_);
      return w.take();
    }
    if (rpc != rpc_warabi_write && rpc != rpc_warabi_read && rpc != rpc_warabi_erase)
      throw RpcError(status_no_rpc, "warabi provider has no RPC " + std::to_string(rpc));
    uint64_t id = r.u64();
    auto it = regions_.find(id);
    if (it == regions_.end()) throw RpcError(status_not_found, "no such region");
    if (rpc == rpc_warabi_erase) {
      r.expect_end();
      regions_.erase(it);
      return {};
    }
    uint64_t offset = r.u64();
    std::string& region = it->second;
    if (rpc == rpc_warabi_write) {
      std::string_view data = r.bytes();
      r.expect_end();
      if (offset > region.size() || data.size() > region.size() - offset)
        throw RpcError(status_bad_request, "write past the end of the region");
      region.replace(offset, data.size(), data);
      return {};
    }
    uint64_t size = r.u64();
    r.expect_end();
    if (offset > region.size() || size > region.size() - offset)
      throw RpcError(status_bad_request, "read past the end of the region");
    return region.substr(offset, size);
  }

 private:
  json config_;
  std::mutex mutex_;
  uint64_t last_id_ = 0;
  std::map<uint64_t, std::string> regions_;
};

}  // namespace

std::unique_ptr<Component> make_warabi(ComponentArgs& args) {
  return std::make_unique<WarabiComponent>(args);
}

}  // namespace bedrock_engine
