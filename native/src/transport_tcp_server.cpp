#include "transport_tcp_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace bedrock_engine::transport_detail {

// libfabric's tcp provider (FI_TCP_IFACE, ofi_get_list_of_addr() in ofiwg/libfabric
// src/common.c) offers the addresses of the named interface, else those of every up
// non-loopback interface, loopback last; Mercury's na_ofi binds the first one. bedrock-engine
// does the same with one difference: an FI_TCP_IFACE naming no interface with an IPv4 address
// is an error (libfabric ignores such a filter and would listen elsewhere).
TcpBind resolve_tcp_bind(const Address& a, const std::string& spec, const char* fi_tcp_iface) {
  std::string iface = fi_tcp_iface ? fi_tcp_iface : "";
  auto from_iface = [&]() {
    std::string ip = interface_ipv4(iface);
    if (ip.empty())
      throw std::invalid_argument("FI_TCP_IFACE=\"" + iface + "\" names no interface with an "
                                  "IPv4 address (address \"" + spec + "\")");
    return ip;
  };
  if (a.host.empty()) {
    std::string ip = iface.empty() ? default_ipv4() : from_iface();
    return {ip, ip};
  }
  if (a.host == "0.0.0.0")  // every interface, asked for explicitly
    return {"0.0.0.0", iface.empty() ? default_ipv4() : from_iface()};
  in_addr tmp{};
  if (inet_pton(AF_INET, a.host.c_str(), &tmp) == 1) return {a.host, a.host};
  std::string ip = interface_ipv4(a.host);
  if (ip.empty())
    throw std::invalid_argument("Address \"" + spec + "\": \"" + a.host +
                                "\" is neither an IPv4 address nor an interface with an IPv4 "
                                "address");
  return {ip, ip};
}

Fd listen_tcp(const Address& a, const std::string& spec, std::string& address) {
  TcpBind where = resolve_tcp_bind(a, spec, std::getenv("FI_TCP_IFACE"));
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) throw_errno("socket(AF_INET)");
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  inet_pton(AF_INET, where.bind_ip.c_str(), &sa.sin_addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw_errno("bind(" + where.bind_ip + ":" + std::to_string(a.port) + ")");
  if (listen(listener.get(), 128) != 0) throw_errno("listen");
  socklen_t slen = sizeof sa;
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &slen);
  std::string proto = a.protocol == "tcp" ? "ofi+tcp" : a.protocol;
  address = proto + "://" + where.advertised + ":" + std::to_string(ntohs(sa.sin_port));
  return listener;
}

void configure_tcp_connection(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void TcpServerConnection::send(const FrameHeader& h, std::string_view payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return;
  size_t before = out_.size();
  if (out_.empty()) {
    // Header and payload in one sendmsg, nothing copied when the socket takes it all.
    iovec iov[2] = {{const_cast<FrameHeader*>(&h), sizeof h},
                    {const_cast<char*>(payload.data()), payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = payload.empty() ? 1 : 2;
    size_t total = sizeof h + payload.size(), off = 0;
    for (;;) {
      ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        off = static_cast<size_t>(n);
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      closed_ = true;
      return;
    }
    if (off < total) {
      std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
      frame.append(payload.data(), payload.size());
      out_.append(frame, off, std::string::npos);
      has_pending_.store(true);
    }
  } else {
    out_.append(reinterpret_cast<const char*>(&h), sizeof h);
    out_.append(payload.data(), payload.size());
  }
  flow_.response_produced(before, out_.size());
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
  if (out_.empty()) out_.shrink_to_fit();
  flow_.output_sent(out_.size());
  has_pending_.store(!out_.empty());
  return true;
}

uint32_t TcpServerConnection::wanted_events() const {
  uint32_t ev = flow_.blocked() ? 0u : static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP);
  if (has_pending_.load()) ev |= EPOLLOUT;
  return ev;
}

int TcpServerConnection::on_readable(const FrameHandler& on_frame,
                                     const std::shared_ptr<ServerConnection>& self) {
  int frames = 0;
  // Frames left over from a read that stopped at the limits come first.
  int r = parse(on_frame, self);
  if (r < 0) return -1;
  frames += r;
  char buf[65536];
  while (!flow_.blocked()) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      // Parse eagerly so a hostile peer cannot make us buffer more than one frame (plus what
      // one read brought while the connection became blocked).
      r = parse(on_frame, self);
      if (r < 0) return -1;
      frames += r;
      // A short read emptied the socket: no second recv just to hear EAGAIN (epoll is
      // level-triggered and reports what arrives later).
      if (static_cast<size_t>(n) < sizeof buf) break;
      continue;
    }
    if (n == 0) return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return -1;
  }
  return frames;
}

bool TcpServerConnection::has_buffered_frame() const {
  if (in_.size() - in_off_ < sizeof(FrameHeader)) return false;
  FrameHeader h;
  std::memcpy(&h, in_.data() + in_off_, sizeof h);
  if (!check_header(h).empty()) return true;  // parse() will close the connection
  return in_.size() - in_off_ >= sizeof h + h.length;
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
  while (!flow_.blocked() && in_.size() - in_off_ >= sizeof(FrameHeader)) {
    FrameHeader h;
    std::memcpy(&h, in_.data() + in_off_, sizeof h);
    if (!check_header(h).empty()) return -1;
    if (h.kind != static_cast<uint16_t>(FrameKind::request)) return -1;
    if (in_.size() - in_off_ < sizeof h + h.length) break;
    Frame f;
    f.header = h;
    f.payload.assign(in_, in_off_ + sizeof h, h.length);
    in_off_ += sizeof h + h.length;
    flow_.request_read();
    on_frame(self, std::move(f));
    ++frames;
  }
  if (in_off_ == in_.size()) {
    in_.clear();
    in_off_ = 0;
    if (in_.capacity() > (256u << 10)) in_.shrink_to_fit();  // after a large frame
  } else if (in_off_ > 0 && in_off_ >= in_.size() / 2) {
    in_.erase(0, in_off_);
    in_off_ = 0;
  }
  return frames;
}

}  // namespace bedrock_engine::transport_detail
