// na+sm, server side: the listening abstract Unix socket and one accepted connection (the
// handshake that receives the client's segment and eventfds, then frames through the rings).
#pragma once
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_sm_segment.hpp"

namespace bedrock_engine::transport_detail {

// Binds a fresh abstract socket "bedrock-engine/na+sm/<pid>-<n>"; sets address to its
// na+sm:// address. spec is only used in messages (it must not carry an id).
Fd listen_sm(const Address& a, const std::string& spec, std::string& address);

class SmServerConnection : public ServerConnection {
 public:
  explicit SmServerConnection(Fd sock) : sock_(std::move(sock)) {}

  // Returns false (and the connection should be dropped) if the handshake is invalid.
  bool handshake();
  void send(const FrameHeader& h, std::string_view payload) override;

  // Progress-thread side.
  bool flush();
  bool has_pending() const { return has_pending_.load(); }
  // Reads available frames. Returns -1 if the ring is corrupt.
  int poll(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self);
  bool has_data() const { return ready_ && in_->has_data(); }
  void set_sleeping(bool s) {
    if (ready_) in_->set_sleeping(s);
  }
  void close();
  bool closed();
  int sock() const { return sock_.get(); }
  int efd_server() const { return efd_server_.get(); }
  bool ready() const { return ready_; }

 private:
  Fd sock_, efd_server_, efd_client_;
  std::unique_ptr<Mapping> map_;
  std::unique_ptr<Ring> in_, out_;
  std::mutex mutex_;
  std::deque<std::string> pending_;
  std::atomic<bool> has_pending_{false};
  bool closed_ = false;
  bool ready_ = false;
};

}  // namespace bedrock_engine::transport_detail
