#include "server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>

#include "client.hpp"
#include "log.hpp"
#include "wire.hpp"

namespace bedrock_engine {

// ------------------------------------------------------------------ components
class Component {
 public:
  virtual ~Component() = default;
  virtual json config() const = 0;
  // Executes an RPC (on the provider's pool); returns the response payload. Throws RpcError
  // (status) or DecodeError (bad request).
  virtual std::string handle(uint32_t rpc_id, std::string_view payload) = 0;
};

namespace {

using Clock = std::chrono::steady_clock;

void write_file_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("Could not write " + tmp + ": " + std::strerror(errno));
    out << content;
    out.flush();
    if (!out) throw std::runtime_error("Could not write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("Could not rename " + tmp + " to " + path + ": " +
                             std::strerror(errno));
}

class YokanComponent : public Component {
 public:
  YokanComponent(const json& cfg, const std::string& path) : cfg_(cfg) {
    json db = cfg.value("database", json{{"type", "map"}});
    if (!db.is_object())
      throw ConfigError("\"database\" should be an object", path + ".config.database");
    std::string type = db.value("type", "map");
    if (type != "map")
      throw ConfigError("yokan database type \"" + type +
                            "\" is not available in bedrock-engine (built-in: map); use the "
                            "Spack-built bedrock with mochi-yokan for other backends",
                        path + ".config.database.type");
    if (!cfg_.contains("database")) cfg_["database"] = json{{"type", "map"}, {"config", json::object()}};
    if (!cfg_["database"].contains("config")) cfg_["database"]["config"] = json::object();
  }
  json config() const override { return cfg_; }
  std::string handle(uint32_t rpc, std::string_view payload) override {
    Reader r(payload);
    switch (rpc) {
      case rpc_yokan_put: {
        std::string key(r.bytes());
        std::string value(r.bytes());
        r.expect_end();
        std::lock_guard<std::mutex> lock(mutex_);
        map_[key] = std::move(value);
        return {};
      }
      case rpc_yokan_get: {
        std::string key(r.bytes());
        r.expect_end();
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = map_.find(key);
        if (it == map_.end()) throw RpcError(status_not_found, "key not found");
        return it->second;
      }
      case rpc_yokan_erase: {
        std::string key(r.bytes());
        r.expect_end();
        std::lock_guard<std::mutex> lock(mutex_);
        if (map_.erase(key) == 0) throw RpcError(status_not_found, "key not found");
        return {};
      }
      case rpc_yokan_list: {
        std::string prefix(r.bytes());
        uint32_t max = r.u32();
        r.expect_end();
        Writer w;
        std::vector<std::string_view> keys;
        std::lock_guard<std::mutex> lock(mutex_);
        size_t total = 0;
        for (auto it = map_.lower_bound(prefix);
             it != map_.end() && it->first.compare(0, prefix.size(), prefix) == 0 &&
             keys.size() < max;
             ++it) {
          total += it->first.size() + 4;
          if (total > kMaxPayload - 64) break;
          keys.push_back(it->first);
        }
        w.u32(static_cast<uint32_t>(keys.size()));
        for (auto k : keys) w.bytes(k);
        return w.take();
      }
      default:
        throw RpcError(status_no_rpc, "yokan provider has no RPC " + std::to_string(rpc));
    }
  }

