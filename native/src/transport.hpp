// Transports: "na+sm" (shared-memory rings in a memfd mapping passed over an abstract Unix
// socket; the socket and eventfds are used only to connect, to detect a dead peer and to wake a
// sleeping reader) and TCP ("ofi+tcp://", "tcp://"). Both carry the frames of wire.hpp.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "wire.hpp"

namespace bedrock_engine {

enum class TransportKind { sm, tcp };

struct Address {
  TransportKind kind = TransportKind::sm;
  std::string protocol;  // as written, e.g. "na+sm", "ofi+tcp", "tcp"
  std::string sm_id;     // "<pid>-<n>"
  std::string host;      // tcp
  int port = 0;          // tcp
  int vni = -1;          // emulated CXI (transport_emulated.hpp): the endpoint's VNI
};

// Errors about protocols we do not implement carry the "use the Spack-built bedrock" advice.
struct UnsupportedProtocol : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "na+sm://1234-0" | "na+sm" | "sm://" | "ofi+tcp://10.0.0.1:5000" | "tcp" ...
// Throws UnsupportedProtocol (cxi, verbs, ...) or std::invalid_argument (malformed).
Address parse_address(const std::string& text);
TransportKind protocol_kind(const std::string& protocol_or_address);

class ServerConnection {
 public:
  virtual ~ServerConnection() = default;
  // Thread-safe. Queues the frame if the peer is slow; drops it if the connection is closed.
  virtual void send(const FrameHeader& header, std::string_view payload) = 0;
};

using FrameHandler = std::function<void(const std::shared_ptr<ServerConnection>&, Frame&&)>;

// What one engine lets its clients hold (native/README.md, "Limits"). Every field can be set
// through the environment (from_environment); the defaults apply otherwise.
struct TransportLimits {
  // Accepted connections (na+sm and TCP, handshakes included); more are closed at once.
  size_t max_connections = 1024;                  // BEDROCK_ENGINE_MAX_CONNECTIONS
  // Requests of one connection being handled (read, response not yet queued). At the limit
  // the engine stops reading that connection until responses go out (back-pressure).
  uint32_t max_inflight = 16;                     // BEDROCK_ENGINE_MAX_INFLIGHT
  // Response bytes of one connection waiting for its reader; at the limit, reading that
  // connection stops until the peer reads. Worst case per connection:
  // max_queued_bytes + max_inflight * (1 MiB + 40).
  size_t max_queued_bytes = 4u << 20;             // BEDROCK_ENGINE_MAX_QUEUED_BYTES
  // When accept() fails for lack of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
  // listener is left alone this long (or until a connection closes) instead of spinning.
  int accept_backoff_ms = 100;                    // BEDROCK_ENGINE_ACCEPT_BACKOFF_MS
  // na+sm peers allowed besides the engine's own effective uid ("*" = anyone).
  std::vector<unsigned> sm_allowed_uids;          // BEDROCK_ENGINE_SM_ALLOWED_UIDS=1000,1001
  bool sm_allow_any_uid = false;

  // Defaults overridden by the BEDROCK_ENGINE_* variables above. Throws std::invalid_argument
  // naming the variable when a value is malformed or out of range.
  static TransportLimits from_environment();
};

// The listening side of one protocol plus all accepted connections. progress() is called by
// a single thread at a time (the progress loop); send() on connections from any thread.
class TransportServer {
 public:
  virtual ~TransportServer() = default;
  virtual std::string address() const = 0;
  // One progress pass. Returns the number of frames/events handled. timeout_ms: 0 = poll,
  // > 0 = may block that long (woken early by traffic or by wake_fd becoming readable).
  virtual int progress(int timeout_ms, int wake_fd) = 0;
  // Cheap check of shared-memory rings only (no syscall). Returns frames handled.
  virtual int poll_fast() = 0;
  virtual size_t connection_count() const = 0;

  // TCP listens on the address's host (an IPv4 address or an interface name); without one, on
  // the interface FI_TCP_IFACE names (as libfabric's tcp provider), else on the first
  // non-loopback interface that is up; never on every interface unless the host is 0.0.0.0.
  static std::unique_ptr<TransportServer> create(const std::string& address_spec,
                                                 FrameHandler on_frame);  // limits from env
  static std::unique_ptr<TransportServer> create(const std::string& address_spec,
                                                 FrameHandler on_frame, TransportLimits limits);
};

struct CallOptions {
  std::chrono::microseconds spin{10000};  // busy-poll this long before sleeping
  std::chrono::milliseconds timeout{60000};
};

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // Sends a request and waits for its response. Thread-safe (one call at a time per
  // connection). Throws std::runtime_error on timeout or a broken/closed connection.
  virtual Frame call(FrameHeader header, std::string_view payload, const CallOptions& opts) = 0;
  virtual bool broken() const = 0;
  // For tests: writes raw bytes as they are to the peer (tcp) / into the ring (sm).
  virtual void send_raw(std::string_view bytes) = 0;

  static std::shared_ptr<ClientConnection> connect(const Address& address);
};

// IPv4 address of the first non-loopback interface that is up and running ("127.0.0.1" if none).
std::string default_ipv4();

}  // namespace bedrock_engine
