// TCP, server side: the listening socket (bound to the address or interface the transport
// names) and one accepted connection (frames parsed as they arrive, responses queued when the
// socket is full).
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "transport.hpp"
#include "transport_detail.hpp"

namespace bedrock_engine::transport_detail {

// Binds and listens as the address says; sets address to the advertised ofi+tcp:// address.
Fd listen_tcp(const Address& a, const std::string& spec, std::string& address);
// Per-connection socket options of an accepted connection (TCP_NODELAY).
void configure_tcp_connection(int fd);

class TcpServerConnection : public ServerConnection {
 public:
  explicit TcpServerConnection(Fd fd) : fd_(std::move(fd)) {}

  void send(const FrameHeader& h, std::string_view payload) override;
  bool flush();
  bool has_pending() const { return has_pending_.load(); }
  // Reads what is available and dispatches complete frames. Returns -1 to close.
  int on_readable(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  void close();
  bool closed();
  int fd() const { return fd_.get(); }

 private:
  int parse(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  Fd fd_;
  std::string in_, out_;
  std::mutex mutex_;
  std::atomic<bool> has_pending_{false};
  bool closed_ = false;
};

}  // namespace bedrock_engine::transport_detail
