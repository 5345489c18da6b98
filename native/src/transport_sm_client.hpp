// na+sm, client side: connects to the engine's abstract socket, creates the shared segment
// and eventfds, passes them in the handshake, then calls through the rings.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>

#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_sm_segment.hpp"

namespace bedrock_engine::transport_detail {

class SmClientConnection : public ClientConnection {
 public:
  explicit SmClientConnection(const Address& a);
  Frame call(FrameHeader h, std::string_view payload, const CallOptions& opts) override;
  void send_raw(std::string_view bytes) override;
  bool broken() const override { return broken_; }

 private:
  [[noreturn]] void fail(const std::string& why);
  void check_alive();
  Fd sock_, efd_server_, efd_client_;
  std::unique_ptr<Mapping> map_;
  std::unique_ptr<Ring> in_, out_;
  std::mutex mutex_;
  uint64_t next_id_ = 0;
  std::atomic<bool> broken_{false};
};

}  // namespace bedrock_engine::transport_detail
