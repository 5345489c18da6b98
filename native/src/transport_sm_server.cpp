#include "transport_sm_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace bedrock_engine::transport_detail {

namespace {
std::atomic<int> g_sm_counter{0};
}

Fd listen_sm(const Address& a, const std::string& spec, std::string& address) {
  if (!a.sm_id.empty())
    throw std::invalid_argument("na+sm addresses are assigned by the engine; pass \"na+sm\" "
                                "(got \"" + spec + "\")");
  std::string id = std::to_string(getpid()) + "-" + std::to_string(g_sm_counter.fetch_add(1));
  Fd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) throw_errno("socket(AF_UNIX)");
  socklen_t len;
  sockaddr_un sa = abstract_addr(sm_socket_name(id), len);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
    throw_errno("bind(na+sm " + id + ")");
  if (listen(listener.get(), 128) != 0) throw_errno("listen");
  address = "na+sm://" + id;
  return listener;
}

std::string check_sm_peer(int fd, const TransportLimits& limits) {
  if (limits.sm_allow_any_uid) return {};
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
    return "cannot read the peer's credentials";
  uid_t me = geteuid();
  if (cred.uid == me) return {};
  const auto& ok = limits.sm_allowed_uids;
  if (std::find(ok.begin(), ok.end(), static_cast<unsigned>(cred.uid)) != ok.end()) return {};
  return "peer uid " + std::to_string(cred.uid) + " (pid " + std::to_string(cred.pid) +
         ") is not the engine's uid " + std::to_string(me) +
         " nor in BEDROCK_ENGINE_SM_ALLOWED_UIDS";
}

bool SmServerConnection::handshake(std::string* why) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(3 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg(sock_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // not yet
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds.push_back(fd);
      }
    }
  }
  std::vector<Fd> owned;
  for (int fd : fds) owned.emplace_back(fd);
  if (n != 1 || byte != 'S' || owned.size() != 3 || (msg.msg_flags & MSG_CTRUNC)) {
    *why = "malformed handshake";
    return false;
  }
  std::string bad = check_segment_fd(owned[0].get());
  if (!bad.empty()) {
    *why = bad;
    return false;
  }
  try {
    map_ = std::make_unique<Mapping>(owned[0].get(), kSegmentSize);
  } catch (const std::exception& e) {
    *why = e.what();
    return false;
  }
  auto* hdr = reinterpret_cast<SegmentHeader*>(map_->get());
  if (hdr->magic != kSegmentMagic || hdr->version != kSegmentVersion ||
      hdr->capacity != kRingCapacity) {
    *why = "segment header has the wrong magic, version or capacity";
    return false;
  }
  in_ = std::make_unique<Ring>(&hdr->to_server, map_->get() + kDataOffset);
  out_ = std::make_unique<Ring>(&hdr->to_client, map_->get() + kDataOffset + kRingCapacity);
  in_->prefault();
  out_->prefault();
  efd_server_ = std::move(owned[1]);
  efd_client_ = std::move(owned[2]);
  set_nonblocking(efd_server_.get());
  char ok = 'K';
  if (::send(sock_.get(), &ok, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    *why = "could not acknowledge the handshake";
    return false;
  }
  ready_ = true;
  return true;
}

void SmServerConnection::send(const FrameHeader& h, std::string_view payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || !ready_) return;
  size_t before = pending_bytes_;
  if (pending_.empty()) {
    Ring::Result r = out_->write(h, payload);
    if (r == Ring::ok) {
      if (out_->reader_sleeping()) signal_eventfd(efd_client_.get());
      flow_.response_produced(before, pending_bytes_);
      return;
    }
    if (r == Ring::corrupt) {
      closed_ = true;
      return;
    }
  }
  std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
  frame.append(payload.data(), payload.size());
  pending_bytes_ += frame.size();
  pending_.push_back(std::move(frame));
  has_pending_.store(true);
  flow_.response_produced(before, pending_bytes_);
}

size_t SmServerConnection::write_pending() {
  while (!pending_.empty()) {
    Ring::Result r = out_->write_raw(pending_.front());
    if (r == Ring::full) break;
    if (r == Ring::corrupt) {
      closed_ = true;
      return pending_bytes_;
    }
    pending_bytes_ -= pending_.front().size();
    pending_.pop_front();
  }
  return pending_bytes_;
}

bool SmServerConnection::flush() {
  if (!has_pending_.load()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  size_t left = write_pending();
  if (closed_) return false;
  if (left > 0) {
    // Ask the client to signal efd_server once it made room, then look again (its read may
    // have happened before it could see the request).
    out_->set_writer_waiting(true);
    left = write_pending();
    if (closed_) return false;
  }
  if (left == 0) out_->set_writer_waiting(false);
  if (out_->reader_sleeping()) signal_eventfd(efd_client_.get());
  flow_.output_sent(left);
  has_pending_.store(left > 0);
  return true;
}

int SmServerConnection::poll(const FrameHandler& on_frame,
                             const std::shared_ptr<ServerConnection>& self) {
  if (!ready_) return 0;
  int n = 0;
  for (int i = 0; i < 64 && !flow_.blocked(); ++i) {
    Frame f;
    Ring::Result r = in_->read(f);
    if (r == Ring::empty) break;
    if (r == Ring::corrupt) return -1;
    if (f.header.kind != static_cast<uint16_t>(FrameKind::request)) return -1;
    flow_.request_read();
    on_frame(self, std::move(f));
    ++n;
  }
  return n;
}

void SmServerConnection::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
}

bool SmServerConnection::closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

}  // namespace bedrock_engine::transport_detail
