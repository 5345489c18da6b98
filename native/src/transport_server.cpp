// The server side of a transport: one listener (na+sm or TCP), every accepted connection, and
// the epoll loop the progress loop drives (accept, handshakes, readable and writable sockets,
// wake-ups), within the TransportLimits: connection limit, per-connection back-pressure,
// accept back-off when descriptors run out, na+sm peer credentials.
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "log.hpp"
#include "transport_emulated.hpp"
#include "transport.hpp"
#include "transport_detail.hpp"
#include "transport_sm_server.hpp"
#include "transport_tcp_server.hpp"

namespace bedrock_engine {

using namespace transport_detail;

namespace {

enum EpollTag : uint64_t {
  tag_listener = 1, tag_sm_sock = 2, tag_sm_efd = 3, tag_tcp = 4, tag_wake = 5, tag_internal = 6
};
uint64_t make_tag(EpollTag tag, uint64_t id) { return (id << 8) | tag; }

// At most one warning per kind and second: a hostile peer must not flood the log.
class RateLimitedLog {
 public:
  void warn(const std::string& what) {
    auto now = Clock::now();
    if (now - last_ < std::chrono::seconds(1)) {
      ++suppressed_;
      return;
    }
    std::string extra =
        suppressed_ ? " (" + std::to_string(suppressed_) + " similar messages suppressed)" : "";
    last_ = now;
    suppressed_ = 0;
    log(LogLevel::warning, what + extra);
  }

 private:
  Clock::time_point last_{};
  unsigned suppressed_ = 0;
};

class TransportServerImpl : public TransportServer {
 public:
  TransportServerImpl(const std::string& spec, FrameHandler on_frame, TransportLimits limits)
      : on_frame_(std::move(on_frame)), limits_(std::move(limits)) {
    Address a = parse_address(spec);
    kind_ = a.kind;
    epfd_ = Fd(epoll_create1(EPOLL_CLOEXEC));
    if (!epfd_) throw_errno("epoll_create1");
    internal_wake_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!internal_wake_) throw_errno("eventfd");
    if (kind_ == TransportKind::sm)
      listener_ = listen_sm(a, spec, address_);
    else
      listener_ = listen_tcp(a, spec, address_);
    add_epoll(listener_.get(), make_tag(tag_listener, 0), EPOLLIN);
    add_epoll(internal_wake_.get(), make_tag(tag_internal, 0), EPOLLIN);
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
    if (timeout_ms == 0 && kind_ == TransportKind::sm) {
      // A busy progress loop polls the rings itself; the sockets (new connections, hang-ups,
      // wake-ups) need an epoll_wait syscall only now and then, not every few spins.
      auto now = Clock::now();
      if (now - last_epoll_ < kSmEpollInterval) return poll_fast();
      last_epoll_ = now;
    }
    int handled = poll_fast();
    handled += service_tcp();
    if (handled > 0) timeout_ms = 0;
    timeout_ms = resume_listener(timeout_ms);
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
            std::string why;
            if (!it->second->handshake(&why)) {
              reject_log_.warn("na+sm: refused a connection: " + why);
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
          auto& c = it->second;
          if (ev & (EPOLLHUP | EPOLLERR)) {
            drop_tcp(it);
            break;
          }
          if ((ev & EPOLLOUT) && !c->flush()) {
            drop_tcp(it);
            break;
          }
          if ((ev & (EPOLLIN | EPOLLRDHUP)) && c->on_readable(on_frame_, c) < 0) {
            drop_tcp(it);
            break;
          }
          update_interest(id, *c);
          break;
        }
        case tag_internal: drain_eventfd(internal_wake_.get()); break;
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
  void mod_epoll(int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev);
  }

  // Flushes queued output, reads frames left in input buffers by back-pressure, and keeps each
  // connection's epoll interest in line with its state. Returns frames read.
  int service_tcp() {
    int frames = 0;
    for (auto it = tcp_conns_.begin(); it != tcp_conns_.end();) {
      auto& c = it->second;
      if (!c->flush() || c->closed()) {
        drop_tcp(it++);
        continue;
      }
      if (!c->blocked() && c->has_buffered_frame()) {
        int r = c->on_readable(on_frame_, c);
        if (r < 0) {
          drop_tcp(it++);
          continue;
        }
        frames += r;
      }
      update_interest(it->first, *c);
      ++it;
    }
    return frames;
  }
  void update_interest(uint64_t id, TcpServerConnection& c) {
    uint32_t want = c.wanted_events();
    if (want != c.registered_events) {
      mod_epoll(c.fd(), make_tag(tag_tcp, id), want);
      c.registered_events = want;
    }
  }

