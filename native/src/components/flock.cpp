// Flock (mochi-flock 0.7.0) as a Bedrock component: "bootstrap" (a method or a list tried in
// order: self, mpi, join), the static and centralized group backends, the default gateway, the
// group file written by the first member of the view, and the get_view / join RPCs.
// Wording and order follow https://github.com/mochi-hpc/mochi-flock/blob/
// 9520fca7ba24977795735e28da364bc4863cb3fd/src/bedrock-module.cpp, src/provider.c and
// src/backends/{static,centralized}/.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "client.hpp"
#include "component.hpp"
#include "log.hpp"
#include "transport.hpp"
#include "wire.hpp"

namespace bedrock_engine {

namespace {

struct Member {
  std::string address;
  uint16_t provider_id = 0;
  bool operator==(const Member& o) const {
    return address == o.address && provider_id == o.provider_id;
  }
};

struct View {
  std::vector<Member> members;
  json metadata = json::object();  // string values: "__type__", "__config__"
};

// flock_provider_register's failure, as the Bedrock module reports it.
[[noreturn]] void register_failed(int code) {
  throw ComponentError("[flock] Could not register provider (flock_provider_register returned " +
                       std::to_string(code) + ")");
}
constexpr int kInvalidConfig = 6;  // FLOCK_ERR_INVALID_CONFIG
constexpr int kForbidden = 11;     // FLOCK_ERR_OP_FORBIDDEN

void write_file_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("[flock] Could not open " + tmp + ": " + std::strerror(errno));
    out << content;
    out.flush();
    if (!out) throw std::runtime_error("[flock] Could not write file " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("[flock] Could not rename file " + tmp + " into " + path + ": " +
                             std::strerror(err));
  }
}

// flock_group_view_init_from_file. Logs and throws like flock.
View read_view_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  if (!in) {
    log(LogLevel::error, "[flock] Could not read file " + path);
    throw ComponentError("[flock] Failed to initialized group with "
                         "flock_group_view_init_from_file");
  }
  json content = json::parse(ss.str(), nullptr, false);
  auto fail = [&](const std::string& why) -> View {
    log(LogLevel::error, "[flock] " + why);
    throw ComponentError("[flock] Failed to initialized group with "
                         "flock_group_view_init_from_file");
  };
  if (content.is_discarded() || !content.is_object()) return fail("Invalid JSON group description");
  if (content.contains("metadata") && !content["metadata"].is_object())
    return fail("\"metadata\" field should be of type object");
  if (!content.contains("members")) return fail("\"members\" field not found");
  if (!content["members"].is_array()) return fail("\"members\" field should be of type array");
  if (content["members"].empty()) return fail("\"members\" field should have at least one element");
  View v;
  for (const auto& m : content["members"]) {
    if (!m.is_object() || !m.contains("address") || !m["address"].is_string() ||
        !m.contains("provider_id") || !m["provider_id"].is_number_integer())
      return fail("invalid member in group file " + path);
    v.members.push_back({m["address"].get<std::string>(), m["provider_id"].get<uint16_t>()});
  }
  if (content.contains("metadata")) v.metadata = content["metadata"];
  return v;
}

class FlockComponent : public Component {
 public:
  explicit FlockComponent(ComponentArgs& args) : host_(*args.host), provider_id_(args.provider_id) {
    const json& cfg = args.config;
    self_ = {host_.self_address(), provider_id_};
    self_kind_ = parse_address(self_.address).kind;
    max_members_ = host_.settings().flock_max_members;
    View initial = bootstrap(cfg);
    register_provider(cfg, std::move(initial));
  }

  json config() const override {
    json out = json::object();
    out["gateway"] = {{"type", "default"}, {"config", gateway_config_}};
    out["group"] = {{"type", group_type_}, {"config", group_config_}};
    if (has_file_) out["file"] = file_;
    return out;
  }

  std::string handle(uint32_t rpc, std::string_view payload) override {
    if (rpc == rpc_flock_get_view) return view_json().dump();
    if (rpc == rpc_flock_join) {
      Reader r(payload);
      std::string address(r.bytes());
      uint32_t provider_id = r.u32();
      r.expect_end();
      add_member(address, provider_id);
      return view_json().dump();
    }
    throw RpcError(status_no_rpc, "flock provider has no RPC " + std::to_string(rpc));
  }

