#include "transport_detail.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
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

}  // namespace bedrock_engine::transport_detail
