#include "transport_tcp_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bedrock_engine::transport_detail {

Fd listen_tcp(const Address& a, const std::string& spec, std::string& address) {
  std::string bind_ip = "0.0.0.0";
  std::string advertised;
  if (!a.host.empty() && a.host != "0.0.0.0") {
    in_addr tmp{};
    if (inet_pton(AF_INET, a.host.c_str(), &tmp) == 1) {
      bind_ip = a.host;
    } else {
      bind_ip = interface_ipv4(a.host);
      if (bind_ip.empty())
        throw std::invalid_argument("Address \"" + spec + "\": \"" + a.host +
                                    "\" is neither an IPv4 address nor an interface with "
                                    "an IPv4 address");
    }
    advertised = bind_ip;
  } else {
    advertised = default_ipv4();
  }
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) throw_errno("socket(AF_INET)");
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  inet_pton(AF_INET, bind_ip.c_str(), &sa.sin_addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw_errno("bind(" + bind_ip + ":" + std::to_string(a.port) + ")");
  if (listen(listener.get(), 128) != 0) throw_errno("listen");
  socklen_t slen = sizeof sa;
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &slen);
  std::string proto = a.protocol == "tcp" ? "ofi+tcp" : a.protocol;
  address = proto + "://" + advertised + ":" + std::to_string(ntohs(sa.sin_port));
  return listener;
}

void configure_tcp_connection(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void TcpServerConnection::send(const FrameHeader& h, std::string_view payload) {
  std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
  frame.append(payload.data(), payload.size());
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return;
  if (out_.empty()) {
    size_t off = 0;
    while (off < frame.size()) {
      ssize_t n = ::send(fd_.get(), frame.data() + off, frame.size() - off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      closed_ = true;
      return;
    }
    if (off == frame.size()) return;
    out_.append(frame, off, std::string::npos);
  } else {
    out_.append(frame);
  }
  has_pending_.store(true);
}

bool TcpServerConnection::flush() {
  if (!has_pending_.load()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!out_.empty()) {
    ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    closed_ = true;
    return false;
  }
  has_pending_.store(!out_.empty());
  return true;
}

int TcpServerConnection::on_readable(const FrameHandler& on_frame,
                                     const std::shared_ptr<ServerConnection>& self) {
  int frames = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      // Parse eagerly so a hostile peer cannot make us buffer more than one frame.
      int r = parse(on_frame, self);
      if (r < 0) return -1;
      frames += r;
      continue;
    }
    if (n == 0) return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return -1;
  }
  return frames;
}

void TcpServerConnection::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
}

bool TcpServerConnection::closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

int TcpServerConnection::parse(const FrameHandler& on_frame,
                               const std::shared_ptr<ServerConnection>& self) {
  int frames = 0;
  size_t off = 0;
  while (in_.size() - off >= sizeof(FrameHeader)) {
    FrameHeader h;
    std::memcpy(&h, in_.data() + off, sizeof h);
    if (!check_header(h).empty()) return -1;
    if (h.kind != static_cast<uint16_t>(FrameKind::request)) return -1;
    if (in_.size() - off < sizeof h + h.length) break;
    Frame f;
    f.header = h;
    f.payload.assign(in_, off + sizeof h, h.length);
    off += sizeof h + h.length;
    on_frame(self, std::move(f));
    ++frames;
  }
  in_.erase(0, off);
  return frames;
}

}  // namespace bedrock_engine::transport_detail
