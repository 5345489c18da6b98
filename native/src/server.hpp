// A Bedrock-compatible server: one Margo-like instance (pools, xstreams, progress loop), the
// Bedrock service RPCs (query, shutdown, ping) and built-in components (flock, yokan, abt_io).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.hpp"
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
  // its own (pinned, if requested) thread.
  bool primary_on_own_thread = false;
};

class Component;

class Server {
 public:
  // address: a protocol ("na+sm", "ofi+tcp") or a full address ("ofi+tcp://127.0.0.1:1234");
  // empty = inferred from margo.mercury.address like Bedrock. Throws ConfigError for invalid
  // configurations, UnsupportedProtocol, std::runtime_error for runtime failures (pinning...).
  Server(const std::string& address, const std::string& config_text, ServerOptions options);
  ~Server();
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

 private:
  struct ProviderEntry {
    std::string name, type;
    uint16_t provider_id = 0;
    json dependencies, tags;
    Pool* pool = nullptr;
    std::unique_ptr<Component> component;
  };

  Pool* find_pool(const std::string& name) const;
  void create_providers(const json& providers);
  void on_frame(const std::shared_ptr<ServerConnection>& conn, Frame&& frame);
  void execute(const std::shared_ptr<ServerConnection>& conn, const Frame& frame);
  void progress_task();

  ServerOptions options_;
  json cfg_;
  std::vector<std::string> warnings_;
  std::string address_;
  TransportKind kind_;
  int spindown_ms_ = 10, timeout_ub_ms_ = 100;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::vector<std::unique_ptr<Xstream>> xstreams_;
  Xstream* primary_ = nullptr;
  Pool* progress_pool_ = nullptr;
  Pool* rpc_pool_ = nullptr;
  Pool* bedrock_pool_ = nullptr;
  uint16_t bedrock_provider_id_ = 0;
  std::vector<ProviderEntry> providers_;
  std::map<uint16_t, size_t> provider_index_;
  std::unique_ptr<TransportServer> transport_;
  std::atomic<bool> finalize_requested_{false};
  std::atomic<bool> finalized_{false};
  std::atomic<bool> progress_running_{false};
  std::mutex finalize_mutex_;
  std::condition_variable finalize_cv_;
  friend class FlockComponent;
};

}  // namespace bedrock_engine