 private:
  json cfg_;
  std::mutex mutex_;
  std::map<std::string, std::string> map_;
};

class AbtIoComponent : public Component {
 public:
  explicit AbtIoComponent(const json& cfg) : cfg_(cfg) {}
  json config() const override { return cfg_; }
  std::string handle(uint32_t rpc, std::string_view payload) override {
    Reader r(payload);
    std::string path(r.bytes());
    uint64_t offset = r.u64();
    if (rpc == rpc_abtio_pwrite) {
      std::string_view data = r.bytes();
      r.expect_end();
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) throw RpcError(status_error, "open(" + path + "): " + std::strerror(errno));
      ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
      int err = errno;
      ::close(fd);
      if (n < 0) throw RpcError(status_error, "pwrite(" + path + "): " + std::strerror(err));
      Writer w;
      w.u64(static_cast<uint64_t>(n));
      return w.take();
    }
    if (rpc == rpc_abtio_pread) {
      uint64_t size = r.u64();
      r.expect_end();
      if (size > kMaxPayload) throw RpcError(status_bad_request, "read size too large");
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw RpcError(status_error, "open(" + path + "): " + std::strerror(errno));
      std::string buf(size, '\0');
      ssize_t n = ::pread(fd, buf.data(), size, static_cast<off_t>(offset));
      int err = errno;
      ::close(fd);
      if (n < 0) throw RpcError(status_error, "pread(" + path + "): " + std::strerror(err));
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    throw RpcError(status_no_rpc, "abt_io provider has no RPC " + std::to_string(rpc));
  }

 private:
  json cfg_;
};

// Warabi (mochi-warabi) with its "memory" target only: regions of bytes held in memory,
// created, written, read and erased in the provider's pool. Other targets (pmem, abt-io) need
// the Spack-built bedrock with mochi-warabi.
class WarabiComponent : public Component {
 public:
  WarabiComponent(const json& cfg, const std::string& path) : cfg_(cfg) {
    if (cfg.contains("targets")) {  // the older form: a list of targets
      if (!cfg["targets"].is_array())
        throw ConfigError("\"targets\" should be an array", path + ".config.targets");
      for (size_t i = 0; i < cfg["targets"].size(); ++i)
        check_target(cfg["targets"][i], path + ".config.targets[" + std::to_string(i) + "]");
      return;
    }
    check_target(cfg.value("target", json{{"type", "memory"}}), path + ".config.target");
    if (!cfg_.contains("target")) cfg_["target"] = json{{"type", "memory"}};
    if (!cfg_["target"].contains("config")) cfg_["target"]["config"] = json::object();
  }
  static void check_target(const json& target, const std::string& where) {
    if (!target.is_object()) throw ConfigError("a warabi target should be an object", where);
    std::string type = target.value("type", "memory");
    if (type != "memory")
      throw ConfigError("warabi target type \"" + type +
                            "\" is not available in bedrock-engine (built-in: memory); use the "
                            "Spack-built bedrock with mochi-warabi for other targets",
                        where + ".type");
  }
  json config() const override { return cfg_; }
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
    uint64_t id = r.u64();
    auto it = regions_.find(id);
    if (rpc == rpc_warabi_erase) {
      r.expect_end();
      if (it == regions_.end()) throw RpcError(status_not_found, "no such region");
      regions_.erase(it);
      return {};
    }
    if (it == regions_.end()) throw RpcError(status_not_found, "no such region");
    uint64_t offset = r.u64();
    if (rpc == rpc_warabi_write) {
      std::string_view data = r.bytes();
      r.expect_end();
      if (offset > it->second.size() || data.size() > it->second.size() - offset)
        throw RpcError(status_bad_request, "write past the end of the region");
      it->second.replace(offset, data.size(), data);
      return {};
    }
    if (rpc == rpc_warabi_read) {
      uint64_t size = r.u64();
      r.expect_end();
      if (offset > it->second.size() || size > it->second.size() - offset)
        throw RpcError(status_bad_request, "read past the end of the region");
      return it->second.substr(offset, size);
    }
    throw RpcError(status_no_rpc, "warabi provider has no RPC " + std::to_string(rpc));
  }

 private:
  json cfg_;
  std::mutex mutex_;
  uint64_t last_id_ = 0;
  std::map<uint64_t, std::string> regions_;
};

}  // namespace

