#include "server.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "bedrock_service.hpp"
#include "client.hpp"
#include "log.hpp"
#include "margo_config.hpp"
#include "wire.hpp"

namespace bedrock_engine {

namespace {

using Clock = std::chrono::steady_clock;

// Bedrock's MargoManager: without an address on the command line, the protocol is
// margo.mercury.address up to its first ':'.
std::string infer_address(const std::string& address_in, const json& cfg) {
  if (!address_in.empty()) return address_in;
  const json margo = cfg.value("margo", json());
  const json first = margo.is_array() && !margo.empty() ? margo[0] : margo;
  if (first.is_object() && first.contains("mercury") && first["mercury"].is_object() &&
      first["mercury"].contains("address") && first["mercury"]["address"].is_string()) {
    std::string a = first["mercury"]["address"].get<std::string>();
    size_t colon = a.find(':');
    if (colon != std::string::npos) return a.substr(0, colon);
  }
  throw ConfigError("Could not infer protocol for engine 0: no address provided and no valid "
                    "mercury.address found in configuration",
                    "margo.mercury.address");
}

XstreamPlacement requested_placement(const json& xstream) {
  XstreamPlacement p;
  const json& req = xstream[kPlacementKey];
  if (req["affinity"].is_array()) {
    p.has_affinity = true;
    p.affinity = req["affinity"].get<std::vector<int>>();
  }
  p.cpubind = req["cpubind"].get<int>();
  return p;
}

}  // namespace

Server::Server(const std::string& address_in, const std::string& config_text,
               ServerOptions options)
    : options_(std::move(options)), placement_(ArgobotsPlacement::for_this_process()) {
  try {
    start(address_in, config_text);
  } catch (const ConfigError& e) {
    for (const auto& line : e.error_lines()) log(LogLevel::error, line);
    throw;
  }
}

void Server::start(const std::string& address_in, const std::string& config_text) {
  if (!placement_.note().empty()) log(LogLevel::warning, placement_.note());
  json input = parse_config_text(config_text);
  std::string address = infer_address(address_in, expand_dotted_keys(input));
  PrepareOptions prepare;
  prepare.dry_providers = false;
  cfg_ = prepare_config(input, options_.context, &warnings_, prepare);
  for (const auto& w : warnings_) log(LogLevel::warning, w);
  settings_ = read_engine_settings(input.is_object() ? input.value("bedrock_engine", json())
                                                     : json());

  const json& margo = cfg_["margo"];
  spindown_ms_ = margo["progress_spindown_msec"].get<int>();
  timeout_ub_ms_ = margo["progress_timeout_ub_msec"].get<int>();
  kind_ = protocol_kind(address);
  transport_ = TransportServer::create(
      address, [this](const std::shared_ptr<ServerConnection>& c, Frame&& f) { on_frame(c, std::move(f)); });
  address_ = transport_->address();
  cfg_["margo"]["mercury"]["address"] = address_;
  apply_transport_eager_sizes(cfg_["margo"]["mercury"], kind_ == TransportKind::tcp);

  create_pools_and_xstreams(margo["argobots"]["xstreams"]);
  progress_pool_ = find_pool(margo["progress_pool"]);
  rpc_pool_ = find_pool(margo["rpc_pool"]);
  bedrock_provider_id_ = cfg_["bedrock"]["provider_id"].get<uint16_t>();

  log(LogLevel::trace, "Initializing ProviderManager");
  create_providers(cfg_["providers"]);
  log(LogLevel::trace, "Providers initialized");

  progress_running_.store(true);
  progress_pool_->push([this] { progress_task(); });
}

Server::~Server() { finalize(); }

// Pools, then the xstreams in order, each placed as Argobots places it (placement.hpp):
// __primary__ is ES 0 (the caller's thread for the CLI), the others ES 1, 2, ...
void Server::create_pools_and_xstreams(const json& xs) {
  for (const auto& p : cfg_["margo"]["argobots"]["pools"])
    pools_.push_back(std::make_unique<Pool>(p["name"], p["kind"], p["access"]));
  for (size_t i = 0; i < xs.size(); ++i) {
    const json& x = xs[i];
    std::vector<Pool*> pools;
    for (const auto& n : x["scheduler"]["pools"]) pools.push_back(find_pool(n));
    xstreams_.push_back(std::make_unique<Xstream>(x["name"], x["scheduler"]["type"], pools,
                                                  std::vector<int>{}));
    if (x["name"] == "__primary__") primary_ = xstreams_.back().get();
  }
  main_tid_ = current_tid();
  for (size_t i = 0; i < xs.size(); ++i) {
    Xstream& x = *xstreams_[i];
    XstreamPlacement requested = requested_placement(xs[i]);
    if (&x == primary_ && !options_.primary_on_own_thread) {
      place(x, 0, requested);  // the CLI's main thread; it runs the xstream in run_primary()
      continue;
    }
    x.start();
    place(x, &x == primary_ ? 0 : next_es_rank_++, requested);
  }
}

void Server::place(Xstream& x, int es_rank, const XstreamPlacement& requested) {
  int tid = (&x == primary_ && !options_.primary_on_own_thread) ? main_tid_ : x.os_thread_id();
  for (const auto& note : placement_.apply(tid, es_rank, requested, x.name())) {
    log(LogLevel::warning, note);
    warnings_.push_back(note);
  }
}

Xstream* Server::start_component_xstream(const std::string& name, Pool* pool) {
  component_xstreams_.push_back(
      std::make_unique<Xstream>(name, "basic_wait", std::vector<Pool*>{pool}, std::vector<int>{}));
  Xstream& x = *component_xstreams_.back();
  x.start();
  place(x, next_es_rank_++, XstreamPlacement{});
  return &x;
}

Pool* Server::find_pool(const std::string& name) const {
  for (const auto& p : pools_)
    if (p->name() == name) return p.get();
  throw std::logic_error("pool " + name + " not found");
}

void Server::create_providers(const json& providers) {
  if (providers.is_null()) {
    cfg_["providers"] = json::array();
  } else if (!providers.is_array()) {
    throw ConfigError("Invalid JSON configuration passed to "
                      "ProviderManager::addProviderListFromJSON (should be an array)",
                      "providers");
  }
  ProviderManager::Environment env;
  env.margo = cfg_["margo"];
  env.bedrock_provider_id = bedrock_provider_id_;
  for (const auto& lib : cfg_["libraries"])
    for (const auto& type : builtin_modules_of_library(lib)) env.loaded_types.insert(type);
  env.self_address = address_;
  env.rank = options_.context.rank;
  env.find_pool = [this](const std::string& n) { return find_pool(n); };
  providers_ = std::make_unique<ProviderManager>(env);
  ProviderManager::Create create = [this](ComponentArgs& args) {
    args.host = this;
    return component_factories().at(args.type)(args);
  };
  if (providers.is_array())
    for (size_t i = 0; i < providers.size(); ++i) providers_->add(providers[i], i, &create);
}

json Server::config() const {
  json c = cfg_;
  {
    std::lock_guard<std::mutex> lock(providers_mutex_);
    c["providers"] = providers_ ? providers_->config() : json::array();
  }
  json xs = json::array();
  json& reported = c["margo"]["argobots"]["xstreams"];
  for (size_t i = 0; i < xstreams_.size(); ++i) {
    const Xstream& x = *xstreams_[i];
    int tid = x.os_thread_id();
    if (tid == 0 && &x == primary_) tid = main_tid_;
    std::vector<int> cpus = thread_cpus(tid);
    json& j = reported[i];
    j.erase(kPlacementKey);
    j.erase("cpubind");
    j.erase("affinity");
    report_cpus(j, cpus);
    xs.push_back({{"name", x.name()}, {"os_thread_id", tid}, {"cpus", cpus}});
  }
  json threads = json::array();
  for (const auto& x : component_xstreams_)
    threads.push_back({{"name", x->name()},
                       {"os_thread_id", x->os_thread_id()},
                       {"cpus", thread_cpus(x->os_thread_id())}});
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  c["bedrock_engine"] = {{"version", kEngineVersion},
                         {"host", std::string(host)},
                         {"pid", getpid()},
                         {"rank", options_.context.rank},
                         {"size", options_.context.size},
                         {"xstreams", xs},
                         {"threads", threads},
                         {"settings", settings_.to_json()}};
  return c;
}

void Server::on_frame(const std::shared_ptr<ServerConnection>& conn, Frame&& frame) {
  const FrameHeader& h = frame.header;
  Pool* pool = nullptr;
  if (h.provider_id == bedrock_provider_id_ && is_bedrock_service_rpc(h.rpc_id)) {
    pool = rpc_pool_;  // Bedrock's own RPCs run in the handler pool
  } else if (ProviderEntry* p = providers_ ? providers_->find(h.provider_id) : nullptr) {
    pool = p->pool;
  }
  if (!pool) {
    reply(conn, h, status_no_provider, "No provider with id " + std::to_string(h.provider_id));
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
    if (h.provider_id == bedrock_provider_id_ && is_bedrock_service_rpc(h.rpc_id)) {
      ServiceReply r = execute_bedrock_service_rpc(h.rpc_id, f.payload, [this] { return config(); },
                                                   settings_);
      out = std::move(r.payload);
      shutdown = r.shutdown;
    } else if (h.rpc_id == rpc_ping) {
      // an empty RPC, answered by every provider in its pool
    } else {
      ProviderEntry* p = providers_ ? providers_->find(h.provider_id) : nullptr;
      if (!p) throw RpcError(status_no_provider, "no such provider");
      out = p->component->handle(h.rpc_id, f.payload);
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
  reply(conn, h, status, out);
  if (shutdown) {
    log(LogLevel::info, "Shutdown requested remotely");
    request_finalize();
  }
}

void Server::reply(const std::shared_ptr<ServerConnection>& conn, const FrameHeader& request,
                   int32_t status, const std::string& payload) {
  FrameHeader r{};
  r.magic = kFrameMagic;
  r.length = static_cast<uint32_t>(payload.size());
  r.request_id = request.request_id;
  r.kind = static_cast<uint16_t>(FrameKind::response);
  r.provider_id = request.provider_id;
  r.rpc_id = request.rpc_id;
  r.status = status;
  r.exec_tid = static_cast<uint32_t>(current_tid());
  r.exec_cpu = sched_getcpu();
  conn->send(r, payload);
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
  for (auto& x : component_xstreams_) x->stop();
  for (auto& x : xstreams_) x->join();
  for (auto& x : component_xstreams_) x->join();
  // Like Bedrock's pre-finalize: providers go (databases close, files are released).
  std::lock_guard<std::mutex> lock(providers_mutex_);
  providers_.reset();
  transport_.reset();
}

}  // namespace bedrock_engine
