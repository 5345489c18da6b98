// The server side of a transport: one listener (na+sm or TCP), every accepted connection, and
// the epoll loop the progress loop drives (accept, handshakes, readable sockets, wake-ups).
#include <sys/epoll.h>

#include <algorithm>
#include <map>

#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_sm_server.hpp"
#include "transport_tcp_server.hpp"

namespace bedrock_engine {

using namespace transport_detail;

namespace {

enum EpollTag : uint64_t { tag_listener = 1, tag_sm_sock = 2, tag_sm_efd = 3, tag_tcp = 4, tag_wake = 5 };
uint64_t make_tag(EpollTag tag, uint64_t id) { return (id << 8) | tag; }

class TransportServerImpl : public TransportServer {
 public:
  TransportServerImpl(const std::string& spec, FrameHandler on_frame)
      : on_frame_(std::move(on_frame)) {
    Address a = parse_address(spec);
    kind_ = a.kind;
    epfd_ = Fd(epoll_create1(EPOLL_CLOEXEC));
    if (!epfd_) throw_errno("epoll_create1");
    if (kind_ == TransportKind::sm)
      listener_ = listen_sm(a, spec, address_);
    else
      listener_ = listen_tcp(a, spec, address_);
    add_epoll(listener_.get(), make_tag(tag_listener, 0), EPOLLIN);
  }

  std::string address() const override { return address_; }
  size_t connection_count() const override { return sm_conns_.size() + tcp_conns_.size(); }

  int poll_fast() override {
    int n = 0;
    for (auto it = sm_conns_.begin(); it != sm_conns_.end();) {
      int r = it->second->poll(on_frame_, it->second);
      if (r < 0 || !it->second->flush()) {
        drop_sm(it++);
        continue;
      }
      n += r;
      ++it;
    }
    return n;
  }

  int progress(int timeout_ms, int wake_fd) override {
    int handled = poll_fast();
    for (auto it = tcp_conns_.begin(); it != tcp_conns_.end();) {
      if (!it->second->flush() || it->second->closed()) {
        drop_tcp(it++);
        continue;
      }
      ++it;
    }
    if (handled > 0) timeout_ms = 0;
    bool has_output = std::any_of(sm_conns_.begin(), sm_conns_.end(),
                                  [](auto& c) { return c.second->has_pending(); }) ||
                      std::any_of(tcp_conns_.begin(), tcp_conns_.end(),
                                  [](auto& c) { return c.second->has_pending(); });
    if (has_output && timeout_ms > 1) timeout_ms = 1;
    bool slept = false;
    if (timeout_ms != 0) {
      // Tell sm peers we may sleep, then re-check the rings (no lost wake-up).
      for (auto& c : sm_conns_) c.second->set_sleeping(true);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      bool data = std::any_of(sm_conns_.begin(), sm_conns_.end(),
                              [](auto& c) { return c.second->has_data(); });
      if (data) timeout_ms = 0;
      slept = true;
    }
    if (wake_fd >= 0 && timeout_ms != 0) add_epoll(wake_fd, make_tag(tag_wake, 0), EPOLLIN);
    epoll_event events[64];
    int n = epoll_wait(epfd_.get(), events, 64, timeout_ms);
    if (wake_fd >= 0 && timeout_ms != 0) epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, wake_fd, nullptr);
    if (slept)
      for (auto& c : sm_conns_) c.second->set_sleeping(false);
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64 & 0xff;
      uint64_t id = events[i].data.u64 >> 8;
      uint32_t ev = events[i].events;
      ++handled;
      switch (tag) {
        case tag_listener: accept_all(); break;
        case tag_sm_sock: {
          auto it = sm_conns_.find(id);
          if (it == sm_conns_.end()) break;
          if (ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
            drop_sm(it);
            break;
          }
          if (!it->second->ready()) {
            if (!it->second->handshake()) {
              drop_sm(it);
            } else if (it->second->ready()) {
              add_epoll(it->second->efd_server(), make_tag(tag_sm_efd, id), EPOLLIN);
            }
          } else {
            char b[64];
            ssize_t r = ::recv(it->second->sock(), b, sizeof b, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) drop_sm(it);
          }
          break;
        }
        case tag_sm_efd: {
          auto it = sm_conns_.find(id);
          if (it != sm_conns_.end()) drain_eventfd(it->second->efd_server());
          break;
        }
        case tag_tcp: {
          auto it = tcp_conns_.find(id);
          if (it == tcp_conns_.end()) break;
          int r = it->second->on_readable(on_frame_, it->second);
          if (r < 0 || (ev & (EPOLLHUP | EPOLLERR))) drop_tcp(it);
          break;
        }
        case tag_wake: break;
        default: break;
      }
    }
    handled += poll_fast();
    return handled;
  }

  ~TransportServerImpl() override {
    for (auto& c : sm_conns_) c.second->close();
    for (auto& c : tcp_conns_) c.second->close();
  }

 private:
  void add_epoll(int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  void accept_all() {
    for (;;) {
      int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      uint64_t id = next_id_++;
      if (kind_ == TransportKind::sm) {
        auto c = std::make_shared<SmServerConnection>(Fd(fd));
        add_epoll(fd, make_tag(tag_sm_sock, id), EPOLLIN | EPOLLRDHUP);
        sm_conns_.emplace(id, c);
      } else {
        configure_tcp_connection(fd);
        auto c = std::make_shared<TcpServerConnection>(Fd(fd));
        add_epoll(fd, make_tag(tag_tcp, id), EPOLLIN | EPOLLRDHUP);
        tcp_conns_.emplace(id, c);
      }
    }
  }
  template <typename It>
  void drop_sm(It it) {
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->sock(), nullptr);
    if (it->second->ready()) epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->efd_server(), nullptr);
    it->second->close();
    sm_conns_.erase(it);
  }
  template <typename It>
  void drop_tcp(It it) {
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->fd(), nullptr);
    it->second->close();
    tcp_conns_.erase(it);
  }

  FrameHandler on_frame_;
  TransportKind kind_;
  Fd epfd_, listener_;
  std::string address_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::shared_ptr<SmServerConnection>> sm_conns_;
  std::map<uint64_t, std::shared_ptr<TcpServerConnection>> tcp_conns_;
};

}  // namespace

std::unique_ptr<TransportServer> TransportServer::create(const std::string& address_spec,
                                                         FrameHandler on_frame) {
  return std::make_unique<TransportServerImpl>(address_spec, std::move(on_frame));
}

}  // namespace bedrock_engine
