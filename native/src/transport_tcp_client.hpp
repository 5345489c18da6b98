// TCP, client side: one connected socket; a call sends a frame and polls for its response.
#pragma once
#include <atomic>
#include <mutex>
#include <string>

#include "transport.hpp"
#include "transport_detail.hpp"

namespace bedrock_engine::transport_detail {

class TcpClientConnection : public ClientConnection {
 public:
  explicit TcpClientConnection(const Address& a);
  Frame call(FrameHeader h, std::string_view payload, const CallOptions& opts) override;
  void send_raw(std::string_view bytes) override;
  bool broken() const override { return broken_; }

 private:
  void send_all(std::string_view data);
  [[noreturn]] void fail(const std::string& why);
  Fd fd_;
  std::string in_;
  std::mutex mutex_;
  uint64_t next_id_ = 0;
  std::atomic<bool> broken_{false};
};

}  // namespace bedrock_engine::transport_detail
