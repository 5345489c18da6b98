#include "transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <stdexcept>
#include <thread>

#include "runtime.hpp"
#include "transport_emulated.hpp"

namespace bedrock_engine {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void signal_eventfd(int fd) {
  uint64_t one = 1;
  ssize_t rc = ::write(fd, &one, sizeof one);
  (void)rc;
}
void drain_eventfd(int fd) {
  uint64_t v;
  while (::read(fd, &v, sizeof v) > 0) {
  }
}

// ------------------------------------------------------------------ shared-memory rings
constexpr uint32_t kSegmentMagic = 0x4d534542;  // "BESM"
constexpr uint64_t kRingCapacity = 4u << 20;

struct alignas(64) RingCtl {
  std::atomic<uint64_t> head;  // written by the writer
  char pad1[56];
  std::atomic<uint64_t> tail;  // written by the reader
  char pad2[56];
  std::atomic<uint32_t> reader_sleeping;
  char pad3[60];
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "need lock-free 64-bit atomics");

struct SegmentHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t capacity;
  char pad[48];
  RingCtl to_server;
  RingCtl to_client;
};
constexpr size_t kDataOffset = 4096;
static_assert(sizeof(SegmentHeader) <= kDataOffset, "segment header too large");
constexpr size_t kSegmentSize = kDataOffset + 2 * kRingCapacity;

// One direction of a connection. Positions are kept privately; the shared copies are only
// published for the peer, and everything read from shared memory is validated.
class Ring {
 public:
  Ring(RingCtl* ctl, char* data) : ctl_(ctl), data_(data) {}
  enum Result { ok = 0, empty = 1, full = 2, corrupt = 3 };

  Result write(const FrameHeader& h, std::string_view payload) {
    uint64_t tail = ctl_->tail.load(std::memory_order_acquire);
    uint64_t used = head_ - tail;
    if (used > kRingCapacity) return corrupt;
    uint64_t need = sizeof(FrameHeader) + payload.size();
    if (kRingCapacity - used < need) return full;
    copy_in(head_, &h, sizeof h);
    if (!payload.empty()) copy_in(head_ + sizeof h, payload.data(), payload.size());
    head_ += need;
    ctl_->head.store(head_, std::memory_order_release);
    return ok;
  }
  Result write_raw(std::string_view bytes) {
    uint64_t tail = ctl_->tail.load(std::memory_order_acquire);
    uint64_t used = head_ - tail;
    if (used > kRingCapacity) return corrupt;
    if (kRingCapacity - used < bytes.size()) return full;
    copy_in(head_, bytes.data(), bytes.size());
    head_ += bytes.size();
    ctl_->head.store(head_, std::memory_order_release);
    return ok;
  }
  Result read(Frame& out) {
    uint64_t head = ctl_->head.load(std::memory_order_acquire);
    uint64_t avail = head - tail_;
    if (avail == 0) return empty;
    if (avail > kRingCapacity || avail < sizeof(FrameHeader)) return corrupt;
    FrameHeader h;
    copy_out(tail_, &h, sizeof h);
    if (!check_header(h).empty()) return corrupt;
    if (sizeof(FrameHeader) + h.length > avail) return corrupt;
    out.header = h;
    out.payload.resize(h.length);
    if (h.length) copy_out(tail_ + sizeof h, out.payload.data(), h.length);
    tail_ += sizeof(FrameHeader) + h.length;
    ctl_->tail.store(tail_, std::memory_order_release);
    return ok;
  }
  bool has_data() const { return ctl_->head.load(std::memory_order_acquire) != tail_; }
  void set_sleeping(bool s) { ctl_->reader_sleeping.store(s ? 1 : 0, std::memory_order_seq_cst); }
  bool reader_sleeping() const {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ctl_->reader_sleeping.load(std::memory_order_seq_cst) != 0;
  }