class FlockComponent : public Component {
 public:
  FlockComponent(Server& server, const json& cfg, uint16_t provider_id, const std::string& path)
      : cfg_(cfg), provider_id_(provider_id) {
    std::string bootstrap = cfg.value("bootstrap", "self");
    file_ = cfg.value("file", "");
    if (cfg.contains("file") && !cfg["file"].is_string())
      throw ConfigError("\"file\" should be a string", path + ".config.file");
    if (cfg.contains("group")) {
      std::string gtype = cfg["group"].value("type", "static");
      if (gtype != "static" && gtype != "centralized")
        throw ConfigError("flock group type \"" + gtype +
                              "\" is not available in bedrock-engine (built-in: static, "
                              "centralized)",
                          path + ".config.group.type");
    }
    const std::string self = server.address();
    if (bootstrap == "self") {
      members_.push_back({self, provider_id});
    } else if (bootstrap == "mpi") {
      if (!server.options_.allgather)
        throw ConfigError("flock bootstrap \"mpi\" needs MPI: start this engine with "
                          "bedrock-engine-mpi (the mpi4py entry point of bedrock-deploy) under "
                          "mpirun/mpiexec/srun",
                          path + ".config.bootstrap");
      std::vector<std::string> all =
          server.options_.allgather(json{{"address", self}, {"provider_id", provider_id}}.dump());
      if (static_cast<int>(all.size()) != server.options_.context.size)
        throw std::runtime_error("flock mpi bootstrap: allgather returned " +
                                 std::to_string(all.size()) + " entries for a world of size " +
                                 std::to_string(server.options_.context.size));
      for (const auto& s : all) {
        json m = json::parse(s);
        members_.push_back({m["address"].get<std::string>(), m["provider_id"].get<uint16_t>()});
      }
    } else if (bootstrap == "join") {
      if (file_.empty())
        throw ConfigError("flock bootstrap \"join\" needs \"file\" (the group file to join)",
                          path + ".config");
      join_existing(self, path);
    } else {
      throw ConfigError("flock bootstrap \"" + bootstrap +
                            "\" is not available in bedrock-engine (built-in: self, mpi, join)",
                        path + ".config.bootstrap");
    }
    bool writer = bootstrap == "join" || bootstrap == "self" ||
                  (bootstrap == "mpi" && server.options_.context.rank == 0);
    if (!file_.empty() && writer) write_group_file();
  }

  json config() const override { return cfg_; }

  json view() const {
    std::lock_guard<std::mutex> lock(mutex_);
    json members = json::array();
    for (const auto& m : members_) members.push_back({{"address", m.first}, {"provider_id", m.second}});
    return json{{"members", members}, {"metadata", json::object()}};
  }

  std::string handle(uint32_t rpc, std::string_view payload) override {
    if (rpc == rpc_flock_get_view) return view().dump();
    if (rpc == rpc_flock_join) {
      Reader r(payload);
      std::string addr(r.bytes());
      uint32_t pid = r.u32();
      r.expect_end();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        std::pair<std::string, uint16_t> m{addr, static_cast<uint16_t>(pid)};
        if (std::find(members_.begin(), members_.end(), m) == members_.end()) members_.push_back(m);
      }
      return view().dump();
    }
    throw RpcError(status_no_rpc, "flock provider has no RPC " + std::to_string(rpc));
  }

 private:
  void join_existing(const std::string& self, const std::string& path) {
    std::ifstream in(file_);
    if (!in)
      throw ConfigError("flock bootstrap \"join\": could not open group file \"" + file_ + "\"",
                        path + ".config.file");
    json g = json::parse(in, nullptr, false);
    if (g.is_discarded() || !g.contains("members") || !g["members"].is_array() ||
        g["members"].empty())
      throw ConfigError("flock bootstrap \"join\": \"" + file_ + "\" is not a group file with members",
                        path + ".config.file");
    const json& m = g["members"][0];
    std::string addr = m.value("address", "");
    Client client(addr);
    Writer w;
    w.bytes(self);
    w.u32(provider_id_);
    Response r = client.call(addr, m.value("provider_id", 0), rpc_flock_join, w.take());
    json v = json::parse(r.payload);
    for (const auto& e : v["members"])
      members_.push_back({e["address"].get<std::string>(), e["provider_id"].get<uint16_t>()});
  }
  void write_group_file() { write_file_atomically(file_, view().dump(4) + "\n"); }

  json cfg_;
  uint16_t provider_id_;
  std::string file_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, uint16_t>> members_;
};

