// Back-pressure of one accepted connection: how many of its requests are being handled and how
// many response bytes wait for its reader. The progress thread stops reading a connection that
// is at either limit (TransportLimits) and resumes when its handlers answer or its peer reads;
// handler threads wake the progress thread (the server's wake eventfd) when that happens.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "transport.hpp"
#include "transport_detail.hpp"

namespace bedrock_engine::transport_detail {

class FlowControl {
 public:
  FlowControl(const TransportLimits& limits, int wake_fd)
      : max_inflight_(limits.max_inflight), max_queued_(limits.max_queued_bytes),
        wake_fd_(wake_fd) {}

  // Progress thread: a request was read and handed to its handler.
  void request_read() { inflight_.fetch_add(1, std::memory_order_relaxed); }

  // Any thread, under the connection's lock: a response was produced and `queued_after`
  // bytes now wait for the reader. Wakes the progress thread when reading may resume or when
  // output started waiting (it must then watch for the peer reading).
  void response_produced(size_t queued_before, size_t queued_after) {
    uint32_t before = inflight_.load(std::memory_order_relaxed);
    while (before > 0 &&
           !inflight_.compare_exchange_weak(before, before - 1, std::memory_order_relaxed)) {
    }
    bool was_blocked = before >= max_inflight_ || queued_before >= max_queued_;
    queued_.store(queued_after, std::memory_order_relaxed);
    if ((was_blocked && !blocked()) || (queued_before == 0 && queued_after > 0))
      signal_eventfd(wake_fd_);
  }
  // Progress thread, under the connection's lock: queued output went out.
  void output_sent(size_t queued_after) { queued_.store(queued_after, std::memory_order_relaxed); }

  // Reading this connection must wait.
  bool blocked() const {
    return inflight_.load(std::memory_order_relaxed) >= max_inflight_ ||
           queued_.load(std::memory_order_relaxed) >= max_queued_;
  }
  size_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  const uint32_t max_inflight_;
  const size_t max_queued_;
  const int wake_fd_;
  std::atomic<uint32_t> inflight_{0};
  std::atomic<size_t> queued_{0};
};

}  // namespace bedrock_engine::transport_detail