 private:
  void copy_in(uint64_t pos, const void* src, size_t n) {
    size_t off = pos % kRingCapacity;
    size_t first = std::min<size_t>(n, kRingCapacity - off);
    std::memcpy(data_ + off, src, first);
    if (n > first) std::memcpy(data_, static_cast<const char*>(src) + first, n - first);
  }
  void copy_out(uint64_t pos, void* dst, size_t n) const {
    size_t off = pos % kRingCapacity;
    size_t first = std::min<size_t>(n, kRingCapacity - off);
    std::memcpy(dst, data_ + off, first);
    if (n > first) std::memcpy(static_cast<char*>(dst) + first, data_, n - first);
  }
  RingCtl* ctl_;
  char* data_;
  uint64_t head_ = 0;  // private (writer side)
  uint64_t tail_ = 0;  // private (reader side)
};

class Mapping {
 public:
  Mapping() = default;
  Mapping(int fd, size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
    ptr_ = static_cast<char*>(p);
  }
  ~Mapping() {
    if (ptr_) munmap(ptr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* get() const { return ptr_; }

 private:
  char* ptr_ = nullptr;
  size_t size_ = 0;
};

std::string sm_socket_name(const std::string& id) { return "bedrock-engine/na+sm/" + id; }

sockaddr_un abstract_addr(const std::string& name, socklen_t& len) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof(sa.sun_path)) throw std::invalid_argument("socket name too long");
  sa.sun_path[0] = '\0';
  std::memcpy(sa.sun_path + 1, name.data(), name.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return sa;
}

std::atomic<int> g_sm_counter{0};

}  // namespace

// ------------------------------------------------------------------ addresses
std::string default_ipv4() {
  ifaddrs* ifa = nullptr;
  std::string result = "127.0.0.1";
  if (getifaddrs(&ifa) != 0) return result;
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (i->ifa_flags & IFF_LOOPBACK) continue;
    if (!(i->ifa_flags & IFF_UP)) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    result = buf;
    break;
  }
  freeifaddrs(ifa);
  return result;
}

namespace {
std::string interface_ipv4(const std::string& ifname) {
  ifaddrs* ifa = nullptr;
  std::string result;
  if (getifaddrs(&ifa) != 0) return result;
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (ifname != i->ifa_name) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    result = buf;
    break;
  }
  freeifaddrs(ifa);
  return result;
}
}  // namespace

TransportKind protocol_kind(const std::string& text) {
  std::string proto = text.substr(0, text.find("://"));
  if (emulated::handles(proto)) return TransportKind::tcp;  // bedrock-deploy rehearse only
  if (proto == "na+sm" || proto == "sm") return TransportKind::sm;
  if (proto == "ofi+tcp" || proto == "tcp" || proto == "ofi+tcp;ofi_rxm" ||
      proto == "ofi+tcp_rxm")
    return TransportKind::tcp;
  static const std::vector<std::string> known = {
      "ofi+verbs", "ofi+shm", "ofi+sockets", "ofi+psm2", "ofi+opx", "ofi+gni", "ofi+cxi",
      "psm+psm", "psm2+psm2", "bmi+tcp", "ucx+tcp", "ucx+rc", "ucx+ud", "ucx+dc", "ucx+all",
      "verbs", "psm2", "cxi", "ofi+verbs;ofi_rxm", "shm"};
  if (std::find(known.begin(), known.end(), proto) != known.end() ||
      proto.rfind("ucx+", 0) == 0 || proto.rfind("ofi+", 0) == 0)
    throw UnsupportedProtocol("Protocol \"" + proto +
                              "\" is not implemented by bedrock-engine (it implements na+sm/sm "
                              "and ofi+tcp/tcp only); use the Spack-built bedrock for this "
                              "fabric");
  throw std::invalid_argument("Unknown protocol \"" + proto +
                              "\" (expected na+sm, sm, ofi+tcp or tcp)");
}