// ------------------------------------------------------------------ server
Server::Server(const std::string& address_in, const std::string& config_text, ServerOptions options)
    : options_(std::move(options)) {
  cfg_ = load_config(config_text, options_.context, &warnings_);
  for (const auto& w : warnings_) log(LogLevel::warning, w);

  // Protocol / address (Bedrock: CLI address, else margo.mercury.address up to the first ':').
  std::string address = address_in;
  if (address.empty()) {
    std::string m = cfg_["margo"]["mercury"].value("address", "");
    size_t colon = m.find(':');
    if (colon == std::string::npos) throw ConfigError("Could not infer protocol for engine 0", "margo.mercury.address");
    address = m.substr(0, colon);
  }
  kind_ = protocol_kind(address);

  const json& margo = cfg_["margo"];
  spindown_ms_ = margo["progress_spindown_msec"].get<int>();
  timeout_ub_ms_ = margo["progress_timeout_ub_msec"].get<int>();

  for (const auto& p : margo["argobots"]["pools"])
    pools_.push_back(std::make_unique<Pool>(p["name"], p["kind"], p["access"]));

  std::vector<int> allowed = allowed_cpus();
  const json& xs = margo["argobots"]["xstreams"];
  for (size_t i = 0; i < xs.size(); ++i) {
    const json& x = xs[i];
    std::vector<Pool*> pools;
    for (const auto& n : x["scheduler"]["pools"]) pools.push_back(find_pool(n));
    std::vector<int> cpus;
    std::string key;
    if (x.contains("cpubind")) {
      cpus = {x["cpubind"].get<int>()};
      key = "cpubind";
    } else if (x.contains("affinity")) {
      cpus = x["affinity"].get<std::vector<int>>();
      key = "affinity";
    }
    for (int c : cpus)
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end())
        throw ConfigError("xstream \"" + x["name"].get<std::string>() + "\": CPU " +
                              std::to_string(c) + " is not in the CPUs this process may use (" +
                              format_cpu_list(allowed) +
                              "); bedrock-engine refuses to run it unpinned (Margo would "
                              "silently ignore this)",
                          "margo.argobots.xstreams[" + std::to_string(i) + "]." + key);
    xstreams_.push_back(std::make_unique<Xstream>(x["name"], x["scheduler"]["type"], pools, cpus));
    if (x["name"] == "__primary__") primary_ = xstreams_.back().get();
  }
  progress_pool_ = find_pool(margo["progress_pool"]);
  rpc_pool_ = find_pool(margo["rpc_pool"]);
  bedrock_pool_ = find_pool(cfg_["bedrock"]["pool"]);
  bedrock_provider_id_ = cfg_["bedrock"]["provider_id"].get<uint16_t>();

  transport_ = TransportServer::create(
      address, [this](const std::shared_ptr<ServerConnection>& c, Frame&& f) { on_frame(c, std::move(f)); });
  address_ = transport_->address();
  cfg_["margo"]["mercury"]["address"] = address_;

  create_providers(cfg_["providers"]);

  // Start the xstreams (pinning failures throw: everything started so far is stopped by the
  // Xstream destructors), then the progress loop.
  for (auto& x : xstreams_)
    if (x.get() != primary_ || options_.primary_on_own_thread) x->start();
  progress_running_.store(true);
  progress_pool_->push([this] { progress_task(); });
}

Server::~Server() { finalize(); }

