#include "transport_detail.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>

namespace bedrock_engine::transport_detail {

void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

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

bool wait_readable(int fd1, int fd2, int timeout_ms, bool* fd2_event) {
  pollfd fds[2] = {{fd1, POLLIN, 0}, {fd2, POLLIN | POLLRDHUP, 0}};
  int n = ::poll(fds, fd2 >= 0 ? 2 : 1, timeout_ms);
  if (fd2_event) *fd2_event = n > 0 && fd2 >= 0 && fds[1].revents != 0;
  return n > 0;
}

std::string first_ipv4(const std::function<bool(const ifaddrs&)>& accept) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  const std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> owner(list, freeifaddrs);
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !accept(*i)) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, buf,
              sizeof buf);
    return buf;
  }
  return "";
}

std::string interface_ipv4(const std::string& ifname) {
  return first_ipv4([&](const ifaddrs& i) { return ifname == i.ifa_name; });
}

}  // namespace bedrock_engine::transport_detail