Address parse_address(const std::string& text) {
  if (emulated::handles(text.substr(0, text.find("://")))) return emulated::parse(text);
  Address a;
  size_t sep = text.find("://");
  a.protocol = text.substr(0, sep);
  a.kind = protocol_kind(text);
  std::string rest = sep == std::string::npos ? "" : text.substr(sep + 3);
  if (a.kind == TransportKind::sm) {
    a.sm_id = rest;
    if (!rest.empty()) {
      size_t dash = rest.find('-');
      bool ok = dash != std::string::npos && dash > 0 && dash + 1 < rest.size() &&
                std::all_of(rest.begin(), rest.end(),
                            [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
      if (!ok)
        throw std::invalid_argument("Invalid na+sm address \"" + text +
                                    "\" (expected na+sm://<pid>-<id>)");
    }
    return a;
  }
  if (!rest.empty()) {
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) {
      a.host = rest;
    } else {
      a.host = rest.substr(0, colon);
      std::string port = rest.substr(colon + 1);
      if (port.empty() || port.size() > 5 ||
          !std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
          std::stoi(port) > 65535)
        throw std::invalid_argument("Invalid port in address \"" + text + "\"");
      a.port = std::stoi(port);
    }
  }
  return a;
}

// ------------------------------------------------------------------ server connections
namespace {

class SmServerConnection : public ServerConnection {
 public:
  SmServerConnection(Fd sock) : sock_(std::move(sock)) {}

  // Returns false (and the connection should be dropped) if the handshake is invalid.
  bool handshake() {
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
    if (n != 1 || byte != 'S' || owned.size() != 3 || (msg.msg_flags & MSG_CTRUNC)) return false;
    struct stat st{};
    if (fstat(owned[0].get(), &st) != 0 || static_cast<size_t>(st.st_size) != kSegmentSize)
      return false;
    try {
      map_ = std::make_unique<Mapping>(owned[0].get(), kSegmentSize);
    } catch (const std::exception&) {
      return false;
    }
    auto* hdr = reinterpret_cast<SegmentHeader*>(map_->get());
    if (hdr->magic != kSegmentMagic || hdr->capacity != kRingCapacity) return false;
    in_ = std::make_unique<Ring>(&hdr->to_server, map_->get() + kDataOffset);
    out_ = std::make_unique<Ring>(&hdr->to_client, map_->get() + kDataOffset + kRingCapacity);
    efd_server_ = std::move(owned[1]);
    efd_client_ = std::move(owned[2]);
    set_nonblocking(efd_server_.get());
    char ok = 'K';
    if (::send(sock_.get(), &ok, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) return false;
    ready_ = true;
    return true;
  }

  void send(const FrameHeader& h, std::string_view payload) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || !ready_) return;
    if (pending_.empty()) {
      Ring::Result r = out_->write(h, payload);
      if (r == Ring::ok) {
        if (out_->reader_sleeping()) signal_eventfd(efd_client_.get());
        return;
      }
      if (r == Ring::corrupt) {
        closed_ = true;
        return;
      }
    }
    std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
    frame.append(payload.data(), payload.size());
    pending_.push_back(std::move(frame));
    has_pending_.store(true);
  }

  // Progress-thread side.
  bool flush() {
    if (!has_pending_.load()) return true;
    std::lock_guard<std::mutex> lock(mutex_);
    while (!pending_.empty()) {
      Ring::Result r = out_->write_raw(pending_.front());
      if (r == Ring::full) break;
      if (r == Ring::corrupt) {
        closed_ = true;
        return false;
      }
      pending_.pop_front();
    }
    if (out_->reader_sleeping()) signal_eventfd(efd_client_.get());
    has_pending_.store(!pending_.empty());
    return true;
  }
  bool has_pending() const { return has_pending_.load(); }

  // Reads available frames. Returns -1 if the ring is corrupt.
  int poll(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self) {
    if (!ready_) return 0;
    int n = 0;
    for (int i = 0; i < 64; ++i) {
      Frame f;
      Ring::Result r = in_->read(f);
      if (r == Ring::empty) break;
      if (r == Ring::corrupt) return -1;
      if (f.header.kind != static_cast<uint16_t>(FrameKind::request)) return -1;
      on_frame(self, std::move(f));
      ++n;
    }
    return n;
  }
  bool has_data() const { return ready_ && in_->has_data(); }
  void set_sleeping(bool s) {
    if (ready_) in_->set_sleeping(s);
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }
  int sock() const { return sock_.get(); }
  int efd_server() const { return efd_server_.get(); }
  bool ready() const { return ready_; }

 private:
  Fd sock_, efd_server_, efd_client_;
  std::unique_ptr<Mapping> map_;
  std::unique_ptr<Ring> in_, out_;
  std::mutex mutex_;
  std::deque<std::string> pending_;
  std::atomic<bool> has_pending_{false};
  bool closed_ = false;
  bool ready_ = false;
};

class TcpServerConnection : public ServerConnection {
 public:
  explicit TcpServerConnection(Fd fd) : fd_(std::move(fd)) {}

  void send(const FrameHeader& h, std::string_view payload) override {
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

  bool flush() {
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
  bool has_pending() const { return has_pending_.load(); }

  // Reads what is available and dispatches complete frames. Returns -1 to close.
  int on_readable(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self) {
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
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  bool closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }
  int fd() const { return fd_.get(); }

 private:
  int parse(const FrameHandler& on_frame, const std::shared_ptr<ServerConnection>& self) {
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
  Fd fd_;
  std::string in_, out_;
  std::mutex mutex_;
  std::atomic<bool> has_pending_{false};
  bool closed_ = false;
};

// ------------------------------------------------------------------ server
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
    if (kind_ == TransportKind::sm) {
      if (!a.sm_id.empty())
        throw std::invalid_argument("na+sm addresses are assigned by the engine; pass \"na+sm\" "
                                    "(got \"" + spec + "\")");
      std::string id = std::to_string(getpid()) + "-" + std::to_string(g_sm_counter.fetch_add(1));
      listener_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!listener_) throw_errno("socket(AF_UNIX)");
      socklen_t len;
      sockaddr_un sa = abstract_addr(sm_socket_name(id), len);
      if (bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
        throw_errno("bind(na+sm " + id + ")");
      if (listen(listener_.get(), 128) != 0) throw_errno("listen");
      address_ = "na+sm://" + id;
    } else {
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
      listener_ = Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!listener_) throw_errno("socket(AF_INET)");
      int one = 1;
      setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<uint16_t>(a.port));
      inet_pton(AF_INET, bind_ip.c_str(), &sa.sin_addr);
      if (bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        throw_errno("bind(" + bind_ip + ":" + std::to_string(a.port) + ")");
      if (listen(listener_.get(), 128) != 0) throw_errno("listen");
      socklen_t slen = sizeof sa;
      getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &slen);
      std::string proto = a.protocol == "tcp" ? "ofi+tcp" : a.protocol;
      address_ = proto + "://" + advertised + ":" + std::to_string(ntohs(sa.sin_port));
    }
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
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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

// ------------------------------------------------------------------ clients
bool wait_readable(int fd1, int fd2, int timeout_ms, bool* fd2_event) {
  pollfd fds[2] = {{fd1, POLLIN, 0}, {fd2, POLLIN | POLLRDHUP, 0}};
  int n = ::poll(fds, fd2 >= 0 ? 2 : 1, timeout_ms);
  if (fd2_event) *fd2_event = n > 0 && fd2 >= 0 && fds[1].revents != 0;
  return n > 0;
}

class SmClientConnection : public ClientConnection {
 public:
  explicit SmClientConnection(const Address& a) {
    sock_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock_) throw_errno("socket(AF_UNIX)");
    socklen_t len;
    sockaddr_un sa = abstract_addr(sm_socket_name(a.sm_id), len);
    if (::connect(sock_.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
      throw_errno("Could not connect to na+sm://" + a.sm_id);
    Fd memfd(memfd_create("bedrock-engine-na-sm", MFD_CLOEXEC));
    if (!memfd) throw_errno("memfd_create");
    if (ftruncate(memfd.get(), static_cast<off_t>(kSegmentSize)) != 0) throw_errno("ftruncate");
    map_ = std::make_unique<Mapping>(memfd.get(), kSegmentSize);
    auto* hdr = new (map_->get()) SegmentHeader();
    hdr->magic = kSegmentMagic;
    hdr->version = 1;
    hdr->capacity = kRingCapacity;
    out_ = std::make_unique<Ring>(&hdr->to_server, map_->get() + kDataOffset);
    in_ = std::make_unique<Ring>(&hdr->to_client, map_->get() + kDataOffset + kRingCapacity);
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

  Frame call(FrameHeader h, std::string_view payload, const CallOptions& opts) override {
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
    auto spin_until = Clock::now() + opts.spin;
    unsigned iter = 0;
    for (;;) {
      Frame f;
      Ring::Result r = in_->read(f);
      if (r == Ring::ok) {
        if (f.header.kind == static_cast<uint16_t>(FrameKind::response) &&
            f.header.request_id == h.request_id)
          return f;
        continue;  // stale response of an earlier timed-out call
      }
      if (r == Ring::corrupt) fail("corrupt ring");
      if (xs && xs->run_one()) continue;  // nested wait: keep this xstream's pools running
      if ((++iter & 63) != 0 && Clock::now() < spin_until) {
        if ((iter & 15) == 0) std::this_thread::yield(); else __builtin_ia32_pause();
        continue;
      }
      auto now = Clock::now();
      if (now > deadline) fail("timeout waiting for the response");
      if (now < spin_until) continue;
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

  void send_raw(std::string_view bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    out_->write_raw(bytes);
    signal_eventfd(efd_server_.get());
  }
  bool broken() const override { return broken_; }

 private:
  [[noreturn]] void fail(const std::string& why) {
    broken_ = true;
    throw std::runtime_error("na+sm: " + why);
  }
  void check_alive() {
    pollfd p{sock_.get(), POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLIN))) {
      char b;
      ssize_t n = ::recv(sock_.get(), &b, 1, MSG_DONTWAIT | MSG_PEEK);
      if (n == 0 || (n < 0 && errno != EAGAIN)) fail("connection closed by the engine");
    }
  }
  Fd sock_, efd_server_, efd_client_;
  std::unique_ptr<Mapping> map_;
  std::unique_ptr<Ring> in_, out_;
  std::mutex mutex_;
  uint64_t next_id_ = 0;
  std::atomic<bool> broken_{false};
};

class TcpClientConnection : public ClientConnection {
 public:
  explicit TcpClientConnection(const Address& a) {
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

  Frame call(FrameHeader h, std::string_view payload, const CallOptions& opts) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (broken_) throw std::runtime_error("connection is closed");
    h.request_id = ++next_id_;
    std::string frame(reinterpret_cast<const char*>(&h), sizeof h);
    frame.append(payload.data(), payload.size());
    send_all(frame);
    auto deadline = Clock::now() + opts.timeout;
    auto spin_until = Clock::now() + opts.spin;
    Xstream* xs = Xstream::current();
    unsigned iter = 0;
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
        if ((++iter & 7) == 0) std::this_thread::yield();
        continue;
      }
      wait_readable(fd_.get(), -1, xs ? 1 : 100, nullptr);
    }
  }

  void send_raw(std::string_view bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    send_all(bytes);
  }
  bool broken() const override { return broken_; }

 private:
  void send_all(std::string_view data) {
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
  [[noreturn]] void fail(const std::string& why) {
    broken_ = true;
    throw std::runtime_error("tcp: " + why);
  }
  Fd fd_;
  std::string in_;
  std::mutex mutex_;
  uint64_t next_id_ = 0;
  std::atomic<bool> broken_{false};
};

}  // namespace

std::unique_ptr<TransportServer> TransportServer::create(const std::string& address_spec,
                                                         FrameHandler on_frame) {
  if (emulated::handles(address_spec.substr(0, address_spec.find("://"))))
    return emulated::create_server(address_spec, std::move(on_frame));
  return std::make_unique<TransportServerImpl>(address_spec, std::move(on_frame));
}

std::shared_ptr<ClientConnection> ClientConnection::connect(const Address& address) {
  if (emulated::handles(address.protocol)) return emulated::connect(address);
  if (address.kind == TransportKind::sm) {
    if (address.sm_id.empty())
      throw std::invalid_argument("na+sm address needs an id (e.g. na+sm://1234-0)");
    return std::make_shared<SmClientConnection>(address);
  }
  return std::make_shared<TcpClientConnection>(address);
}

}  // namespace bedrock_engine