Pool* Server::find_pool(const std::string& name) const {
  for (const auto& p : pools_)
    if (p->name() == name) return p.get();
  throw std::logic_error("pool " + name + " not found");
}

void Server::create_providers(const json& providers) {
  std::set<std::string> types;
  for (const auto& lib : cfg_["libraries"]) types.insert(builtin_module_for_library(lib));
  json out = json::array();
  for (size_t i = 0; i < providers.size(); ++i) {
    const json& p = providers[i];
    std::string path = "providers[" + std::to_string(i) + "]";
    std::string type = p["type"];
    std::string name = p["name"];
    if (!types.count(type))
      throw ConfigError("Could not find registration function for module \"" + type + "\"", path + ".type");
    for (const auto& e : providers_)
      if (e.name == name)
        throw ConfigError("Name \"" + name + "\" already used by another provider", path + ".name");
    uint16_t id;
    if (p.contains("provider_id")) {
      id = p["provider_id"].get<uint16_t>();
      if (id == bedrock_provider_id_)
        throw ConfigError("Bedrock already uses provider ID " + std::to_string(id), path + ".provider_id");
      if (provider_index_.count(id))
        throw ConfigError("Another provider already uses provider ID " + std::to_string(id),
                          path + ".provider_id");
    } else {
      id = 0;
      while (id == bedrock_provider_id_ || provider_index_.count(id)) ++id;
    }
    ProviderEntry e;
    e.name = name;
    e.type = type;
    e.provider_id = id;
    e.tags = p["tags"];
    e.dependencies = p["dependencies"];
    e.pool = rpc_pool_;
    const json& deps = p["dependencies"];
    if (deps.contains("pool")) {
      const json& ref = deps["pool"];
      std::string dpath = path + ".dependencies.pool";
      if (ref.is_array()) throw ConfigError("Dependency \"pool\" should be a single pool", dpath);
      if (ref.is_string()) {
        std::string n = ref;
        auto it = std::find_if(pools_.begin(), pools_.end(), [&](auto& pl) { return pl->name() == n; });
        if (it == pools_.end())
          throw ConfigError("While resolving dependency \"pool\" (type \"pool\"): Could not find pool "
                            "with name \"" + n + "\"", dpath);
        e.pool = it->get();
      } else {
        long long idx = ref.get<long long>();
        if (idx < 0 || idx >= static_cast<long long>(pools_.size()))
          throw ConfigError("While resolving dependency \"pool\" (type \"pool\"): Could not find pool "
                            "at index " + std::to_string(idx), dpath);
        e.pool = pools_[static_cast<size_t>(idx)].get();
        e.dependencies["pool"] = e.pool->name();
      }
    } else if (type == "abt_io") {
      throw ConfigError("Missing dependency \"pool\" of type \"pool\" in provider configuration",
                        path + ".dependencies");
    }
    for (auto it = deps.begin(); it != deps.end(); ++it) {
      if (it.key() == "pool") continue;
      std::vector<json> refs = it.value().is_array() ? it.value().get<std::vector<json>>()
                                                     : std::vector<json>{it.value()};
      for (const auto& r : refs) {
        if (!r.is_string()) continue;
        std::string ref = r;
        size_t at = ref.find('@');
        if (at != std::string::npos) {
          if (ref.substr(at + 1) != "local") continue;  // remote (address or rank)
          ref = ref.substr(0, at);
        }
        bool found = std::any_of(providers_.begin(), providers_.end(), [&](const ProviderEntry& pe) {
          return pe.name == ref || pe.type + ":" + std::to_string(pe.provider_id) == ref;
        });
        if (!found)
          throw ConfigError("While resolving dependency \"" + it.key() + "\": Could not find provider \"" +
                                ref + "\" (local providers must be declared earlier in \"providers\")",
                            path + ".dependencies." + it.key());
      }
    }
    const json& pcfg = p["config"];
    if (type == "yokan") e.component = std::make_unique<YokanComponent>(pcfg, path);
    else if (type == "abt_io") e.component = std::make_unique<AbtIoComponent>(pcfg);
    else if (type == "warabi") e.component = std::make_unique<WarabiComponent>(pcfg, path);
    else if (type == "flock") e.component = std::make_unique<FlockComponent>(*this, pcfg, id, path);
    provider_index_[id] = providers_.size();
    providers_.push_back(std::move(e));
  }
}

