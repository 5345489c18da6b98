// na+sm, server side: the listening abstract Unix socket (peers checked with SO_PEERCRED) and
// one accepted connection: the handshake that receives the client's sealed segment and its
// eventfds, then frames through the rings with bounded output (transport_flow.hpp).
#pragma once
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_flow.hpp"
#include "transport_sm_segment.hpp"

namespace bedrock_engine::transport_detail {

// Binds a fresh abstract socket "bedrock-engine/na+sm/<pid>-<n>"; sets address to its
// na+sm:// address. spec is only used in messages (it must not carry an id).
Fd listen_sm(const Address& a, const std::string& spec, std::string& address);

// The peer of an accepted na+sm socket runs as the engine's effective uid or one the limits
// allow. Returns "" if so, else why not.
std::string check_sm_peer(int fd, const TransportLimits& limits);

class SmServerConnection : public ServerConnection {
 public:
  SmServerConnection(Fd sock, const TransportLimits& limits, int wake_fd)
      : sock_(std::move(sock)), flow_(limits, wake_fd) {}

  // Returns false (and the connection should be dropped) if the handshake is invalid; sets
  // *why to the reason.
  bool handshake(std::string* why);
  void send(const FrameHeader& h, std::string_view payload) override;

  // Progress-thread side.
  bool flush();
  bool has_pending() const { return has_pending_.load(); }
  // Reads available frames (none while the connection is blocked). Returns -1 if the ring is
  // corrupt.
  int poll(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  // Requests are waiting and may be read now.
  bool has_data() const { return ready_ && !flow_.blocked() && in_->has_data(); }
  void set_sleeping(bool s) {
    if (ready_) in_->set_sleeping(s);
  }
  void close();
  bool closed();
  int sock() const { return sock_.get(); }
  int efd_server() const { return efd_server_.get(); }
  bool ready() const { return ready_; }

 private:
  size_t write_pending();  // under mutex_; returns the bytes still queued
  Fd sock_, efd_server_, efd_client_;
  std::unique_ptr<Mapping> map_;
  std::unique_ptr<Ring> in_, out_;
  std::mutex mutex_;
  std::deque<std::string> pending_;
  size_t pending_bytes_ = 0;
  std::atomic<bool> has_pending_{false};
  FlowControl flow_;
  bool closed_ = false;
  bool ready_ = false;
};

}  // namespace bedrock_engine::transport_detail
