// TCP, server side: the listening socket (bound to the address or interface the transport
// names) and one accepted connection: frames parsed as they arrive, responses queued when the
// socket is full, reading paused at the limits of transport_flow.hpp.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_flow.hpp"

namespace bedrock_engine::transport_detail {

// Where a TCP engine listens and what it advertises, from the address and FI_TCP_IFACE.
struct TcpBind {
  std::string bind_ip, advertised;
};
TcpBind resolve_tcp_bind(const Address& a, const std::string& spec, const char* fi_tcp_iface);

// Binds and listens as the address says; sets address to the advertised ofi+tcp:// address.
Fd listen_tcp(const Address& a, const std::string& spec, std::string& address);
// Per-connection socket options of an accepted connection (TCP_NODELAY).
void configure_tcp_connection(int fd);

class TcpServerConnection : public ServerConnection {
 public:
  TcpServerConnection(Fd fd, const TransportLimits& limits, int wake_fd)
      : fd_(std::move(fd)), flow_(limits, wake_fd) {}

  void send(const FrameHeader& h, std::string_view payload) override;
  bool flush();
  bool has_pending() const { return has_pending_.load(); }
  // Reads what is available and dispatches complete frames, until the connection is blocked.
  // Returns -1 to close.
  int on_readable(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  // The epoll events this connection wants now: EPOLLIN|EPOLLRDHUP unless blocked, EPOLLOUT
  // while output waits.
  uint32_t wanted_events() const;
  // Complete frames wait in the input buffer (left when the connection became blocked).
  bool has_buffered_frame() const;
  bool blocked() const { return flow_.blocked(); }
  uint32_t registered_events = 0;  // progress thread's record of what epoll has
  void close();
  bool closed();
  int fd() const { return fd_.get(); }

 private:
  int parse(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  Fd fd_;
  std::string in_, out_;
  size_t in_off_ = 0;  // parsed prefix of in_
  std::mutex mutex_;
  std::atomic<bool> has_pending_{false};
  FlowControl flow_;
  bool closed_ = false;
};

}  // namespace bedrock_engine::transport_detail