json Server::config() const {
  json c = cfg_;
  json providers = json::array();
  for (const auto& e : providers_)
    providers.push_back({{"name", e.name},
                         {"type", e.type},
                         {"provider_id", e.provider_id},
                         {"config", e.component->config()},
                         {"dependencies", e.dependencies},
                         {"tags", e.tags},
                         {"engine", 0}});
  c["providers"] = providers;
  json xs = json::array();
  for (const auto& x : xstreams_)
    xs.push_back({{"name", x->name()},
                  {"os_thread_id", x->os_thread_id()},
                  {"cpus", x->actual_cpus()}});
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c["bedrock_engine"] = {{"version", kEngineVersion},
                         {"host", std::string(host)},
                         {"pid", getpid()},
                         {"rank", options_.context.rank},
                         {"size", options_.context.size},
                         {"xstreams", xs}};
  return c;
}

void Server::on_frame(const std::shared_ptr<ServerConnection>& conn, Frame&& frame) {
  const FrameHeader& h = frame.header;
  Pool* pool = nullptr;
  if (h.provider_id == bedrock_provider_id_ &&
      (h.rpc_id == rpc_query || h.rpc_id == rpc_shutdown)) {
    pool = bedrock_pool_;
  } else if (h.provider_id == bedrock_provider_id_ &&
             (h.rpc_id == rpc_ping || h.rpc_id == rpc_forward_ping)) {
    pool = rpc_pool_;
  } else {
    auto it = provider_index_.find(h.provider_id);
    if (it != provider_index_.end()) pool = providers_[it->second].pool;
  }
  if (!pool) {
    FrameHeader r{};
    std::string msg = "No provider with id " + std::to_string(h.provider_id);
    r.magic = kFrameMagic;
    r.length = static_cast<uint32_t>(msg.size());
    r.request_id = h.request_id;
    r.kind = static_cast<uint16_t>(FrameKind::response);
    r.provider_id = h.provider_id;
    r.rpc_id = h.rpc_id;
    r.status = status_no_provider;
    r.exec_tid = static_cast<uint32_t>(current_tid());
    r.exec_cpu = sched_getcpu();
    conn->send(r, msg);
    return;
  }
  pool->push([this, conn, f = std::move(frame)] { execute(conn, f); });
}

