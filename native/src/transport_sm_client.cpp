#include "transport_sm_client.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "runtime.hpp"

namespace bedrock_engine::transport_detail {

SmClientConnection::SmClientConnection(const Address& a) {
  sock_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock_) throw_errno("socket(AF_UNIX)");
  socklen_t len;
  sockaddr_un sa = abstract_addr(sm_socket_name(a.sm_id), len);
  if (::connect(sock_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
    throw_errno("Could not connect to na+sm://" + a.sm_id);
  Fd memfd = create_sealed_segment();
  map_ = std::make_unique<Mapping>(memfd.get(), kSegmentSize);
  auto* hdr = new (map_->get()) SegmentHeader();
  hdr->magic = kSegmentMagic;
  hdr->version = kSegmentVersion;
  hdr->capacity = kRingCapacity;
  out_ = std::make_unique<Ring>(&hdr->to_server, map_->get() + kDataOffset);
  in_ = std::make_unique<Ring>(&hdr->to_client, map_->get() + kDataOffset + kRingCapacity);
  out_->prefault();
  in_->prefault();
  efd_server_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  efd_client_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!efd_server_ || !efd_client_) throw_errno("eventfd");
  int fds[3] = {memfd.get(), efd_server_.get(), efd_client_.get()};
  char byte = 'S';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  if (sendmsg(sock_.get(), &msg, MSG_NOSIGNAL) != 1) throw_errno("sendmsg(na+sm handshake)");
  // Wait for the ack. From inside a handler, keep this xstream's pools running meanwhile:
  // the engine we connect to may be our own, whose progress loop must accept us.
  Xstream* xs = Xstream::current();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  bool acked = false;
  while (Clock::now() < deadline) {
    pollfd p{sock_.get(), POLLIN, 0};
    if (::poll(&p, 1, xs ? 0 : 100) == 1) {
      char ack = 0;
      acked = ::recv(sock_.get(), &ack, 1, 0) == 1 && ack == 'K';
      break;
    }
    if (xs && !xs->run_one()) std::this_thread::yield();
  }
  if (!acked) throw std::runtime_error("na+sm handshake with na+sm://" + a.sm_id + " failed");
}

Frame SmClientConnection::call(FrameHeader h, std::string_view payload,
                               const CallOptions& opts) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (broken_) throw std::runtime_error("connection is closed");
  h.request_id = ++next_id_;
  auto start = Clock::now();
  auto deadline = start + opts.timeout;
  for (;;) {
    Ring::Result r = out_->write(h, payload);
    if (r == Ring::ok) break;
    if (r == Ring::corrupt) fail("corrupt ring");
    check_alive();
    if (Clock::now() > deadline) fail("timeout while sending");
    std::this_thread::yield();
  }
  if (out_->reader_sleeping()) signal_eventfd(efd_server_.get());
  Xstream* xs = Xstream::current();
  const auto spin_start = Clock::now();
  const auto spin_until = spin_start + opts.spin;
  const auto yield_from = spin_start + kSpinBeforeYield;
  unsigned iter = 0;
  for (;;) {
    Frame f;
    Ring::Result r = in_->read(f);
    if (r == Ring::ok) {
      // The engine found this ring full and waits for room: tell it there is some.
      if (in_->take_writer_waiting()) signal_eventfd(efd_server_.get());
      if (f.header.kind == static_cast<uint16_t>(FrameKind::response) &&
          f.header.request_id == h.request_id)
        return f;
      continue;  // stale response of an earlier timed-out call
    }
    if (r == Ring::corrupt) fail("corrupt ring");
    if (xs && xs->run_one()) continue;  // nested wait: keep this xstream's pools running
    __builtin_ia32_pause();
    if ((++iter & 15) != 0) continue;  // the clock only every 16 spins
    auto now = Clock::now();
    if (now > deadline) fail("timeout waiting for the response");
    if (now < spin_until) {
      // Syscall-free at first: a response normally comes within a microsecond, and a
      // sched_yield in the way delays it. Later, yield: the engine may need this CPU.
      if (now >= yield_from) std::this_thread::yield();
      continue;
    }
    in_->set_sleeping(true);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!in_->has_data()) {
      bool sock_event = false;
      wait_readable(efd_client_.get(), sock_.get(), xs ? 1 : 100, &sock_event);
      // A response written just before the engine closed the socket is still in the ring.
      if (sock_event && !in_->has_data()) check_alive();
    }
    in_->set_sleeping(false);
    drain_eventfd(efd_client_.get());
  }
}

void SmClientConnection::send_raw(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  out_->write_raw(bytes);
  signal_eventfd(efd_server_.get());
}

void SmClientConnection::fail(const std::string& why) {
  broken_ = true;
  throw std::runtime_error("na+sm: " + why);
}

void SmClientConnection::check_alive() {
  pollfd p{sock_.get(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLIN))) {
    char b;
    ssize_t n = ::recv(sock_.get(), &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN)) fail("connection closed by the engine");
  }
}

}  // namespace bedrock_engine::transport_detail