 private:
  // ---- bootstrap: the methods of "bootstrap", tried in order (bedrock-module.cpp) ----------
  View bootstrap(const json& cfg) {
    if (!cfg.contains("bootstrap"))
      throw ComponentError("[flock] \"bootstrap\" field not found in provider configuration");
    json methods = cfg["bootstrap"];
    if (!methods.is_string() && !methods.is_array())
      throw ComponentError("[flock] \"bootstrap\" field should be of type string or array");
    if (methods.is_string()) methods = json::array({methods});
    for (const auto& m : methods)
      if (!m.is_string())
        throw ComponentError("[flock] \"bootstrap\" array should only contain strings");
    std::vector<long long> ranks;
    bool has_ranks = cfg.contains("mpi_ranks") && !cfg["mpi_ranks"].is_null();
    if (has_ranks) {
      if (!cfg["mpi_ranks"].is_array())
        throw ComponentError("[flock] \"mpi_ranks\" field should be an array");
      for (const auto& r : cfg["mpi_ranks"]) {
        if (!r.is_number_integer())
          throw ComponentError("[flock] \"mpi_ranks\" should contain only integers");
        ranks.push_back(r.get<long long>());
      }
    }
    for (size_t i = 0; i < methods.size(); ++i) {
      const std::string method = methods[i].get<std::string>();
      try {
        if (method == "self") return View{{self_}, json::object()};
        if (method == "mpi") return from_mpi(has_ranks, ranks);
        if (method == "join") {
          if (!cfg.contains("file") || !cfg["file"].is_string())
            throw ComponentError("[flock] \"file\" field not found (or is not a string) "
                                 "required to join the group");
          return read_view_file(cfg["file"].get<std::string>());
        }
        throw ComponentError("[flock] Invalid value \"" + method + "\" for \"bootstrap\" field");
      } catch (const ComponentError& ex) {
        if (i + 1 == methods.size()) throw;
        log(LogLevel::warning, ex.what());
      }
    }
    throw ComponentError("[flock] \"bootstrap\" field should not be empty");
  }

  View from_mpi(bool has_ranks, const std::vector<long long>& ranks) {
    const auto* allgather = host_.allgather();
    int world = allgather ? host_.size() : 1;
    if (!allgather && host_.size() > 1)
      throw ComponentError("[flock] bootstrap \"mpi\" needs MPI: this process is rank " +
                           std::to_string(host_.rank()) + " of " + std::to_string(host_.size()) +
                           " but bedrock-engine does not link MPI; start it with "
                           "bedrock-engine-mpi (deliberate difference, see native/README.md)");
    for (long long r : ranks)
      if (r < 0 || r >= world)
        throw ComponentError("[flock] Invalid rank in \"mpi_ranks\" list");
    std::vector<Member> all;
    if (!allgather) {
      all = {self_};  // an MPI singleton: a world of one
    } else {
      for (const auto& s : (*allgather)(json{{"address", self_.address},
                                            {"provider_id", self_.provider_id}}.dump())) {
        json m = json::parse(s);
        all.push_back({m["address"].get<std::string>(), m["provider_id"].get<uint16_t>()});
      }
      if (static_cast<int>(all.size()) != world)
        throw ComponentError("[flock] Failed to initialized group with "
                             "flock_group_view_init_from_mpi (the allgather returned " +
                             std::to_string(all.size()) + " entries for a world of " +
                             std::to_string(world) + ")");
    }
    if (!has_ranks) return View{all, json::object()};
    if (std::find(ranks.begin(), ranks.end(), host_.rank()) == ranks.end())
      throw ComponentError("[flock] rank " + std::to_string(host_.rank()) + " is not in "
                           "\"mpi_ranks\": bedrock-engine refuses to start a member outside "
                           "its group (deliberate difference, see native/README.md)");
    View v;
    for (long long r : ranks) v.members.push_back(all[static_cast<size_t>(r)]);
    return v;
  }