  // Re-arms a listener paused for lack of descriptors once its back-off has passed. Returns
  // the timeout to use so the loop wakes up for it.
  int resume_listener(int timeout_ms) {
    if (!listener_paused_) return timeout_ms;
    auto now = Clock::now();
    if (now >= listener_resume_at_) {
      mod_epoll(listener_.get(), make_tag(tag_listener, 0), EPOLLIN);
      listener_paused_ = false;
      return timeout_ms;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(listener_resume_at_ - now)
                    .count() + 1;
    return timeout_ms < 0 || timeout_ms > left ? static_cast<int>(left) : timeout_ms;
  }
  void pause_listener(int err) {
    mod_epoll(listener_.get(), make_tag(tag_listener, 0), 0);
    listener_paused_ = true;
    listener_resume_at_ = Clock::now() + std::chrono::milliseconds(limits_.accept_backoff_ms);
    accept_log_.warn(std::string("cannot accept connections: ") + std::strerror(err) +
                     "; retrying in " + std::to_string(limits_.accept_backoff_ms) + " ms");
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
          pause_listener(errno);
        return;  // EAGAIN, or an error the next readiness will report again
      }
      Fd owned(fd);
      if (connection_count() >= limits_.max_connections) {
        reject_log_.warn("refused a connection: " + std::to_string(limits_.max_connections) +
                         " connections open (BEDROCK_ENGINE_MAX_CONNECTIONS)");
        continue;  // closed by ~Fd
      }
      uint64_t id = next_id_++;
      if (kind_ == TransportKind::sm) {
        std::string why = check_sm_peer(fd, limits_);
        if (!why.empty()) {
          reject_log_.warn("na+sm: refused a connection: " + why);
          continue;
        }
        auto c = std::make_shared<SmServerConnection>(std::move(owned), limits_,
                                                      internal_wake_.get());
        add_epoll(fd, make_tag(tag_sm_sock, id), EPOLLIN | EPOLLRDHUP);
        sm_conns_.emplace(id, std::move(c));
      } else {
        configure_tcp_connection(fd);
        auto c = std::make_shared<TcpServerConnection>(std::move(owned), limits_,
                                                       internal_wake_.get());
        c->registered_events = EPOLLIN | EPOLLRDHUP;
        add_epoll(fd, make_tag(tag_tcp, id), c->registered_events);
        tcp_conns_.emplace(id, std::move(c));
      }
    }
  }
  void connection_closed() {
    // Descriptors were freed: a listener paused for lack of them may accept again.
    if (listener_paused_) listener_resume_at_ = Clock::now();
  }
  template <typename It>
  void drop_sm(It it) {
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->sock(), nullptr);
    if (it->second->ready()) epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->efd_server(), nullptr);
    it->second->close();
    sm_conns_.erase(it);
    connection_closed();
  }
  template <typename It>
  void drop_tcp(It it) {
    epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, it->second->fd(), nullptr);
    it->second->close();
    tcp_conns_.erase(it);
    connection_closed();
  }

  FrameHandler on_frame_;
  TransportLimits limits_;
  TransportKind kind_;
  Fd epfd_, listener_, internal_wake_;
  std::string address_;
  uint64_t next_id_ = 1;
  static constexpr std::chrono::microseconds kSmEpollInterval{50};
  Clock::time_point last_epoll_{};
  bool listener_paused_ = false;
  Clock::time_point listener_resume_at_{};
  RateLimitedLog reject_log_, accept_log_;
  std::map<uint64_t, std::shared_ptr<SmServerConnection>> sm_conns_;
  std::map<uint64_t, std::shared_ptr<TcpServerConnection>> tcp_conns_;
};

}  // namespace

std::unique_ptr<TransportServer> TransportServer::create(const std::string& address_spec,
                                                         FrameHandler on_frame) {
  return create(address_spec, std::move(on_frame), TransportLimits::from_environment());
}

std::unique_ptr<TransportServer> TransportServer::create(const std::string& address_spec,
                                                         FrameHandler on_frame,
                                                         TransportLimits limits) {
  if (emulated::handles(address_spec.substr(0, address_spec.find("://"))))  // rehearse only
    return emulated::create_server(address_spec, std::move(on_frame), std::move(limits));
  return std::make_unique<TransportServerImpl>(address_spec, std::move(on_frame),
                                               std::move(limits));
}

}  // namespace bedrock_engine
