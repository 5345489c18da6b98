// Client side of the engine's RPCs (like mochi.bedrock.client plus yokan/abt_io/flock calls).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "transport.hpp"

namespace bedrock_engine {

struct Response {
  int32_t status = 0;
  std::string payload;
  int exec_tid = 0;  // thread that executed the handler in the engine
  int exec_cpu = -1;
};

struct RpcError : std::runtime_error {
  RpcError(int32_t status, const std::string& message)
      : std::runtime_error(message), status(status) {}
  int32_t status;
};

class Client {
 public:
  // protocol: "na+sm", "ofi+tcp", ... (addresses passed to calls must use a matching transport)
  explicit Client(const std::string& protocol);

  // Raw call; throws RpcError if the engine answered with an error status.
  Response call(const std::string& address, uint16_t provider_id, uint32_t rpc_id,
                std::string_view payload);

  Response ping(const std::string& address, uint16_t provider_id = 0);
  // Asks the engine at `address` to ping `target` from inside its handler. Returns the OS
  // thread ids of (the nested ping's handler in target, the forwarding handler).
  std::pair<int, int> forward_ping(const std::string& address, const std::string& target);
  json query(const std::string& address, uint16_t provider_id = 0);
  void shutdown(const std::string& address, uint16_t provider_id = 0);

  void put(const std::string& address, uint16_t provider_id, std::string_view key,
           std::string_view value);
  std::optional<std::string> get(const std::string& address, uint16_t provider_id,
                                 std::string_view key);
  bool erase(const std::string& address, uint16_t provider_id, std::string_view key);
  std::vector<std::string> list(const std::string& address, uint16_t provider_id,
                                std::string_view prefix, uint32_t max_keys);

  json flock_view(const std::string& address, uint16_t provider_id);

  uint64_t abtio_pwrite(const std::string& address, uint16_t provider_id, const std::string& path,
                        uint64_t offset, std::string_view data);
  std::string abtio_pread(const std::string& address, uint16_t provider_id,
                          const std::string& path, uint64_t offset, uint64_t size);

  // For tests: raw bytes to an address over a fresh connection (the connection is kept).
  void send_raw(const std::string& address, std::string_view bytes);

  CallOptions options;
  Response last;  // status, exec_tid, exec_cpu of the last successful response (no payload)

 private:
  std::shared_ptr<ClientConnection> connection(const std::string& address);
  TransportKind kind_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ClientConnection>> conns_;
};

// Addresses of a Flock group file ({"members":[{"address":...}]}). Throws on bad files.
std::vector<std::string> read_group_file_addresses(const std::string& path);

}  // namespace bedrock_engine