  // ---- flock_provider_register -------------------------------------------------------------
  void register_provider(const json& cfg, View view) {
    if (cfg.contains("file") && cfg["file"].is_string()) {
      has_file_ = true;
      file_ = cfg["file"].get<std::string>();
    }
    if (cfg.contains("gateway") && !cfg["gateway"].is_null()) {
      const json& g = cfg["gateway"];
      if (!g.is_object()) {
        log(LogLevel::error, "[flock] \"gateway\" field should be an object in provider "
                             "configuration");
        register_failed(kInvalidConfig);
      }
      if (!g.contains("type") || !g["type"].is_string()) {
        log(LogLevel::error, "[flock] \"type\" field in gateway configuration should be a "
                             "string");
        register_failed(kInvalidConfig);
      }
      std::string type = g["type"].get<std::string>();
      if (type == "pinggy")
        throw ComponentError("[flock] gateway \"pinggy\" is not implemented by bedrock-engine "
                             "(deliberate difference, see native/README.md)");
      if (type != "default") {
        log(LogLevel::error, "[flock] Could not find gateway of type \"" + type + "\"");
        register_failed(kInvalidConfig);
      }
      if (g.contains("config") && g["config"].is_object()) gateway_config_ = g["config"];
    }
    const json* group = cfg.contains("group") && !cfg["group"].is_null() ? &cfg["group"] : nullptr;
    if (!group) {
      log(LogLevel::error, "[flock] No backend type provided for the group");
      register_failed(kInvalidConfig);
    }
    if (!group->is_object()) {
      log(LogLevel::error, "[flock] \"group\" field should be an object in provider "
                           "configuration");
      register_failed(kInvalidConfig);
    }
    if (!group->contains("type") || !(*group)["type"].is_string()) {
      log(LogLevel::error, "[flock] \"type\" field in group configuration should be a string");
      register_failed(kInvalidConfig);
    }
    group_type_ = (*group)["type"].get<std::string>();
    json group_config = group->contains("config") && (*group)["config"].is_object()
                            ? (*group)["config"] : json::object();
    bool join = std::find(view.members.begin(), view.members.end(), self_) == view.members.end();
    if (group_type_ == "static") {
      if (join) {
        log(LogLevel::error, "[flock] Cannot join a static group");
        register_failed(kForbidden);
      }
      group_config_ = json::object();
    } else if (group_type_ == "centralized") {
      centralized(group_config, join, view);
    } else if (group_type_ == "swim") {
      throw ComponentError("[flock] group backend \"swim\" is not implemented by bedrock-engine "
                           "(deliberate difference, see native/README.md); use static or "
                           "centralized, or the Spack-built bedrock");
    } else {
      log(LogLevel::error, "[flock] Could not find backend of type \"" + group_type_ + "\"");
      register_failed(kInvalidConfig);
    }
    view.metadata["__config__"] = group_config_.dump();
    view.metadata["__type__"] = group_type_;
    view_ = std::move(view);
    if (view_.members.size() > max_members_)
      throw ComponentError("[flock] the group has " + std::to_string(view_.members.size()) +
                           " members, more than bedrock_engine.flock_max_members (" +
                           std::to_string(max_members_) + ")");
    serialize_view_to_file();
  }

  // The centralized backend (centralized-backend.c): its config, the primary member, joining.
  void centralized(const json& args_config, bool join, View& view) {
    json md = json::object();
    if (view.metadata.contains("__config__") && view.metadata["__config__"].is_string())
      md = json::parse(view.metadata["__config__"].get<std::string>(), nullptr, false);
    if (!md.is_object()) md = json::object();
    for (auto it = args_config.begin(); it != args_config.end(); ++it)
      if (!md.contains(it.key())) md[it.key()] = it.value();
    auto bad = [](const std::string& why) {
      log(LogLevel::error, "[flock] In centralized backend configuration: " + why);
      register_failed(kInvalidConfig);
    };
    double ping_timeout = 1000.0, interval_min = 1000.0, interval_max = 1000.0;
    long long max_timeouts = 3;
    if (md.contains("ping_timeout_ms")) {
      if (!md["ping_timeout_ms"].is_number_float()) bad("\"ping_timeout_ms\" should be a number");
      ping_timeout = md["ping_timeout_ms"].get<double>();
      if (ping_timeout < 0) bad("\"ping_timeout_ms\" should be positive");
    }
    if (md.contains("ping_interval_ms")) {
      const json& p = md["ping_interval_ms"];
      if (p.is_number_float()) {
        interval_min = interval_max = p.get<double>();
      } else if (p.is_array() && p.size() == 2) {
        if (!p[0].is_number_float() || !p[1].is_number_float())
          bad("\"ping_interval_ms\" should be an array of two numbers");
        interval_min = p[0].get<double>();
        interval_max = p[1].get<double>();
        if (interval_min > interval_max || interval_min < 0)
          bad("invalid values or order in \"ping_interval_ms\" array");
      }
    }
    if (md.contains("ping_max_num_timeouts")) {
      if (!md["ping_max_num_timeouts"].is_number_integer())
        bad("\"ping_max_num_timeouts\" should be an integer");
      max_timeouts = md["ping_max_num_timeouts"].get<long long>();
      if (max_timeouts < 1) bad("\"ping_max_num_timeouts\" should be > 1");
    }
    Member primary;
    if (md.contains("primary_address")) {
      if (!md["primary_address"].is_string()) bad("\"primary_address\" should be a string");
      long long pid = 0;
      if (md.contains("primary_provider_id")) {
        if (!md["primary_provider_id"].is_number_integer())
          bad("\"primary_provider_id\" should be an integer");
        pid = md["primary_provider_id"].get<long long>();
        if (pid < 0 || pid >= 65535)
          bad("invalid value (" + std::to_string(pid) + ") for \"primary_provider_id\"");
      }
      primary = {md["primary_address"].get<std::string>(), static_cast<uint16_t>(pid)};
      if (std::find(view.members.begin(), view.members.end(), primary) == view.members.end())
        bad("could not find primary member (" + primary.address + ", " + std::to_string(pid) +
            ") in initial view");
    } else if (!join) {
      primary = view.members.front();
    } else {
      bad("\"primary_address\" and \"primary_provider_id\" are required to join the group");
    }
    group_config_ = {{"ping_timeout_ms", ping_timeout},
                     {"ping_max_num_timeouts", max_timeouts},
                     {"primary_address", primary.address},
                     {"primary_provider_id", primary.provider_id}};
    group_config_["ping_interval_ms"] = interval_min == interval_max
                                            ? json(interval_min)
                                            : json::array({interval_min, interval_max});
    if (join) {
      Client client(primary.address);
      Writer w;
      w.bytes(self_.address);
      w.u32(self_.provider_id);
      Response r = client.call(primary.address, primary.provider_id, rpc_flock_join, w.take());
      json joined = json::parse(r.payload, nullptr, false);
      if (joined.is_discarded() || !joined.contains("members"))
        throw ComponentError("[flock] the primary member answered the join with no view");
      view.members.clear();
      for (const auto& m : joined["members"])
        view.members.push_back({m["address"].get<std::string>(), m["provider_id"].get<uint16_t>()});
    }
  }

