// The server shell of a Bedrock-compatible daemon: one Margo-like instance (pools, xstreams
// placed as Argobots places them, the progress loop), the dispatch of incoming RPCs to the
// Bedrock service (bedrock_service.hpp) or to a provider's pool, and the providers
// (provider_manager.hpp, built-in components under components/).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "component.hpp"
#include "config.hpp"
#include "engine_settings.hpp"
#include "placement.hpp"
#include "provider_manager.hpp"
#include "runtime.hpp"
#include "transport.hpp"

namespace bedrock_engine {

constexpr const char* kEngineVersion = "0.1.0";

struct ServerOptions {
  ConfigContext context;  // $MPI_COMM_WORLD.rank / size
  // Exchanges one string per rank (an MPI allgather). Needed by flock's "mpi" bootstrap; the
  // Python entry point bedrock-engine-mpi provides it with mpi4py.
  std::function<std::vector<std::string>(const std::string&)> allgather;
  // false (CLI): __primary__ runs on the caller via run_primary(). true (bindings): it gets
  // its own (placed) thread.
  bool primary_on_own_thread = false;
};

class Server : public ComponentHost {
 public:
  // address: a protocol ("na+sm", "ofi+tcp") or a full address ("ofi+tcp://127.0.0.1:1234");
  // empty = inferred from margo.mercury.address like Bedrock. Throws ConfigError for invalid
  // configurations (after logging the lines the real daemon logs at [error]),
  // UnsupportedProtocol, std::runtime_error for runtime failures.
  Server(const std::string& address, const std::string& config_text, ServerOptions options);
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::string address() const { return address_; }
  json config() const;  // the running configuration (what bedrock-query returns)
  const std::vector<std::string>& warnings() const { return warnings_; }

  void run_primary();          // CLI: runs __primary__ on this thread until finalize is requested
  void request_finalize();     // any thread, async-signal-unsafe (use from a signal thread)
  void wait_for_finalize();    // blocks until finalize is requested
  bool wait_for_finalize_for(int timeout_ms);
  bool finalize_requested() const { return finalize_requested_.load(); }
  void finalize();             // request + stop and join every xstream (idempotent)

  // ComponentHost
  std::string self_address() const override { return address_; }
  int rank() const override { return options_.context.rank; }
  int size() const override { return options_.context.size; }
  const std::function<std::vector<std::string>(const std::string&)>* allgather() const override {
    return options_.allgather ? &options_.allgather : nullptr;
  }
  const EngineSettings& settings() const override { return settings_; }
  Xstream* start_component_xstream(const std::string& name, Pool* pool) override;

 private:
  void start(const std::string& address_in, const std::string& config_text);
  void create_pools_and_xstreams(const json& requests);
  void place(Xstream& x, int es_rank, const XstreamPlacement& requested);
  void create_providers(const json& providers);
  Pool* find_pool(const std::string& name) const;
  void on_frame(const std::shared_ptr<ServerConnection>& conn, Frame&& frame);
  void execute(const std::shared_ptr<ServerConnection>& conn, const Frame& frame);
  void reply(const std::shared_ptr<ServerConnection>& conn, const FrameHeader& request,
             int32_t status, const std::string& payload);
  void progress_task();

  // Declaration order is destruction order reversed: threads stop before what they use.
  ServerOptions options_;
  ArgobotsPlacement placement_;
  EngineSettings settings_;
  json cfg_;
  std::vector<std::string> warnings_;
  std::string address_;
  TransportKind kind_ = TransportKind::sm;
  int spindown_ms_ = 10, timeout_ub_ms_ = 100;
  int main_tid_ = 0;
  int next_es_rank_ = 1;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::unique_ptr<TransportServer> transport_;
  mutable std::mutex providers_mutex_;  // finalize() vs config() from another thread
  std::unique_ptr<ProviderManager> providers_;
  std::vector<std::unique_ptr<Xstream>> xstreams_;
  std::vector<std::unique_ptr<Xstream>> component_xstreams_;
  Xstream* primary_ = nullptr;
  Pool* progress_pool_ = nullptr;
  Pool* rpc_pool_ = nullptr;
  uint16_t bedrock_provider_id_ = 0;
  std::atomic<bool> finalize_requested_{false};
  std::atomic<bool> finalized_{false};
  std::atomic<bool> progress_running_{false};
  std::mutex finalize_mutex_;
  std::condition_variable finalize_cv_;
};

}  // namespace bedrock_engine