void Server::execute(const std::shared_ptr<ServerConnection>& conn, const Frame& f) {
  const FrameHeader& h = f.header;
  std::string out;
  int32_t status = status_ok;
  bool shutdown = false;
  try {
    if (h.provider_id == bedrock_provider_id_ && h.rpc_id == rpc_query) {
      out = config().dump();
    } else if (h.provider_id == bedrock_provider_id_ && h.rpc_id == rpc_shutdown) {
      shutdown = true;
    } else if (h.rpc_id == rpc_ping) {
      // empty RPC
    } else if (h.provider_id == bedrock_provider_id_ && h.rpc_id == rpc_forward_ping) {
      // Nested RPC made by a handler: while it waits, this xstream keeps running its pools
      // (including, on a single-xstream engine, the progress loop that receives the ping).
      Reader r(f.payload);
      std::string target(r.bytes());
      r.expect_end();
      Client nested(target);  // own connection: a nested call never contends for a lock
      Response inner = nested.ping(target);
      Writer w;
      w.u32(static_cast<uint32_t>(inner.exec_tid));
      w.u32(static_cast<uint32_t>(current_tid()));
      out = w.take();
    } else {
      auto it = provider_index_.find(h.provider_id);
      if (it == provider_index_.end()) throw RpcError(status_no_provider, "no such provider");
      out = providers_[it->second].component->handle(h.rpc_id, f.payload);
    }
  } catch (const RpcError& e) {
    status = e.status;
    out = e.what();
  } catch (const DecodeError& e) {
    status = status_bad_request;
    out = std::string("malformed request: ") + e.what();
  } catch (const std::exception& e) {
    status = status_error;
    out = e.what();
  }
  if (out.size() > kMaxPayload) {
    status = status_error;
    out = "response too large";
  }
  FrameHeader r{};
  r.magic = kFrameMagic;
  r.length = static_cast<uint32_t>(out.size());
  r.request_id = h.request_id;
  r.kind = static_cast<uint16_t>(FrameKind::response);
  r.provider_id = h.provider_id;
  r.rpc_id = h.rpc_id;
  r.status = status;
  r.exec_tid = static_cast<uint32_t>(current_tid());
  r.exec_cpu = sched_getcpu();
  conn->send(r, out);
  if (shutdown) {
    log(LogLevel::info, "Shutdown requested remotely");
    request_finalize();
  }
}

void Server::progress_task() {
  if (finalize_requested_.load()) {
    progress_running_.store(false);
    return;
  }
  Xstream* xs = Xstream::current();
  if (Xstream::run_depth() > 1 || xs == nullptr) {
    // Nested inside a waiting task: one non-blocking pass, then let the waiter continue.
    transport_->progress(0, -1);
    progress_pool_->push([this] { progress_task(); });
    return;
  }
  const bool tcp = kind_ == TransportKind::tcp;
  auto last_activity = Clock::now();
  unsigned iter = 0;
  while (!finalize_requested_.load(std::memory_order_relaxed)) {
    int n = transport_->poll_fast();
    ++iter;  // also for TCP: it paces the sched_yield below (every pass yielded before)
    if (tcp || (iter & 31) == 0) n += transport_->progress(0, -1);
    auto now = Clock::now();
    if (n > 0) last_activity = now;
    if (xs->has_pending() || xs->stopping()) break;  // let the handlers run
    if (timeout_ub_ms_ == 0 ||
        now - last_activity < std::chrono::milliseconds(spindown_ms_)) {
      if ((iter & 255) == 0) sched_yield(); else __builtin_ia32_pause();
      continue;
    }
    int wake_fd = xs->begin_sleep();
    if (wake_fd < 0) break;
    n = transport_->progress(timeout_ub_ms_, wake_fd);
    xs->end_sleep();
    if (n > 0) last_activity = Clock::now();
  }
  if (finalize_requested_.load()) {
    progress_running_.store(false);
    return;
  }
  progress_pool_->push([this] { progress_task(); });
}

void Server::run_primary() {
  if (options_.primary_on_own_thread || !primary_) {
    wait_for_finalize();
    return;
  }
  primary_->run_on_current_thread();
}

void Server::request_finalize() {
  {
    std::lock_guard<std::mutex> lock(finalize_mutex_);
    finalize_requested_.store(true);
  }
  finalize_cv_.notify_all();
  if (primary_ && !options_.primary_on_own_thread) primary_->stop();
}

void Server::wait_for_finalize() {
  std::unique_lock<std::mutex> lock(finalize_mutex_);
  finalize_cv_.wait(lock, [this] { return finalize_requested_.load(); });
}

bool Server::wait_for_finalize_for(int timeout_ms) {
  std::unique_lock<std::mutex> lock(finalize_mutex_);
  return finalize_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                               [this] { return finalize_requested_.load(); });
}

void Server::finalize() {
  request_finalize();
  if (finalized_.exchange(true)) return;
  for (auto& x : xstreams_) x->stop();
  for (auto& x : xstreams_) x->join();
  transport_.reset();
}

}  // namespace bedrock_engine