  // ---- the join RPC (the primary adds the member) ------------------------------------------
  void add_member(const std::string& address, uint32_t provider_id) {
    if (group_type_ == "static")
      throw RpcError(status_bad_request, "[flock] Cannot join a static group");
    if (provider_id > 65535) throw RpcError(status_bad_request, "invalid provider id");
    Address a;
    try {
      a = parse_address(address);
    } catch (const std::exception& ex) {
      throw RpcError(status_bad_request, "invalid member address \"" + address.substr(0, 128) +
                                             "\": " + ex.what());
    }
    bool well_formed = a.kind == self_kind_ && address.find("://") != std::string::npos &&
                       (a.kind == TransportKind::sm ? !a.sm_id.empty()
                                                    : (!a.host.empty() && a.port > 0));
    if (!well_formed || address.size() > 256)
      throw RpcError(status_bad_request, "invalid member address \"" + address.substr(0, 128) +
                                             "\": not an address of this engine's protocol");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Member m{address, static_cast<uint16_t>(provider_id)};
      if (std::find(view_.members.begin(), view_.members.end(), m) != view_.members.end()) return;
      if (view_.members.size() >= max_members_)
        throw RpcError(status_error, "[flock] the group is full (bedrock_engine.flock_max_members"
                                     " = " + std::to_string(max_members_) + ")");
      view_.members.push_back(m);
    }
    serialize_view_to_file();
  }

  json view_json() const {
    std::lock_guard<std::mutex> lock(mutex_);
    json members = json::array();
    for (const auto& m : view_.members)
      members.push_back({{"address", m.address}, {"provider_id", m.provider_id}});
    return json{{"members", members}, {"metadata", view_.metadata}};
  }

  // Only the first member of the view writes the group file (provider.c).
  void serialize_view_to_file() {
    if (!has_file_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (view_.members.empty() || !(view_.members.front() == self_)) return;
    }
    try {
      write_file_atomically(file_, view_json().dump(4) + "\n");
    } catch (const std::exception& ex) {
      log(LogLevel::warning, std::string(ex.what()) + " ([flock] Could not write group file \"" +
                                 file_ + "\")");
    }
  }

  ComponentHost& host_;
  uint16_t provider_id_;
  Member self_;
  TransportKind self_kind_ = TransportKind::sm;
  size_t max_members_ = 1024;
  bool has_file_ = false;
  std::string file_;
  std::string group_type_;
  json group_config_ = json::object();
  json gateway_config_ = json::object();
  mutable std::mutex mutex_;
  View view_;
};

}  // namespace

std::unique_ptr<Component> make_flock(ComponentArgs& args) {
  return std::make_unique<FlockComponent>(args);
}

}  // namespace bedrock_engine
