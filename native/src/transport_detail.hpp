// What the transports' server and client sides share: an owning file descriptor, errno
// exceptions, eventfd signalling, polling, and interface lookup. Internal to the transports.
#pragma once
#include <ifaddrs.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>

namespace bedrock_engine::transport_detail {

using Clock = std::chrono::steady_clock;

// How long a waiting client or an idle spinner polls without any syscall before it starts
// calling sched_yield (so a peer sharing its CPU gets to run).
constexpr std::chrono::microseconds kSpinBeforeYield{3};

[[noreturn]] void throw_errno(const std::string& what);

// Owns one file descriptor (closed on destruction).
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

void set_nonblocking(int fd);
void signal_eventfd(int fd);
void drain_eventfd(int fd);

// poll() on fd1 (POLLIN) and, if >= 0, fd2 (POLLIN|POLLRDHUP). Returns true if anything is
// ready; *fd2_event tells whether fd2 was.
bool wait_readable(int fd1, int fd2, int timeout_ms, bool* fd2_event);

// The first IPv4 address of an interface that `accept` takes ("" if none).
std::string first_ipv4(const std::function<bool(const ifaddrs&)>& accept);

// IPv4 address of the interface named ifname ("" if none).
std::string interface_ipv4(const std::string& ifname);

}  // namespace bedrock_engine::transport_detail
