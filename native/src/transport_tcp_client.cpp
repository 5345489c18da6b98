#include "transport_tcp_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "runtime.hpp"

namespace bedrock_engine::transport_detail {

TcpClientConnection::TcpClientConnection(const Address& a) {
  if (a.host.empty() || a.port == 0)
    throw std::invalid_argument("TCP address needs a host and a port (e.g. ofi+tcp://127.0.0.1:1234)");
  fd_ = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw_errno("socket");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  if (inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr) != 1)
    throw std::invalid_argument("Invalid IPv4 address \"" + a.host + "\"");
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw_errno("Could not connect to " + a.host + ":" + std::to_string(a.port));
  int one = 1;
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Frame TcpClientConnection::call(FrameHeader h, std::string_view payload,
                                const CallOptions& opts) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (broken_) throw std::runtime_error("connection is closed");
  h.request_id = ++next_id_;
  std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
  frame.append(payload.data(), payload.size());
  send_all(frame);
  const auto start = Clock::now();
  const auto deadline = start + opts.timeout;
  const auto spin_until = start + opts.spin;
  // A TCP round trip takes ~8 us even between spinning raw sockets here: yielding before
  // that only delays the response behind sched_yield calls.
  const auto yield_from = start + 3 * kSpinBeforeYield + std::chrono::microseconds(15);
  Xstream* xs = Xstream::current();
  for (;;) {
    while (in_.size() >= sizeof(FrameHeader)) {
      FrameHeader rh;
      std::memcpy(&rh, in_.data(), sizeof rh);
      if (!check_header(rh).empty() || rh.kind != static_cast<uint16_t>(FrameKind::response))
        fail("malformed response");
      if (in_.size() < sizeof rh + rh.length) break;
      Frame f;
      f.header = rh;
      f.payload.assign(in_, sizeof rh, rh.length);
      in_.erase(0, sizeof rh + rh.length);
      if (rh.request_id == h.request_id) return f;
    }
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) fail("connection closed by the engine");
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) fail(std::strerror(errno));
    if (xs && xs->run_one()) continue;
    auto now = Clock::now();
    if (now > deadline) fail("timeout waiting for the response");
    if (now < spin_until) {
      if (now >= yield_from) std::this_thread::yield();  // as in transport_sm_client.cpp
      continue;
    }
    wait_readable(fd_.get(), -1, xs ? 1 : 100, nullptr);
  }
}

void TcpClientConnection::send_raw(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  send_all(bytes);
}

void TcpClientConnection::send_all(std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    fail(std::string("send: ") + std::strerror(errno));
  }
}

void TcpClientConnection::fail(const std::string& why) {
  broken_ = true;
  throw std::runtime_error("tcp: " + why);
}

}  // namespace bedrock_engine::transport_detail
